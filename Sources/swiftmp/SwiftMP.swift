import ArgumentParser
import Multiprocessing

@main
struct SwiftMP: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "swiftmp",
        abstract: "Parallel demos and benchmarks for swift-multiprocessing.",
        discussion: """
            Runs on local worker processes, or on MPI ranks when launched by mpirun \
            (Scripts/mpirun.sh -np 3 .build/release/swiftmp pi): the output is the same.
            """,
        subcommands: [
            Pi.self, MandelbrotCommand.self, MatmulCommand.self, NBodyCommand.self,
            Bench.self, Info.self,
        ]
    )

    /// Like ArgumentParser's `main`, but a bad argument or a failure prints one line
    /// (`swiftmp: …`) instead of the usage text.
    static func main() {
        do {
            var command = try parseAsRoot()
            try command.run()
        } catch {
            let code = exitCode(for: error)
            if code == .success {
                exit(withError: error) // --help, --version
            }
            let message = self.message(for: error).split(separator: "\n").first.map(String.init) ?? "\(error)"
            printError("swiftmp: \(message)")
            Glibc.exit(code.rawValue)
        }
    }
}

#if canImport(Glibc)
import Glibc
#endif
