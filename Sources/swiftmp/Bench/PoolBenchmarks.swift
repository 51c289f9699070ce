import Multiprocessing
#if canImport(Glibc)
import Glibc
#endif

/// The trivial task of the pool benchmarks (Python's `x*x`).
struct SquareTask: ParallelFunction {
    func callAsFunction(_ x: Int) -> Int { x &* x }
}

/// Pool throughput and latency, measured the same way as `Scripts/bench_python_pool.py` measures
/// Python's multiprocessing (`BENCHMARKS.md` puts the two side by side).
struct PoolBenchmarks {
    var pool: Pool
    var tasks = 200_000
    var repetitions = 10

    func run(_ emit: (Figure) -> Void) throws {
        let inputs = Array(0..<tasks)
        let expected = inputs.map { $0 &* $0 }
        for (label, chunk) in [("default", nil), ("100", 100), ("1", 1)] as [(String, Int?)] {
            var rates: [Double] = []
            let reps = chunk == 1 ? max(3, repetitions / 3) : repetitions
            let idle = try Measure.idleShare {
                for _ in 0..<reps {
                    let start = Measure.now()
                    let results = try pool.map(SquareTask(), inputs, chunkSize: chunk)
                    rates.append(Double(tasks) / (Measure.now() - start))
                    guard results == expected else { throw BenchmarkError.wrongResult("map chunk \(label)") }
                }
            }
            emit(Figure(name: "pool.map.\(tasks).chunk_\(label)", value: Measure.median(rates), unit: "tasks/s",
                        extra: ["min": rates.min() ?? .nan, "max": rates.max() ?? .nan, "idle_cpu_share": idle]))
        }
        // What a progress report and a checkpoint journal cost on a long map (10× the tasks,
        // so that the journal's fixed cost per call — two fsyncs — weighs little) at chunk
        // size 100, beside the plain map measured in the same rounds (interleaved: the same
        // machine load).
        let long = Array(0..<(10 * tasks))
        let longExpected = long.map { $0 &* $0 }
        var rates: [[Double]] = [[], [], []]
        let journal = "/tmp/swiftmp-bench-\(getpid()).journal"
        for _ in 0..<max(3, repetitions / 2) {
            for variant in 0..<3 {
                unlink(journal)
                let start = Measure.now()
                let results: [Int]
                switch variant {
                case 0: results = try pool.map(SquareTask(), long, chunkSize: 100)
                case 1: results = try pool.map(SquareTask(), long, chunkSize: 100, progress: .callback(every: 1) { _ in })
                default: results = try pool.map(SquareTask(), long, chunkSize: 100, checkpoint: journal)
                }
                rates[variant].append(Double(long.count) / (Measure.now() - start))
                guard results == longExpected else { throw BenchmarkError.wrongResult("map variant \(variant)") }
            }
        }
        unlink(journal)
        for (variant, name) in ["plain", "progress", "checkpoint"].enumerated() {
            emit(Figure(name: "pool.map.\(long.count).chunk_100.\(name)", value: Measure.median(rates[variant]),
                        unit: "tasks/s", extra: ["vs_plain": Measure.median(rates[variant]) / Measure.median(rates[0])]))
        }
        for (label, pause) in [("hot", 0.0), ("cold", 0.001)] {
            var latencies: [Double] = []
            let rounds = pause == 0 ? 2_000 : 300
            let idle = try Measure.idleShare {
                for i in 0..<rounds {
                    if pause > 0 { usleep(UInt32(pause * 1e6)) }
                    let start = Measure.now()
                    let value = try pool.apply(SquareTask(), i)
                    latencies.append((Measure.now() - start) * 1e6)
                    guard value == i &* i else { throw BenchmarkError.wrongResult("apply") }
                }
            }
            emit(Figure(name: "pool.apply.roundtrip.\(label)", value: Measure.median(latencies), unit: "us",
                        extra: ["min": latencies.min() ?? .nan, "idle_cpu_share": idle]))
        }
    }
}
