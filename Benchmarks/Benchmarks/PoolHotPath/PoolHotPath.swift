import Benchmark
import Multiprocessing
import Synchronization

/// The trivial task (Python's `x*x`), at file scope so that workers find it by name.
struct Square: ParallelFunction {
    func callAsFunction(_ x: Int) -> Int { x &* x }
}

/// The pool shared by the benchmarks: started in each benchmark's setup (outside the timing),
/// closed and joined in its teardown.
let sharedPool = Mutex<Pool?>(nil)

func startPool() throws {
    let pool = try Pool(processes: 2)
    guard try pool.apply(Square(), 3) == 9 else { throw PoolError(.invalidArgument, "Square(3) != 9") }
    sharedPool.withLock { $0 = pool }
}

func stopPool() throws {
    let pool = sharedPool.withLock { pool -> Pool? in
        defer { pool = nil }
        return pool
    }
    pool?.close()
    try pool?.join()
}

func currentPool() -> Pool {
    guard let pool = sharedPool.withLock({ $0 }) else { preconditionFailure("the pool was not started in setup") }
    return pool
}

let inputs = Array(0..<10_000)
let expected = inputs.map { $0 &* $0 }

let benchmarks: @Sendable () -> Void = {
    let configuration = Benchmark.Configuration(
        metrics: [.wallClock, .throughput, .mallocCountTotal],
        maxDuration: .seconds(3)
    )
    Benchmark(
        "apply round trip", configuration: configuration,
        closure: { benchmark in
            let pool = currentPool()
            for i in benchmark.scaledIterations {
                blackHole(try pool.apply(Square(), i))
            }
        }, setup: startPool, teardown: stopPool)
    Benchmark(
        "map 10000, chunk 100", configuration: configuration,
        closure: { benchmark in
            let pool = currentPool()
            for _ in benchmark.scaledIterations {
                let results = try pool.map(Square(), inputs, chunkSize: 100)
                precondition(results == expected, "map returned a wrong result")
                blackHole(results)
            }
        }, setup: startPool, teardown: stopPool)
}
