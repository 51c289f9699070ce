import Kernels
import Multiprocessing

#if canImport(Glibc)
import Glibc
#endif

/// `RandomStream` (Philox4x32-10) on one core: draws per second through `next()` (the
/// `RandomNumberGenerator` interface, 32 draws computed at a time), through `fill` (into a
/// 32 KiB buffer, refilled), and as `Double.random(in: 0..<1, using:)`. The draws are summed
/// (wrapping): `next()` and `fill` must give the same sum, and a sample of draws must equal the
/// ones computed alone (`RandomStream.draw`), so a fast wrong generator fails instead of
/// reporting.
///
/// The reference is `random.kernel`: the π kernel (`MonteCarloPi`), which computes the same
/// Philox blocks in vector registers and consumes them there, run over as many samples (one
/// draw each) in the same process — so `next_per_kernel` compares them under the same load.
///
/// Names: `random.next`, `random.fill`, `random.double`, `random.kernel`, in draws/s (wall
/// clock), with `min`, `max`, `runs`, `ns_per_draw` (of the median) and `cpu_draws_per_s`
/// (the median over the thread's CPU time: on a busy machine the wall clock counts the time
/// other processes had the core). `random.next` also has `next_per_kernel`, the ratio of the
/// CPU-time rates.
struct RandomBenchmarks {
    var repetitions = 5
    var draws = 1 << 27
    static let seed: UInt64 = 12345
    static let stream: UInt64 = 3

    func run(_ emit: (Figure) -> Void) throws {
        try checkSample()
        let pi = MonteCarloPi(samples: draws, seed: Self.seed)
        var kernelHits = 0
        let kernelTimes = try timed {
            kernelHits = Measure.opaque(pi).serial()
        }
        guard abs(pi.estimate(hits: kernelHits) - Double.pi) < 0.001 else {
            throw BenchmarkError.wrongResult("random.kernel: π ≈ \(pi.estimate(hits: kernelHits))")
        }
        var nextSum: UInt64 = 0
        let nextTimes = try timed {
            var random = Measure.opaque(RandomStream(seed: Self.seed, stream: Self.stream))
            var sum: UInt64 = 0
            for _ in 0..<draws { sum &+= random.next() }
            nextSum = Measure.opaque(sum)
        }
        var next = figure("random.next", nextTimes)
        let kernel = figure("random.kernel", kernelTimes)
        next.extra["next_per_kernel"] = (next.extra["cpu_draws_per_s"] ?? .nan) / (kernel.extra["cpu_draws_per_s"] ?? .nan)
        emit(next)

        var fillSum: UInt64 = 0
        var buffer = [UInt64](repeating: 0, count: 4096)
        let fillTimes = try timed {
            var random = Measure.opaque(RandomStream(seed: Self.seed, stream: Self.stream))
            var sum: UInt64 = 0
            for _ in 0..<(draws / buffer.count) {
                random.fill(&buffer)
                for value in buffer { sum &+= value }
            }
            fillSum = Measure.opaque(sum)
        }
        guard nextSum == fillSum else {
            throw BenchmarkError.wrongResult("random: next() and fill gave different draws (sums \(nextSum), \(fillSum))")
        }
        emit(figure("random.fill", fillTimes))

        let doubleTimes = try timed {
            var random = Measure.opaque(RandomStream(seed: Self.seed, stream: Self.stream))
            var sum = 0.0
            for _ in 0..<draws { sum += Double.random(in: 0..<1, using: &random) }
            let mean = sum / Double(draws)
            guard abs(mean - 0.5) < 0.001 else { throw BenchmarkError.wrongResult("random.double: mean \(mean)") }
        }
        emit(figure("random.double", doubleTimes))
        emit(kernel)
    }

    /// Draws around the 32-draw refills, through next() and fill, against draws computed alone.
    private func checkSample() throws {
        var random = RandomStream(seed: Self.seed, stream: Self.stream)
        var filled = [UInt64](repeating: 0, count: 200)
        var other = RandomStream(seed: Self.seed, stream: Self.stream)
        _ = other.next()
        other.fill(&filled)
        for i in 0..<200 {
            let expected = RandomStream.draw(seed: Self.seed, stream: Self.stream, index: UInt64(i))
            guard random.next() == expected, i == 0 || filled[i - 1] == expected else {
                throw BenchmarkError.wrongResult("random: draw \(i) differs from RandomStream.draw")
            }
        }
    }

    /// Each run's (wall, thread CPU) seconds.
    private func timed(_ body: () throws -> Void) throws -> [(wall: Double, cpu: Double)] {
        try (0..<repetitions).map { _ in
            let start = Measure.now(), cpuStart = try threadCPUSeconds()
            try body()
            return (Measure.now() - start, try threadCPUSeconds() - cpuStart)
        }
    }

    private func threadCPUSeconds() throws -> Double {
        var ts = timespec()
        guard clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) == 0 else {
            throw BenchmarkError.setup("clock_gettime(CLOCK_THREAD_CPUTIME_ID) failed (errno \(errno)): this kernel gives no per-thread CPU clock")
        }
        return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
    }

    private func figure(_ name: String, _ times: [(wall: Double, cpu: Double)]) -> Figure {
        let rates = times.map { Double(draws) / $0.wall }
        return Figure(
            name: name, value: Measure.median(rates), unit: "draws/s",
            extra: [
                "min": rates.min() ?? .nan, "max": rates.max() ?? .nan, "runs": Double(times.count),
                "ns_per_draw": 1e9 / Measure.median(rates),
                "cpu_draws_per_s": Measure.median(times.map { Double(draws) / $0.cpu }),
            ])
    }
}
