import XCTest

@testable import Multiprocessing

final class PoolMapTests: TimeLimitedTestCase {
    let methods: [StartMethod] = [.fork, .forkserver, .spawn, .automatic]

    func testMapMatchesSerialForEveryStartMethodSizeAndChunk() throws {
        for method in methods {
            try Pool.with(processes: 2, startMethod: method) { pool in
                for count in [0, 1, 7, 100_000] {
                    let inputs = Array(0..<count)
                    let expected = inputs.map { $0 * $0 }
                    for chunk in [1, 3, nil] as [Int?] {
                        let got = try pool.map(Square(), inputs, chunkSize: chunk)
                        XCTAssertEqual(got, expected, "\(method) n=\(count) chunk=\(String(describing: chunk))")
                    }
                }
            }
        }
    }
}

/// A plain-number function (`PlainTransport`) whose input and output differ in width: its
/// chunks run in place in the worker (`_runPlainChunk`) and its results land in the returned
/// array; `failAt` throws mid-chunk.
struct WidenAndScale: ParallelFunction {
    var failAt: UInt8? = nil
    func callAsFunction(_ x: UInt8) throws -> Double {
        if let failAt, x == failAt { throw PlainNumberRefusal(value: Int(x)) }
        return Double(x) * 1.5 - 3
    }
}

struct PlainNumberRefusal: Error { var value: Int }

/// Narrower out than in.
struct LowHalf: ParallelFunction {
    func callAsFunction(_ x: Int64) -> Int16 { Int16(truncatingIfNeeded: x &* 3) }
}

extension PoolMapTests {
    /// Plain numbers of other widths than `Int` through real workers, at chunk sizes that put
    /// every chunk under the in-place limit and one default chunk over it (320 000 `Int64`s:
    /// 2.5 MB chunks take the general path): results equal the serial ones, and an input that
    /// throws fails the map naming exactly that input.
    func testPlainNumbersOfOtherWidthsMatchSerialAndNameTheFailingInput() throws {
        XCTAssertTrue(PlainTransport.of(WidenAndScale.self) == (true, true))
        XCTAssertTrue(PlainTransport.of(LowHalf.self) == (true, true))
        for method in [StartMethod.fork, .spawn] {
            try Pool.with(processes: 2, startMethod: method) { pool in
                let bytes = (0..<50_000).map { UInt8(truncatingIfNeeded: $0 &* 7) }
                for chunk in [1, 100, nil] as [Int?] {
                    let got = try pool.map(WidenAndScale(), bytes, chunkSize: chunk)
                    XCTAssertEqual(got, bytes.map { Double($0) * 1.5 - 3 }, "\(method) chunk \(chunk ?? 0)")
                }
                for count in [1_000, 320_000] {
                    let wide = (0..<count).map { Int64($0) &* 1_000_003 }
                    XCTAssertEqual(
                        try pool.map(LowHalf(), wide), wide.map { Int16(truncatingIfNeeded: $0 &* 3) }, "\(method) n=\(count)")
                }
                // One input throws (a map fails with the lowest input among those failed so far,
                // so only one may).
                let failing = 30_123
                let once = bytes.indices.map { $0 == failing ? 200 : (bytes[$0] == 200 ? 201 : bytes[$0]) }
                XCTAssertThrowsError(try pool.map(WidenAndScale(failAt: 200), once, chunkSize: 5_000)) { error in
                    guard let remote = error as? RemoteError else { return XCTFail("\(method): \(error)") }
                    XCTAssertEqual(remote.inputIndex, failing, "\(method)")
                    XCTAssertTrue(remote.typeName.hasSuffix("PlainNumberRefusal"), "\(method): \(remote.typeName)")
                }
                // The pool goes on.
                XCTAssertEqual(try pool.map(WidenAndScale(), [1, 2]), [-1.5, 0])
            }
        }
    }

    /// Chunks of plain numbers past the in-place limit both ways (2 MB of `Int`s per chunk: the
    /// worker reads the inputs from the pool's memory a piece at a time and writes the outputs
    /// into a block it keeps, which the pool reads from there; `_PlainChunkBuffers`): results
    /// equal the serial ones map after map, sizes changing (a block reused before the pool had
    /// read it would show), with `process_vm_readv` and with it refused (the memfd); a throw in
    /// a later piece of a large chunk fails the map naming exactly its input.
    func testLargePlainChunksTravelByReferenceAndTheWorkersBlocksAreReused() throws {
        for refused in [false, true] {
            RemoteTransfer.probeFailsForTesting = refused
            defer { RemoteTransfer.probeFailsForTesting = false }
            for method in [StartMethod.fork, .spawn] {
                try Pool.with(processes: 2, startMethod: method) { pool in
                    for round in 0..<4 {
                        let inputs = (0..<(1_000_000 + round * 77_777)).map { $0 &* (round + 1) - 500_000 }
                        XCTAssertEqual(try pool.map(Square(), inputs), inputs.map { $0 * $0 }, "\(method) refused: \(refused) round \(round)")
                    }
                    let bytes = (0..<700_000).map { UInt8(truncatingIfNeeded: $0 &* 13) }
                    XCTAssertEqual(try pool.map(WidenAndScale(), bytes, chunkSize: 300_000), bytes.map { Double($0) * 1.5 - 3 })
                    // One input throws, in the second piece of its chunk (pieces of 262 144).
                    let failing = 300_000 + 270_000
                    let once = bytes.indices.map { $0 == failing ? 200 : (bytes[$0] == 200 ? 201 : bytes[$0]) }
                    XCTAssertThrowsError(try pool.map(WidenAndScale(failAt: 200), once, chunkSize: 300_000)) { error in
                        guard let remote = error as? RemoteError else { return XCTFail("\(method): \(error)") }
                        XCTAssertEqual(remote.inputIndex, failing, "\(method) refused: \(refused)")
                    }
                    // imap's chunks (its own inputs, held per chunk) the same way.
                    let streamed = (0..<700_000).map { $0 - 350_000 }
                    XCTAssertEqual(
                        try pool.imap(Square(), streamed, chunkSize: 300_000).map { try $0.get() }, streamed.map { $0 * $0 },
                        "\(method) refused: \(refused) imap")
                    XCTAssertEqual(try pool.map(Square(), [3, 4]), [9, 16], "the pool goes on")
                }
            }
        }
    }

    /// Inputs the library produces into a buffer of its own (a lazy collection), in large
    /// chunks sent as a reference to that buffer (owned by the call's job): a map failing in
    /// its first chunk, with the other chunks still queued, then two calls at once reusing the
    /// buffers — every result right, with `process_vm_readv` and with the memfd.
    func testLargeChunksOfProducedInputsOutliveAFailedCall() throws {
        for refused in [false, true] {
            RemoteTransfer.probeFailsForTesting = refused
            defer { RemoteTransfer.probeFailsForTesting = false }
            try Pool.with(processes: 2, startMethod: .fork) { pool in
                for round in 0..<3 {
                    let n = 1_400_000 + round * 1_111
                    let bytes = (0..<n).lazy.map { UInt8(truncatingIfNeeded: $0 &* (round + 3)) }
                    let once = (0..<n).lazy.map { $0 == 10 ? 200 : (bytes[$0] == 200 ? 201 : bytes[$0]) }
                    XCTAssertThrowsError(try pool.map(WidenAndScale(failAt: 200), once, chunkSize: 300_000))
                    let a = try pool.mapAsync(WidenAndScale(), bytes, chunkSize: 300_000)
                    let other = (0..<n).lazy.map { UInt8(truncatingIfNeeded: $0 &* 7 &+ round) }
                    let b = try pool.mapAsync(WidenAndScale(), other, chunkSize: 300_000)
                    XCTAssertTrue(try a.get() == bytes.map { Double($0) * 1.5 - 3 }, "refused \(refused) round \(round) a")
                    XCTAssertTrue(try b.get() == other.map { Double($0) * 1.5 - 3 }, "refused \(refused) round \(round) b")
                }
            }
        }
    }
}
