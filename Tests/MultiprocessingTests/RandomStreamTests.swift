import Foundation
import Multiprocessing
import XCTest

/// `Philox4x32` against the Random123 known-answer vectors, and `RandomStream`'s addressing:
/// draw n of stream s of seed k, whatever the buffering, jumps, fills, coding or process.
final class RandomStreamTests: XCTestCase {
    /// Random123's kat_vectors for Philox4x32 (counter, key → output), 10 and 7 rounds.
    static let knownAnswers: [(rounds: Int, counter: SIMD4<UInt32>, key: SIMD2<UInt32>, output: SIMD4<UInt32>)] = [
        (10, SIMD4(0, 0, 0, 0), SIMD2(0, 0), SIMD4(0x6627_E8D5, 0xE169_C58D, 0xBC57_AC4C, 0x9B00_DBD8)),
        (10, SIMD4(repeating: 0xFFFF_FFFF), SIMD2(repeating: 0xFFFF_FFFF), SIMD4(0x408F_276D, 0x41C8_3B0E, 0xA20B_C7C6, 0x6D54_51FD)),
        (
            10, SIMD4(0x243F_6A88, 0x85A3_08D3, 0x1319_8A2E, 0x0370_7344), SIMD2(0xA409_3822, 0x299F_31D0),
            SIMD4(0xD16C_FE09, 0x94FD_CCEB, 0x5001_E420, 0x2412_6EA1)
        ),
        (7, SIMD4(0, 0, 0, 0), SIMD2(0, 0), SIMD4(0x5F6F_B709, 0x0D89_3F64, 0x4F12_1F81, 0x4F73_0A48)),
        (7, SIMD4(repeating: 0xFFFF_FFFF), SIMD2(repeating: 0xFFFF_FFFF), SIMD4(0x5207_DDC2, 0x4516_5E59, 0x4D8E_E751, 0x8C52_F662)),
        (
            7, SIMD4(0x243F_6A88, 0x85A3_08D3, 0x1319_8A2E, 0x0370_7344), SIMD2(0xA409_3822, 0x299F_31D0),
            SIMD4(0x4DFC_CABA, 0x190A_87F0, 0xC473_62BA, 0xB6B5_242A)
        ),
    ]

    func testPhiloxKnownAnswers() {
        for vector in Self.knownAnswers {
            XCTAssertEqual(
                Philox4x32.block(vector.counter, key: vector.key, rounds: vector.rounds), vector.output,
                "\(vector.rounds) rounds, counter \(vector.counter)")
        }
    }

    /// The vector path (sixteen blocks in 64-bit lanes, high halves ignored) is the same function.
    func testVectorBlocksEqualTheScalarBlock() {
        var random = SystemRandomNumberGenerator()
        for vector in Self.knownAnswers where vector.rounds == 10 {
            let garbage = SIMD16<UInt64>((0..<16).map { _ in UInt64.random(in: 0...UInt64.max, using: &random) & ~0xFFFF_FFFF })
            func lane(_ word: UInt32) -> SIMD16<UInt64> { SIMD16(repeating: UInt64(word)) | garbage }
            let (x0, x1, x2, x3) = Philox4x32.blocks(
                lane(vector.counter[0]), lane(vector.counter[1]), lane(vector.counter[2]),
                lane(vector.counter[3]), keys: Philox4x32.roundKeys(vector.key))
            for i in 0..<16 {
                XCTAssertEqual(SIMD4(UInt32(x0[i]), UInt32(x1[i]), UInt32(x2[i]), UInt32(x3[i])), vector.output)
                XCTAssertEqual(x0[i] >> 32 | x1[i] >> 32 | x2[i] >> 32 | x3[i] >> 32, 0)
            }
        }
        let key = SIMD2<UInt32>(0x1234_5678, 0x9ABC_DEF0)
        let c = (0..<4).map { _ in SIMD16<UInt64>((0..<16).map { _ in UInt64(UInt32.random(in: 0...UInt32.max, using: &random)) }) }
        let (x0, x1, x2, x3) = Philox4x32.blocks(c[0], c[1], c[2], c[3], keys: Philox4x32.roundKeys(key))
        for i in 0..<16 {
            let expected = Philox4x32.block(SIMD4(UInt32(c[0][i]), UInt32(c[1][i]), UInt32(c[2][i]), UInt32(c[3][i])), key: key)
            XCTAssertEqual(SIMD4(UInt32(x0[i]), UInt32(x1[i]), UInt32(x2[i]), UInt32(x3[i])), expected)
        }
    }

    /// Draw 2b of stream s of seed k is block b's words 0 and 1, draw 2b + 1 its words 2 and 3,
    /// with the counter (b, s) and the key k.
    func testStreamAddressesPhiloxBlocks() {
        var zero = RandomStream(seed: 0, stream: 0)
        XCTAssertEqual(zero.next(), 0xE169_C58D_6627_E8D5, "the first known answer")
        XCTAssertEqual(zero.next(), 0x9B00_DBD8_BC57_AC4C)
        for (seed, stream, block) in [
            (UInt64(0x299F_31D0_A409_3822), UInt64(0x0370_7344_1319_8A2E), UInt64(0x05A3_08D3_243F_6A88)),
            (12345, 0, 17), (UInt64.max, UInt64.max, (UInt64(1) << 63) - 1),
        ] {
            let x = Philox4x32.block(
                SIMD4(
                    UInt32(truncatingIfNeeded: block), UInt32(truncatingIfNeeded: block >> 32),
                    UInt32(truncatingIfNeeded: stream), UInt32(truncatingIfNeeded: stream >> 32)),
                key: SIMD2(UInt32(truncatingIfNeeded: seed), UInt32(truncatingIfNeeded: seed >> 32)))
            var random = RandomStream(seed: seed, stream: stream)
            random.jump(to: 2 * block)
            XCTAssertEqual(random.next(), UInt64(x[0]) | UInt64(x[1]) << 32)
            XCTAssertEqual(random.next(), UInt64(x[2]) | UInt64(x[3]) << 32)
        }
    }

    func testNextEqualsDrawComputedAloneAcrossRefills() {
        for (seed, stream) in [(UInt64(42), UInt64(0)), (7, 1), (UInt64.max, UInt64.max)] {
            var random = RandomStream(seed: seed, stream: stream)
            for n in 0..<200 {
                XCTAssertEqual(random.position, UInt64(n))
                XCTAssertEqual(random.next(), RandomStream.draw(seed: seed, stream: stream, index: UInt64(n)), "draw \(n)")
            }
        }
    }

    func testJumpFillStreamAndCoding() throws {
        let reference = (0..<300).map { RandomStream.draw(seed: 99, stream: 5, index: UInt64($0)) }
        for start in [0, 1, 31, 32, 33, 63, 64, 65, 101, 127] {
            var jumped = RandomStream(seed: 99, stream: 5)
            jumped.jump(by: UInt64(start))
            XCTAssertEqual(jumped.position, UInt64(start))
            XCTAssertEqual(jumped.next(), reference[start])
            for count in [0, 1, 31, 32, 33, 63, 64, 65, 100, 129, 150] {
                var random = RandomStream(seed: 99, stream: 5)
                for _ in 0..<start { _ = random.next() }
                var buffer = [UInt64](repeating: 0, count: count)
                random.fill(&buffer)
                XCTAssertEqual(buffer, Array(reference[start..<start + count]), "fill \(count) from \(start)")
                XCTAssertEqual(random.next(), reference[start + count], "next after fill \(count) from \(start)")
            }
        }
        var random = RandomStream(seed: 99, stream: 4)
        var other = random.stream(5)
        XCTAssertEqual(other.next(), reference[0])
        XCTAssertNotEqual(random.next(), reference[0], "streams differ")
        for _ in 0..<40 { _ = random.next() }
        let decoded = try JSONDecoder().decode(RandomStream.self, from: JSONEncoder().encode(random))
        XCTAssertEqual(decoded, random)
        var copy = decoded
        XCTAssertEqual(copy.next(), random.next(), "a decoded stream goes on where the original was")
        XCTAssertEqual(copy.position, 42)
    }

    /// Streams read through `next()` and `fill` across every kind of refill: the first ones, a
    /// refill whose 32 blocks cross a change of the counter's high word (block 2^32·h − 1 to
    /// 2^32·h), the refills after it, jumps back to an earlier high word, and the last blocks
    /// before 2^64 draws. Each draw equals the one computed alone, and a hash of all of them is pinned
    /// (computed before the generator's refill was rewritten), so the streams' values cannot
    /// drift.
    func testDrawsPinnedAcrossCounterHighWordChanges() {
        let cases: [(seed: UInt64, stream: UInt64, start: UInt64)] = [
            (0, 0, 0), (42, 7, 0), (12345, 3, 5), (UInt64.max, UInt64.max, 0),
            (0x0123_4567_89AB_CDEF, 0xFEDC_BA98_7654_3210, 2 * ((1 << 32) - 40)),
            (99, 1 << 32, 2 * ((1 << 32) - 16) + 1), (7, 5, 2 * ((3 << 32) - 1)),
            (1, 2, UInt64.max - 700), (3, 4, 2 * ((1 << 33) - 31)),
        ]
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for (seed, stream, start) in cases {
            var random = RandomStream(seed: seed, stream: stream)
            random.jump(to: start)
            var filled = RandomStream(seed: seed, stream: stream)
            filled.jump(to: start)
            var buffer = [UInt64](repeating: 0, count: 300)
            filled.fill(&buffer)
            for n in 0..<300 {
                let position = start &+ UInt64(n)
                let expected = RandomStream.draw(seed: seed, stream: stream, index: position)
                let drawn = random.next()
                XCTAssertEqual(drawn, expected, "seed \(seed), stream \(stream), draw \(position) through next()")
                XCTAssertEqual(buffer[n], expected, "seed \(seed), stream \(stream), draw \(position) through fill")
                hash = (hash ^ drawn) &* 0x0000_0100_0000_01b3
            }
            // Back to an earlier high word of the counter, then on across the change again.
            random.jump(to: start)
            for n in 0..<100 {
                XCTAssertEqual(random.next(), RandomStream.draw(seed: seed, stream: stream, index: start &+ UInt64(n)))
            }
        }
        XCTAssertEqual(hash, Self.pinnedHash, "the streams' values changed")
    }

    static let pinnedHash: UInt64 = 0x7C56_E964_FAFC_B768

    func testUniformEnoughForASmokeTest() {
        // Not a statistical test suite (that is the paper's BigCrush): 2^16 doubles, mean and
        // the 16 bins of the top nibble within 5 standard deviations.
        var random = RandomStream(seed: 2024, stream: 3)
        let count = 1 << 16
        var bins = [Int](repeating: 0, count: 16)
        var sum = 0.0
        for _ in 0..<count {
            let u = Double.random(in: 0..<1, using: &random)
            sum += u
            bins[Int(u * 16)] += 1
        }
        XCTAssertEqual(sum / Double(count), 0.5, accuracy: 5 * (1.0 / 12 / Double(count)).squareRoot())
        let expected = Double(count) / 16
        for bin in bins { XCTAssertEqual(Double(bin), expected, accuracy: 5 * (expected * 15 / 16).squareRoot()) }
    }
}

/// Input i draws from stream i: a random walk of 100 steps. File scope, so workers find it.
struct RandomWalk: ParallelFunction {
    var seed: UInt64
    func callAsFunction(_ i: Int) -> Double {
        var random = RandomStream(seed: seed, stream: UInt64(i))
        var position = 0.0
        for _ in 0..<100 { position += Double.random(in: -1...1, using: &random) }
        return position
    }
}

final class RandomStreamPoolTests: XCTestCase {
    /// The results do not depend on the worker count or the chunk size: input i's numbers
    /// come from stream i, wherever it runs.
    func testResultsIdenticalAcrossWorkerCountsAndChunkSizes() throws {
        let walk = RandomWalk(seed: 42)
        let inputs = Array(0..<200)
        let serial = inputs.map { walk($0) }
        XCTAssertEqual(Set(serial).count, serial.count, "every input has its own numbers")
        for workers in [1, 2, 3] {
            try Pool.with(processes: workers, backend: .local) { pool in
                for chunkSize in [1, 7, 64] {
                    XCTAssertEqual(
                        try pool.map(walk, inputs, chunkSize: chunkSize), serial,
                        "\(workers) workers, chunk size \(chunkSize)")
                }
                let unordered = try pool.imapUnordered(walk, inputs, chunkSize: 5).map { try $0.get() }
                XCTAssertEqual(unordered.sorted(), serial.sorted(), "\(workers) workers, imapUnordered")
            }
        }
    }
}
