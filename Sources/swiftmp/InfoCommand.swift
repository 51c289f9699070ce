#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import MPI
import Multiprocessing

struct Info: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show the backend, the workers, the CPUs and the MPI library."
    )

    @OptionGroup var options: PoolOptions

    func run() throws {
        let pool = try options.makePool()
        defer { pool.close(); try? pool.join() }
        let mpi = (try? MPIEnvironment.libraryVersion)?.split(separator: "\n").first.map { trimmingBlanks($0) } ?? "unknown"
        if options.json {
            print(JSONLine([("backend", .string(pool.backendSummary)), ("workers", .int(pool.processes)),
                            ("cpus", .int(Multiprocessing.cpuCount)),
                            ("cpu_limits", .string(Multiprocessing.cpuAllocation.description)), ("start_method", .string(pool.startMethod.rawValue)),
                            ("mpi_library", .string(mpi))]).text)
        } else {
            print("backend: \(pool.backendSummary)")
            print("workers: \(pool.processes)")
            let allocation = Multiprocessing.cpuAllocation
            print("cpus: \(allocation.count) (\(allocation))")
            print("mpi library: \(mpi)")
        }
    }
}

/// `text` without leading and trailing spaces and tabs.
private func trimmingBlanks(_ text: Substring) -> String {
    String(text.drop(while: { $0 == " " || $0 == "\t" }).reversed().drop(while: { $0 == " " || $0 == "\t" }).reversed())
}
