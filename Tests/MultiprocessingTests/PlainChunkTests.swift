import XCTest

@testable import Multiprocessing

/// The worker's chunk loop for plain numbers (`ParallelFunction._runPlainChunk`): inputs read
/// from the message and outputs written into the reply in place. Each case is checked against
/// the general path's bytes (the same function with a `Codable` wrapper that forces it), in
/// one process, with no pool.
final class PlainChunkTests: XCTestCase {
    func testWhichTypesTravelAsPlainNumbers() {
        XCTAssertTrue(HalfUnless._plainTransport() == (true, true))
        XCTAssertTrue(OwnInputEncoding._plainTransport() == (false, true), "its own input encoding")
        XCTAssertTrue(ThreeXPlusOne<Int>._plainTransport() == (true, true))
        XCTAssertTrue(NotPlain._plainTransport() == (false, false))
        XCTAssertTrue(PlainTransport.of(OwnInputEncoding.self) == (false, true), "cached as asked")
    }

    struct NotPlain: ParallelFunction {
        func callAsFunction(_ x: String) -> Bool { x.isEmpty }
    }

    struct HalfUnless: ParallelFunction {
        var failAt: Int
        func callAsFunction(_ x: UInt16) throws -> Double {
            if Int(x) == failAt { throw Refused(value: Int(x)) }
            return Double(x) * 0.5
        }
    }

    struct Refused: Error { var value: Int }

    /// The reply a chunk over `inputs` writes, and where `progress` was left.
    private func reply<F: ParallelFunction>(_ function: F, _ inputs: [F.Input]) throws -> (bytes: [UInt8], progress: Int)
    where F.Input: Codable {
        var message = WireWriter()
        try message.encodeArray(inputs)
        var reply = WireWriter()
        reply.write(UInt8(0xAA)) // a header the failure replaces
        let progress = UnsafeMutablePointer<Int>.allocate(capacity: 1)
        defer { progress.deallocate() }
        progress.pointee = -1
        try message.bytes.withUnsafeBytes { raw in
            var reader = WireReader(raw)
            let failed = { (writer: inout WireWriter, index: Int, _: any Error) in
                writer = WireWriter()
                writer.write(UInt8(0xEE))
                writer.write(Int64(index))
            }
            if try !function._runPlainChunk(&reader, into: &reply, progress: progress, failed: failed) {
                try function._runChunk(&reader, into: &reply, progress: progress, failed: failed)
            }
            XCTAssertTrue(reader.isAtEnd, "the whole message read")
        }
        return (reply.bytes, progress.pointee)
    }

    /// What the general path writes: the header (or the failure), then the outputs before
    /// the failing input as `encodeArray` writes them.
    private func expected(_ inputs: [UInt16], failAt: Int) throws -> [UInt8] {
        var writer = WireWriter()
        let outputs: [Double]
        if let position = inputs.firstIndex(where: { Int($0) == failAt }) {
            writer.write(UInt8(0xEE))
            writer.write(Int64(position))
            outputs = inputs[..<position].map { Double($0) * 0.5 }
        } else {
            writer.write(UInt8(0xAA))
            outputs = inputs.map { Double($0) * 0.5 }
        }
        try writer.encodeArray(outputs)
        return writer.bytes
    }

    func testPlainNumbersRunInPlaceWithTheGeneralPathsBytes() throws {
        for count in [0, 1, 2, 127, 128, 1000, 25_000] {
            let inputs = (0..<count).map { UInt16(truncatingIfNeeded: $0 &* 7) }
            let (bytes, progress) = try reply(HalfUnless(failAt: -1), inputs)
            XCTAssertEqual(bytes, try expected(inputs, failAt: -1), "\(count) inputs")
            XCTAssertEqual(progress, count == 0 ? -1 : count - 1, "the last input's position, \(count) inputs")
        }
    }

    func testAThrowingInputEndsTheChunkWithTheOutputsBeforeIt() throws {
        let inputs = (0..<1000).map { UInt16($0) }
        for failAt in [0, 1, 500, 999] {
            let (bytes, progress) = try reply(HalfUnless(failAt: failAt), inputs)
            XCTAssertEqual(bytes, try expected(inputs, failAt: failAt), "failing at \(failAt)")
            XCTAssertEqual(progress, failAt, "the failing input's position")
        }
    }

    /// Arrays of `WireDeferredBlock.minimumSize` bytes or more take the general path (their
    /// bytes may be another process's): same replies.
    func testLargeArraysTakeTheGeneralPath() throws {
        let inputs = (0..<(WireDeferredBlock.minimumSize / 2 + 10)).map { UInt16(truncatingIfNeeded: $0) }
        var message = WireWriter()
        try message.encodeArray(inputs)
        try message.bytes.withUnsafeBytes { raw in
            var reader = WireReader(raw)
            var reply = WireWriter()
            let progress = UnsafeMutablePointer<Int>.allocate(capacity: 1)
            defer { progress.deallocate() }
            XCTAssertFalse(try HalfUnless(failAt: -1)._runPlainChunk(&reader, into: &reply, progress: progress) { _, _, _ in })
            XCTAssertEqual(reader.offset, 0, "nothing read")
            XCTAssertEqual(reply.count, 0, "nothing written")
        }
        let (bytes, _) = try reply(HalfUnless(failAt: 3), inputs)
        XCTAssertEqual(bytes, try expected(inputs, failAt: 3))
        // Outputs over the size (inputs under it: UInt16 → Double is 4× the bytes).
        let wide = (0..<(WireDeferredBlock.minimumSize / 8 + 10)).map { UInt16(truncatingIfNeeded: $0) }
        XCTAssertEqual(try reply(HalfUnless(failAt: -1), wide).bytes, try expected(wide, failAt: -1))
    }
}
