import ArgumentParser
import Multiprocessing

#if MPI
import MPI
#endif
#if canImport(Glibc)
import Glibc
#endif

struct Info: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show the backend, the workers, the CPUs and the MPI library."
    )

    @OptionGroup var options: PoolOptions

    func run() throws {
        let pool = try options.makePool()
        defer { pool.close(); try? pool.join() }
        #if MPI
        let mpi = (try? MPIEnvironment.libraryVersion)?.split(separator: "\n").first.map { trimmingBlanks($0) } ?? "unknown"
        #else
        let mpi = "none (built without the MPI trait)"
        #endif
        if options.json {
            print(
                JSONLine([
                    ("backend", .string(pool.backendSummary)), ("workers", .int(pool.processes)),
                    ("cpus", .int(Multiprocessing.cpuCount)),
                    ("cpu_limits", .string(Multiprocessing.cpuAllocation.description)), ("start_method", .string(pool.startMethod.rawValue)),
                    ("mpi_library", .string(mpi)),
                    ("placement", .string(pool.workerPlacement.map(\.description).joined(separator: "; "))),
                ]).text)
        } else {
            print("backend: \(pool.backendSummary)")
            print("workers: \(pool.processes)")
            for worker in pool.workerPlacement { print("  \(worker)") }
            let allocation = Multiprocessing.cpuAllocation
            print("cpus: \(allocation.count) (\(allocation))")
            print("mpi library: \(mpi)")
        }
    }
}

#if MPI
/// `text` without leading and trailing spaces and tabs.
private func trimmingBlanks(_ text: Substring) -> String {
    String(text.drop(while: { $0 == " " || $0 == "\t" }).reversed().drop(while: { $0 == " " || $0 == "\t" }).reversed())
}
#endif
