import Multiprocessing

/// `RandomStream` (Philox4x32-10) on one core: draws per second through `next()` (the
/// `RandomNumberGenerator` interface, 32 draws computed at a time), through `fill` (into a
/// 32 KiB buffer, refilled), and as `Double.random(in: 0..<1, using:)`. The draws are summed
/// (wrapping): `next()` and `fill` must give the same sum, and a sample of draws must equal the
/// ones computed alone (`RandomStream.draw`), so a fast wrong generator fails instead of
/// reporting.
///
/// Names: `random.next`, `random.fill`, `random.double`, in draws/s, with `min`, `max`,
/// `runs` and `ns_per_draw` (of the median).
struct RandomBenchmarks {
    var repetitions = 5
    var draws = 1 << 27
    static let seed: UInt64 = 12345
    static let stream: UInt64 = 3

    func run(_ emit: (Figure) -> Void) throws {
        try checkSample()
        var nextSum: UInt64 = 0
        let nextTimes = try timed {
            var random = Measure.opaque(RandomStream(seed: Self.seed, stream: Self.stream))
            var sum: UInt64 = 0
            for _ in 0..<draws { sum &+= random.next() }
            nextSum = Measure.opaque(sum)
        }
        emit(figure("random.next", nextTimes))

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

    private func timed(_ body: () throws -> Void) throws -> [Double] {
        try (0..<repetitions).map { _ in
            let start = Measure.now()
            try body()
            return Measure.now() - start
        }
    }

    private func figure(_ name: String, _ times: [Double]) -> Figure {
        let rates = times.map { Double(draws) / $0 }
        return Figure(name: name, value: Measure.median(rates), unit: "draws/s",
                      extra: ["min": rates.min() ?? .nan, "max": rates.max() ?? .nan, "runs": Double(times.count),
                              "ns_per_draw": 1e9 / Measure.median(rates)])
    }
}
