import Multiprocessing
import XCTest

@testable import Kernels

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
        for range in [0..<10_000, 3..<4_001, 9_995..<10_000, 17..<17, 31..<97, 64..<129, 1..<160, 2..<98] {
            XCTAssertEqual(problem(range), scalarHits(seed: 987_654_321, range), "\(range)")
            // Both step widths, whatever the build: two groups (32 samples) and four (64, AVX-512
            // builds), the rest of the chunk in narrower steps.
            for fourGroups in [false, true] {
                XCTAssertEqual(
                    problem.hits(range, fourGroups: fourGroups), scalarHits(seed: 987_654_321, range),
                    "\(range), four groups: \(fourGroups)")
            }
        }
    }

    func testReferenceHitCount() {
        // 20 000 000 samples, seed 12345: the figure every implementation (Swift, the C and NumPy
        // references in Benchmarks/) must reproduce. Its first 100 000 samples, pinned too.
        XCTAssertEqual(MonteCarloPi(samples: 100_000, seed: 12345).serial(), scalarHits(seed: 12345, 0..<100_000))
        XCTAssertEqual(MonteCarloPi(samples: 100_000, seed: 12345).serial(), 78_653)
    }

    func testVectorPhiloxWordsEqualTheStreamsDraws() {
        // Both 8-lane groups against RandomStream, bit for bit, with counters past 2^32 blocks
        // (the high counter word) and a seed with a non-zero high key word.
        let seed: UInt64 = 0x0123_4567_89AB_CDEF
        let key = RandomStream.key(seed)
        var keys = [SIMD8<UInt64>]()
        for r in 0..<10 {
            let round = UInt32(r)
            keys.append(SIMD8(repeating: UInt64(key[0] &+ round &* 0x9E37_79B9)))
            keys.append(SIMD8(repeating: UInt64(key[1] &+ round &* 0xBB67_AE85)))
        }
        for start: UInt64 in [0, 5, (1 << 32) - 3, 1 << 40] {
            let first = SIMD8<UInt64>(repeating: start) &+ SIMD8(0, 1, 2, 3, 4, 5, 6, 7)
            let words = MonteCarloPi.philox(first, first &+ 8, keys: keys)
            let groups = [(words.0, words.1, words.2, words.3), (words.4, words.5, words.6, words.7)]
            for (g, (x0, x1, x2, x3)) in groups.enumerated() {
                for lane in 0..<8 {
                    let block = start + UInt64(8 * g + lane)
                    XCTAssertEqual(
                        x0[lane] | x1[lane] << 32,
                        RandomStream.draw(seed: seed, stream: 0, index: 2 * block), "block \(block)")
                    XCTAssertEqual(
                        x2[lane] | x3[lane] << 32,
                        RandomStream.draw(seed: seed, stream: 0, index: 2 * block + 1), "block \(block)")
                }
            }
        }
        // And through the kernel, past 2^33 samples.
        let problem = MonteCarloPi(samples: 1 << 34, seed: seed)
        let range = (1 << 33) + 3..<(1 << 33) + 200
        XCTAssertEqual(problem(range), scalarHits(seed: seed, range))
    }
}
