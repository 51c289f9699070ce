import ArgumentParser
import Multiprocessing

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure the library and print one JSON object per line (name, value, unit).",
        discussion: """
            Suites: pool (map throughput at three chunk sizes, apply round trip hot and cold); \
            ipc (Queue, Pipe and Process figures).
            Timings on a shared machine are only meaningful as ratios against a baseline measured \
            in the same run: Scripts/bench.sh runs Python's multiprocessing beside us.
            """
    )

    @Argument(help: "What to measure: pool, ipc.")
    var suite: Suite = .pool

    @OptionGroup var options: PoolOptions

    @Option(help: "Repetitions per throughput figure (the median is reported).")
    var repetitions = 10

    enum Suite: String, ExpressibleByArgument, CaseIterable {
        case pool
        case ipc
    }

    func validate() throws {
        if repetitions < 1 { throw ValidationError("--repetitions must be at least 1 (got \(repetitions)).") }
    }

    func run() throws {
        if suite == .ipc {
            return try IPCBenchmarks(repetitions: repetitions).run { print($0.json) }
        }
        let pool = try Pool(processes: options.processes ?? 2, startMethod: options.startMethod.method)
        defer {
            pool.close()
            try? pool.join()
        }
        print(Figure(name: "pool.workers", value: Double(pool.processes), unit: "processes").json)
        try PoolBenchmarks(pool: pool, repetitions: repetitions).run { print($0.json) }
    }
}
