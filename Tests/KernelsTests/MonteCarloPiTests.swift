import Kernels
import XCTest

final class MonteCarloPiTests: XCTestCase {
    /// The definition, one sample at a time.
    private func scalarHits(seed: UInt64, _ samples: Range<Int>) -> Int {
        var hits = 0
        for k in samples {
            let x = SplitMix64.unit(SplitMix64.draw(seed: seed, index: UInt64(2 * k)))
            let y = SplitMix64.unit(SplitMix64.draw(seed: seed, index: UInt64(2 * k + 1)))
            if x * x + y * y < 1.0 { hits += 1 }
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
        for range in [0..<10_000, 3..<4_001, 9_995..<10_000, 17..<17] {
            XCTAssertEqual(problem(range), scalarHits(seed: 987_654_321, range), "\(range)")
        }
    }

    func testFirstDrawsOfSeed12345() {
        // Draw 0 is mix(12345 + γ); pinned so the stream cannot drift silently.
        XCTAssertEqual(SplitMix64.draw(seed: 12345, index: 0),
                       SplitMix64.mix(12345 &+ 0x9E37_79B9_7F4A_7C15))
    }
}
