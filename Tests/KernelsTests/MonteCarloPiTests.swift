import Kernels
import Multiprocessing
import XCTest

final class MonteCarloPiTests: XCTestCase {
    /// The definition, one sample at a time: sample k is draw k of stream 0, x its low 32 bits,
    /// y its high 32 bits; a hit is x² + y² < 2^64.
    private func scalarHits(seed: UInt64, _ samples: Range<Int>) -> Int {
        var random = RandomStream(seed: seed)
        random.jump(to: UInt64(samples.lowerBound))
        var hits = 0
        for _ in samples {
            let draw = random.next()
            let x = Double(draw & 0xFFFF_FFFF) * 0x1p-32, y = Double(draw >> 32) * 0x1p-32
            let exact = (draw & 0xFFFF_FFFF) * (draw & 0xFFFF_FFFF) <= UInt64.max - (draw >> 32) * (draw >> 32)
            if exact { hits += 1 }
            // The exact test and the real one agree away from the circle.
            if abs(x * x + y * y - 1) > 1e-9 { XCTAssertEqual(exact, x * x + y * y < 1) }
        }
        return hits
    }

    func testAnyChunkingGivesTheOneChunkTotal() {
        let problem = MonteCarloPi(samples: 1_000_000, seed: 12345)
        let whole = problem.serial()
        for count in [1, 2, 3, 7] {
            let total = Chunks.split(0..<problem.samples, into: count).map { problem($0) }.reduce(0, +)
            XCTAssertEqual(total, whole, "\(count) chunks")
        }
        XCTAssertEqual(problem.estimate(hits: whole), Double.pi, accuracy: 0.01)
    }

    func testVectorPathMatchesTheDefinitionAtOddBoundaries() {
        let problem = MonteCarloPi(samples: 10_000, seed: 987_654_321)
        for range in [0..<10_000, 3..<4_001, 9_995..<10_000, 17..<17, 31..<97, 64..<129] {
            XCTAssertEqual(problem(range), scalarHits(seed: 987_654_321, range), "\(range)")
        }
    }

    func testReferenceHitCount() {
        // 20 000 000 samples, seed 12345: the figure every implementation (Swift, the C and NumPy
        // references in Benchmarks/) must reproduce. Its first 100 000 samples, pinned too.
        XCTAssertEqual(MonteCarloPi(samples: 100_000, seed: 12345).serial(), scalarHits(seed: 12345, 0..<100_000))
        XCTAssertEqual(MonteCarloPi(samples: 100_000, seed: 12345).serial(), 78_653)
    }
}
