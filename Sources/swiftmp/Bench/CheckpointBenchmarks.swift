import Multiprocessing

#if canImport(Glibc)
import Glibc
#endif

/// A task of about `microseconds` µs (a spin on the monotonic clock: the same on any core).
struct SpinTask: ParallelFunction {
    var microseconds: Int
    func callAsFunction(_ x: Int) -> Int {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        let end = Int(ts.tv_sec) * 1_000_000_000 + Int(ts.tv_nsec) + microseconds * 1000
        repeat {
            clock_gettime(CLOCK_MONOTONIC, &ts)
        } while Int(ts.tv_sec) * 1_000_000_000 + Int(ts.tv_nsec) < end
        return x &* x
    }
}

/// What a checkpoint journal costs a `map` at chunk size 100: the same map with and without
/// `checkpoint:`, interleaved (each repetition runs both, in alternating order, so both see
/// the same machine load), on trivial tasks (`SquareTask`, 2 M inputs by default), on ~1 µs
/// tasks and on ~10 µs tasks. Each journal is a fresh file in /tmp, removed after.
///
/// Names: `checkpoint.map.<n>.square`, `checkpoint.map.<n>.spin_1us` and
/// `checkpoint.map.<n>.spin_10us`, in tasks/s of the checkpointed map, with `plain` (the plain map's median rate) and `vs_plain` (the median
/// over the repetitions of checkpointed ÷ plain rate in the same repetition: 1 is free), and
/// the CPU time of this process (the pool's thread, the journal's writer; not the workers) per
/// map, `parent_cpu_ms` and `plain_parent_cpu_ms` (medians): on a busy machine the wall clock
/// also counts the time other processes had the cores.
struct CheckpointBenchmarks {
    var pool: Pool
    var repetitions = 5
    var trivialTasks = 2_000_000
    var spinTasks = 100_000
    var shortSpinTasks = 500_000

    func run(_ emit: (Figure) -> Void) throws {
        try compare("checkpoint.map.\(trivialTasks).square", SquareTask(), count: trivialTasks, emit)
        try compare("checkpoint.map.\(shortSpinTasks).spin_1us", SpinTask(microseconds: 1), count: shortSpinTasks, emit)
        try compare("checkpoint.map.\(spinTasks).spin_10us", SpinTask(microseconds: 10), count: spinTasks, emit)
    }

    private func compare<F: ParallelFunction>(_ name: String, _ function: F, count: Int, _ emit: (Figure) -> Void) throws
    where F.Input == Int, F.Output == Int {
        let inputs = Array(0..<count)
        let expected = inputs.map { $0 &* $0 }
        let journal = "/tmp/swiftmp-bench-checkpoint-\(getpid()).journal"
        defer { unlink(journal) }
        var plain: [Double] = [], checkpointed: [Double] = []
        var plainCPU: [Double] = [], checkpointedCPU: [Double] = []
        for rep in 0..<repetitions {
            for step in 0..<2 {
                let withJournal = (rep + step) % 2 == 1
                unlink(journal)
                let start = Measure.now(), cpuStart = Measure.processCPUSeconds()
                let results =
                    withJournal
                    ? try pool.map(function, inputs, chunkSize: 100, checkpoint: journal)
                    : try pool.map(function, inputs, chunkSize: 100)
                let rate = Double(count) / (Measure.now() - start)
                let cpu = Measure.processCPUSeconds() - cpuStart
                guard results == expected else { throw BenchmarkError.wrongResult("\(name) (journal: \(withJournal))") }
                if withJournal {
                    checkpointed.append(rate)
                    checkpointedCPU.append(cpu)
                } else {
                    plain.append(rate)
                    plainCPU.append(cpu)
                }
            }
        }
        emit(
            Figure(
                name: name, value: Measure.median(checkpointed), unit: "tasks/s",
                extra: [
                    "plain": Measure.median(plain), "vs_plain": Measure.median(zip(checkpointed, plain).map { $0 / $1 }),
                    "min_vs_plain": zip(checkpointed, plain).map { $0 / $1 }.min() ?? .nan,
                    "max_vs_plain": zip(checkpointed, plain).map { $0 / $1 }.max() ?? .nan,
                    "parent_cpu_ms": 1000 * Measure.median(checkpointedCPU),
                    "plain_parent_cpu_ms": 1000 * Measure.median(plainCPU),
                ]))
    }
}
