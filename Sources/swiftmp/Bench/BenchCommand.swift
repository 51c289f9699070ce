import ArgumentParser
import Kernels
import Multiprocessing

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure the library and print one JSON object per line (name, value, unit).",
        discussion: """
            Suites: pool (map throughput at three chunk sizes, apply round trip hot and cold, \
            start-up; names prefixed mpi. on the MPI backend), kernels (each kernel serially at its reference size, checksums verified), \
            scaling (π and Mandelbrot serially and on pools of 1…N workers, N = --processes or the \
            CPU count: speedup, efficiency, pool start-up), ipc (Queue, Pipe, Process, SharedValue and Manager \
            figures), \
            pingpong (MPI 8 B latency and 4 MiB bandwidth between ranks 0 and 1; run it as \
            SWIFTMP_MPI_MODE=spmd Scripts/mpirun.sh -np 2 swiftmp bench pingpong), \
            dispatch (under mpirun: rank 0's dispatch capacity, a map of --tasks tasks that do \
            nothing at chunk size 1 or --chunk-size, with rank 0's CPU time per task; \
            SWIFTMP_PROCESSES_PER_RANK sets the local workers per rank), \
            random (RandomStream, Philox4x32-10, on one core: draws/s through next(), fill and \
            Double.random, each checked against draws computed alone), \
            checkpoint (a map at chunk size 100 with and without checkpoint:, interleaved, on 2 M \
            trivial tasks and 100 k tasks of 10 µs: vs_plain), \
            broadcast (pool.broadcast of 1 GiB read by 2 workers against a memcpy of it, interleaved; \
            under mpirun -np 3: Scripts/bench-broadcast.sh adds a C MPI_Bcast), \
            captured (20 applyAsync of a function value capturing a 100 MB table against one \
            transfer per worker plus the compute, measured in the same run: ratio_to_target), \
            rawarray (RawSharedArray's checked subscript against its unchecked buffer, interleaved, \
            in order and gathered: per_buffer; and how a write past the end ends). \
            Timings on a shared machine are only meaningful as ratios against a baseline measured \
            in the same run: Scripts/bench.sh runs Python's multiprocessing, C and NumPy beside us.
            """
    )

    @Argument(help: "What to measure: pool, kernels, scaling, ipc, pingpong, dispatch, random, checkpoint, broadcast, captured or rawarray.")
    var suite: Suite = .pool

    @OptionGroup var options: PoolOptions

    @Option(help: "Repetitions per figure, the median is reported (default: pool 10, kernels 5, scaling 3).")
    var repetitions: Int?

    @Option(
        help:
            "ipc and pool suites: measure only this figure, or the figures under this dotted prefix (process.startJoin: all three start methods; pool.apply: the round trips)."
    )
    var only: String?

    @Option(
        help:
            "Pool suite, the map figures over each input kind: the order of the kinds in each repetition (shuffled: a new order each time, from --input-seed; rotated: the old fixed cyclic order)."
    )
    var inputOrder: InputOrder.Mode = .shuffled

    @Option(help: "Pool suite: the seed of the shuffled input-kind orders.")
    var inputSeed: UInt64 = 0x5EED

    @Option(
        help:
            "Pool suite: only these input kinds beside the ready array, comma-separated (arrayOfRange, range, closedRange, stride, lazyMap, set, and makeArray, readSet: the array made, the set read, without a map), e.g. range to time the array and the range alone, interleaved."
    )
    var inputKinds: String?

    @Flag(help: "Pool suite: also print every input-kind timing (<figure>.sample.<kind>.after_<previous kind>).")
    var inputSamples = false

    @Option(help: "Dispatch suite: tasks per map.")
    var tasks = 100_000

    @Option(help: "Scaling suite: Monte Carlo π samples (serially ≥ 1 s here).")
    var piSamples = 3_000_000_000

    @Option(help: "Scaling suite: Mandelbrot image width (with the defaults, serially ≥ 1 s here).")
    var mandelbrotWidth = 2048

    @Option(help: "Scaling suite: Mandelbrot image height.")
    var mandelbrotHeight = 1536

    @Option(help: "Scaling suite: Mandelbrot iteration limit (1–65535).")
    var mandelbrotIterations = 8192

    @Option(
        name: .customLong("scaling-kernel"),
        help: "Scaling suite: a kernel to run (pi or mandelbrot; repeat the option for both, the default).")
    var scalingKernels: [String] = []

    @Option(
        name: .customLong("scaling-workers"),
        help: "Scaling suite: a worker count to run (repeat the option; default 1…N).")
    var scalingWorkers: [Int] = []

    enum Suite: String, ExpressibleByArgument, CaseIterable {
        case pool, kernels, scaling, ipc, pingpong, dispatch, random, checkpoint, broadcast, captured, rawarray

        var defaultRepetitions: Int {
            switch self {
            case .pool: return 10
            case .kernels: return 5
            case .scaling: return 3
            case .ipc: return 5
            case .pingpong: return 1
            case .dispatch: return 3
            case .random: return 5
            case .checkpoint: return 5
            case .broadcast: return 3
            case .captured: return 3
            case .rawarray: return 15
            }
        }
    }

    func validate() throws {
        if let repetitions, repetitions < 1 {
            throw ValidationError("--repetitions must be at least 1 (got \(repetitions)).")
        }
        guard (1...(1 << 50)).contains(piSamples) else {
            throw ValidationError("--pi-samples must be between 1 and 2^50 (got \(piSamples)).")
        }
        guard (1...65_536).contains(mandelbrotWidth), (1...65_536).contains(mandelbrotHeight),
            mandelbrotWidth * mandelbrotHeight <= 1 << 30
        else {
            throw ValidationError(
                "--mandelbrot-width and --mandelbrot-height must be between 1 and 65536 "
                    + "and their product at most 2^30 (got \(mandelbrotWidth)×\(mandelbrotHeight)).")
        }
        guard (1...65_535).contains(mandelbrotIterations) else {
            throw ValidationError("--mandelbrot-iterations must be between 1 and 65535 (got \(mandelbrotIterations)).")
        }
        if let unknown = scalingKernels.first(where: { !["pi", "mandelbrot"].contains($0) }) {
            throw ValidationError("--scaling-kernel must be pi or mandelbrot (got \(unknown)).")
        }
        let known = Set(PoolBenchmarks.inputKinds)
        if let inputKinds, let unknown = inputKinds.split(separator: ",").first(where: { !known.contains(String($0)) }) {
            throw ValidationError("--input-kinds: unknown kind \(unknown) (known: \(PoolBenchmarks.inputKinds.joined(separator: ", "))).")
        }
        if tasks < 1 {
            throw ValidationError("--tasks must be at least 1 (got \(tasks)).")
        }
        if let bad = scalingWorkers.first(where: { $0 < 1 }) {
            throw ValidationError("--scaling-workers must be at least 1 (got \(bad)).")
        }
    }

    func run() throws {
        let repetitions = self.repetitions ?? suite.defaultRepetitions
        switch suite {
        case .ipc:
            try IPCBenchmarks(repetitions: repetitions, only: only).run { print($0.json) }
        case .pingpong:
            try PingPongBenchmark.run { print($0.json) }
        case .random:
            try RandomBenchmarks(repetitions: repetitions).run { print($0.json) }
        case .rawarray:
            try RawArrayBenchmark(repetitions: repetitions).run { print($0.json) }
        case .checkpoint:
            let pool = try options.makePool(defaultProcesses: 2)
            defer {
                pool.close()
                try? pool.join()
            }
            try CheckpointBenchmarks(pool: pool, repetitions: repetitions).run { print($0.json) }
        case .pool:
            let start = Measure.now()
            let pool = try options.makePool(defaultProcesses: Backend.automatic.resolved == .local ? 2 : nil)
            defer {
                pool.close()
                try? pool.join()
            }
            // Under the MPI backend the names start with `mpi.`, so one log holds both backends.
            let prefix = pool.backend == .mpi ? "mpi." : ""
            func emit(_ figure: Figure) {
                var figure = figure
                figure.name = prefix + figure.name
                print(figure.json)
            }
            guard try pool.apply(SquareTask(), 3) == 9 else { throw BenchmarkError.wrongResult("apply") }
            emit(Figure(name: "pool.startup", value: Measure.now() - start, unit: "s"))
            emit(Figure(name: "pool.workers", value: Double(pool.processes), unit: "processes"))
            let order = InputOrder(
                mode: inputOrder, seed: inputSeed,
                kinds: inputKinds.map { $0.split(separator: ",").map(String.init) }, samples: inputSamples)
            try PoolBenchmarks(pool: pool, repetitions: repetitions, only: only, inputOrder: order).run(emit)
        case .dispatch:
            let pool = try options.makePool()
            defer {
                pool.close()
                try? pool.join()
            }
            let prefix = pool.backend == .mpi ? "mpi." : ""
            try DispatchBenchmark(pool: pool, tasks: tasks, chunkSize: options.chunkSize ?? 1, repetitions: repetitions).run {
                var figure = $0
                figure.name = prefix + figure.name
                print(figure.json)
            }
        case .broadcast:
            try BroadcastBenchmark(repetitions: repetitions, options: options).run { print($0.json) }
        case .captured:
            try CapturedTableBenchmark(repetitions: repetitions, options: options).run { print($0.json) }
        case .kernels:
            try KernelBenchmarks(repetitions: repetitions).run { print($0.json) }
        case .scaling:
            let kernels: [ScalingKernel] = [
                .pi(MonteCarloPi(samples: piSamples, seed: 12345)),
                .mandelbrot(
                    Mandelbrot(
                        width: mandelbrotWidth, height: mandelbrotHeight,
                        maxIterations: mandelbrotIterations)),
            ].filter { scalingKernels.isEmpty || scalingKernels.contains($0.name) }
            let maximum = options.processes ?? Multiprocessing.cpuCount
            let workerCounts = scalingWorkers.isEmpty ? Array(1...maximum) : scalingWorkers
            try ScalingBenchmarks(
                kernels: kernels, workerCounts: workerCounts,
                startMethod: options.startMethod.method, repetitions: repetitions
            )
            .run { print($0.json) }
        }
    }
}
