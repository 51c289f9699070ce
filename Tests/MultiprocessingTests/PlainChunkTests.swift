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

    /// The reply a chunk over `inputs` writes, and where `progress` was left (a reply that
    /// references a block has it gathered in, as a transport sends it).
    private func reply<F: ParallelFunction>(
        _ function: F, _ inputs: [F.Input], buffers: _PlainChunkBuffers = _PlainChunkBuffers(), defers: Bool = false
    ) throws -> (bytes: [UInt8], progress: Int)
    where F.Input: Codable {
        var message = WireWriter()
        try message.encodeArray(inputs)
        var reply = WireWriter()
        reply.defersLargeBlocks = defers
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
            if try !function._runPlainChunk(&reader, into: &reply, buffers: buffers, progress: progress, failed: failed) {
                try function._runChunk(&reader, into: &reply, progress: progress, failed: failed)
            }
            XCTAssertTrue(reader.isAtEnd, "the whole message read")
        }
        let gathered = reply.withParts { parts in parts.flatMap { Array($0) } }
        return (gathered, progress.pointee)
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

    /// Arrays of `WireDeferredBlock.minimumSize` bytes or more (their bytes may be in another
    /// process) are read a piece at a time into the kept buffers and their outputs written
    /// into a kept block: the same bytes as the general path's, a throw in any piece included.
    func testLargeArraysRunInPiecesWithTheGeneralPathsBytes() throws {
        let perPiece = _PlainChunkBuffers.pieceBytes / 2
        let buffers = _PlainChunkBuffers()
        // Values repeat past 65 535: the first of a value is the one that throws.
        let inputs = (0..<(perPiece + 1000)).map { UInt16(truncatingIfNeeded: $0) }
        for defers in [false, true] {
            let (bytes, progress) = try reply(HalfUnless(failAt: -1), inputs, buffers: buffers, defers: defers)
            XCTAssertEqual(bytes, try expected(inputs, failAt: -1), "defers: \(defers)")
            XCTAssertEqual(progress, inputs.count - 1)
        }
        for failAt in [0, 3, 65_535] {
            let (bytes, progress) = try reply(HalfUnless(failAt: failAt), inputs, buffers: buffers, defers: true)
            XCTAssertEqual(bytes, try expected(inputs, failAt: failAt), "failing at \(failAt)")
            XCTAssertEqual(progress, failAt)
        }
        // A throw in the second piece: distinct values there.
        let wide = (0..<(perPiece + 3000)).map { $0 < perPiece ? UInt16(7) : UInt16($0 - perPiece + 100) }
        let (bytes, progress) = try reply(HalfUnless(failAt: 2100), wide, buffers: buffers, defers: true)
        XCTAssertEqual(bytes, try expected(wide, failAt: 2100))
        XCTAssertEqual(progress, perPiece + 2000)
        // Outputs over the size, inputs under it (UInt16 → Double is 4× the bytes).
        let small = (0..<(WireDeferredBlock.minimumSize / 8 + 10)).map { UInt16(truncatingIfNeeded: $0) }
        XCTAssertEqual(try reply(HalfUnless(failAt: -1), small, buffers: buffers, defers: true).bytes, try expected(small, failAt: -1))
    }

    /// A large chunk's outputs travel as a reference to a block the buffers keep: the block
    /// comes back when the reply lets go of it (the pool read it), and the next chunk writes
    /// into the same memory.
    func testALargeChunksOutputBlockIsReusedOnceTheReplyLetsGo() throws {
        let buffers = _PlainChunkBuffers()
        let inputs = [UInt16](repeating: 3, count: WireDeferredBlock.minimumSize)
        var message = WireWriter()
        try message.encodeArray(inputs)
        let progress = UnsafeMutablePointer<Int>.allocate(capacity: 1)
        defer { progress.deallocate() }
        func run() throws -> UnsafeRawPointer? {
            var reply = WireWriter()
            reply.defersLargeBlocks = true
            try message.bytes.withUnsafeBytes { raw in
                var reader = WireReader(raw)
                XCTAssertTrue(try HalfUnless(failAt: -1)._runPlainChunk(&reader, into: &reply, buffers: buffers, progress: progress) { _, _, _ in })
            }
            XCTAssertEqual(reply.deferredBlocks.count, 1, "the outputs are referenced, not copied")
            XCTAssertEqual(reply.deferredBlocks.first?.bytes.count, inputs.count * 8)
            XCTAssertEqual(reply.deferredBlocks.first?.bytes.load(fromByteOffset: 8, as: Double.self), 1.5)
            XCTAssertEqual(buffers.keptBlockBytes, 0, "the block is the reply's while it lives")
            return reply.deferredBlocks.first.map { UnsafeRawPointer($0.bytes.baseAddress!) }
        }
        let first = try run()
        XCTAssertEqual(buffers.keptBlockBytes, inputs.count * 8, "back once the reply let go")
        XCTAssertEqual(try run(), first, "the same block again")
    }

    /// Kept blocks stay within `keptBytes`: a block larger than that is freed.
    func testKeptBlocksAreBounded() {
        let buffers = _PlainChunkBuffers()
        do {
            let small = buffers.block(bytes: 1 << 20)
            let large = buffers.block(bytes: _PlainChunkBuffers.keptBytes)
            _ = (small, large)
        }
        XCTAssertEqual(buffers.keptBlockBytes, _PlainChunkBuffers.keptBytes, "the larger kept, the smaller freed past the bound")
        _ = buffers.block(bytes: _PlainChunkBuffers.keptBytes + 1)
        XCTAssertEqual(buffers.keptBlockBytes, _PlainChunkBuffers.keptBytes)
    }
}
