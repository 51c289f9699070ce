@_spi(Diagnostics) import Multiprocessing

#if canImport(Glibc)
import Glibc
#endif

/// Rank 0's dispatch capacity (`swiftmp bench dispatch`, under mpirun): a `map` of tasks that
/// do nothing (`SquareTask`), chunk size 1 unless `--chunk-size` says otherwise, timed at rank 0
/// together with rank 0's CPU time (`getrusage(RUSAGE_SELF)`: every thread of rank 0, so the
/// engine thread and the caller). The figure is named after the layout — worker ranks (from
/// `OMPI_COMM_WORLD_SIZE`) and the pool's processes — so one log holds every layout:
/// `dispatch.ranks_<r>.processes_<p>.chunk_<c>` in tasks/s, with `rank0_cpu_us_per_task`
/// (median over the repetitions of rank 0's user + system time ÷ tasks) and
/// `rank0_cpu_share` (rank 0's CPU time ÷ wall time: near 1, rank 0 is the bottleneck), and
/// `apply_hot_us`, the hot `apply` round trip in the same pool (median of 1000), and
/// `engine_cpu_us_per_task`, the engine's own CPU time per task with no transport
/// (`EngineCostProbe`: the same map driven inline) — the floor under rank 0's cost — and
/// `engine_node_cpu_us_per_task`, the same with node scheduling (one slot per worker rank
/// answering bundles, `RankScheduling.node`).
struct DispatchBenchmark {
    var pool: Pool
    var tasks = 100_000
    var chunkSize = 1
    var repetitions = 3

    func run(_ emit: (Figure) -> Void) throws {
        let inputs = Array(0..<tasks)
        let expected = inputs.map { $0 &* $0 }
        // Warm-up: every worker has started and run a task.
        _ = try pool.map(SquareTask(), Array(0..<(pool.processes * 20)), chunkSize: 1)
        var rates: [Double] = [], costs: [Double] = [], shares: [Double] = []
        let idle = try Measure.idleShare {
            for _ in 0..<repetitions {
                let cpuBefore = Measure.processCPUSeconds()
                let start = Measure.now()
                let results = try pool.map(SquareTask(), inputs, chunkSize: chunkSize)
                let wall = Measure.now() - start
                let cpu = Measure.processCPUSeconds() - cpuBefore
                guard results == expected else { throw BenchmarkError.wrongResult("dispatch map") }
                rates.append(Double(tasks) / wall)
                costs.append(cpu / Double(tasks) * 1e6)
                shares.append(cpu / wall)
            }
        }
        // The hot apply round trip in the same pool (µs, median of 1000).
        var trips: [Double] = []
        for i in 0..<1_000 {
            let start = Measure.now()
            guard try pool.apply(SquareTask(), i) == i &* i else { throw BenchmarkError.wrongResult("dispatch apply") }
            trips.append((Measure.now() - start) * 1e6)
        }
        // The engine alone (no transport, workers answering inline, this thread's CPU time):
        // the floor under rank 0's cost per task at this chunk size and worker count.
        let engine =
            try EngineCostProbe.nanosecondsPerTask(
                tasks: tasks, chunkSize: chunkSize, workers: pool.processes,
                repetitions: repetitions) / 1000
        let worldSize = getenv("OMPI_COMM_WORLD_SIZE").flatMap { Int(String(cString: $0)) } ?? 1
        // The same with node scheduling: one slot per worker rank, bundles of inputs, each
        // rank's share of the processes as its lanes (what rank 0's engine pays then).
        let ranks = max(1, worldSize - 1)
        let engineNode =
            try EngineCostProbe.nanosecondsPerTask(
                tasks: tasks, chunkSize: chunkSize, workers: ranks, repetitions: repetitions,
                lanes: max(1, pool.processes / ranks)) / 1000
        let name = "dispatch.ranks_\(max(0, worldSize - 1)).processes_\(pool.processes).chunk_\(chunkSize)"
        emit(
            Figure(
                name: name, value: Measure.median(rates), unit: "tasks/s",
                extra: [
                    "min": rates.min() ?? .nan, "max": rates.max() ?? .nan,
                    "rank0_cpu_us_per_task": Measure.median(costs),
                    "rank0_cpu_share": Measure.median(shares),
                    "idle_cpu_share": idle,
                    "tasks": Double(tasks),
                    "apply_hot_us": Measure.median(trips),
                    "engine_cpu_us_per_task": engine,
                    "engine_node_cpu_us_per_task": engineNode,
                ]))
    }
}
