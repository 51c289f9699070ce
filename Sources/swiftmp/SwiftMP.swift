import ArgumentParser
import Multiprocessing

@main
struct SwiftMP: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "swiftmp",
        abstract: "Parallel demos and benchmarks for swift-multiprocessing.",
        subcommands: [Info.self, Bench.self]
    )
}

struct Info: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Show the backend, workers and CPUs.")
    func run() throws {
        print("cpus: \(Multiprocessing.cpuCount)")
    }
}
