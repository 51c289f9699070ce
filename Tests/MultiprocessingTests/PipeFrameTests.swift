import XCTest

@testable import Multiprocessing

#if canImport(Glibc)
import Glibc
#endif

/// The frames of a local `Pipe` on its socket: a message of up to 120 bytes is one padded
/// 128-byte frame (so its reader takes it with one `recv`), larger ones are their length and
/// their bytes; a reader never takes bytes of the next message; plain numbers travel as their
/// own bytes, from specialised and from generic code.
final class PipeFrameTests: XCTestCase {
    /// Everything the socket holds now (the peer's frames, unread by any `Connection`).
    private func rawSocketBytes(_ connection: Connection) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: 4096)
        let count = bytes.withUnsafeMutableBytes { Glibc.recv(connection.fileDescriptor, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
        XCTAssertGreaterThanOrEqual(count, 0, "recv: errno \(errno)")
        return Array(bytes.prefix(max(0, count)))
    }

    private func littleEndian(_ value: UInt64) -> [UInt8] { withUnsafeBytes(of: value.littleEndian) { Array($0) } }

    func testASmallMessageIsOnePaddedFrame() throws {
        let (a, b) = try Pipe()
        try a.send(42)
        let frame = rawSocketBytes(b)
        XCTAssertEqual(frame.count, Connection.smallFrameSize)
        XCTAssertEqual(Array(frame.prefix(8)), littleEndian(8), "the length of an Int's bytes")
        XCTAssertEqual(Array(frame[8..<16]), littleEndian(42), "an Int travels as its own bytes")
        XCTAssertEqual(Array(frame[16...]), [UInt8](repeating: 0, count: frame.count - 16), "zeros after the message")

        let largestSmall = (0..<Connection.smallPayload).map { UInt8(truncatingIfNeeded: $0 &+ 1) }
        try a.sendBytes(largestSmall)
        let full = rawSocketBytes(b)
        XCTAssertEqual(full.count, Connection.smallFrameSize)
        XCTAssertEqual(Array(full.prefix(8)), littleEndian(UInt64(largestSmall.count)))
        XCTAssertEqual(Array(full[8...]), largestSmall)

        try a.sendBytes([])
        let empty = rawSocketBytes(b)
        XCTAssertEqual(empty.count, Connection.smallFrameSize, "an empty message is a whole small frame too")
        XCTAssertEqual(Array(empty.prefix(8)), littleEndian(0))
    }

    func testALargerMessageIsItsLengthAndItsBytes() throws {
        let (a, b) = try Pipe()
        let message = (0..<(Connection.smallPayload + 1)).map { UInt8(truncatingIfNeeded: $0 &* 7) }
        try a.sendBytes(message)
        let frame = rawSocketBytes(b)
        XCTAssertEqual(frame.count, 8 + message.count, "no padding above the small size")
        XCTAssertEqual(Array(frame.prefix(8)), littleEndian(UInt64(message.count)))
        XCTAssertEqual(Array(frame[8...]), message)
    }

    /// Sizes around the small frame's, sent back to back by a child on every start method,
    /// arrive whole and in order, typed values between them.
    func testMessagesAroundTheSmallFrameSizeKeepTheirBoundaries() throws {
        for method in ProcessTests.methods {
            let (mine, theirs) = try Pipe()
            let child = Process(target: SendSizedMessages(connection: theirs, sizes: PipeFrameTests.sizes), startMethod: method)
            try child.start()
            theirs.close()
            for (index, size) in Self.sizes.enumerated() {
                XCTAssertEqual(try mine.recvBytes(), SendSizedMessages.message(index: index, size: size), "\(method), \(size) bytes")
                XCTAssertEqual(try mine.recv(Int.self), -index, "\(method)")
                XCTAssertEqual(try mine.recv(String.self), String(repeating: "é", count: size % 200), "\(method)")
            }
            try child.join(timeout: 60)
            XCTAssertEqual(child.exitCode, 0, "\(method)")
            XCTAssertThrowsError(try mine.recvBytes()) { XCTAssertEqual(($0 as? ConnectionError)?.code, .endOfFile) }
        }
    }

    static let sizes = [0, 1, 7, 8, 9, 63, 64, 119, 120, 121, 127, 128, 129, 255, 4096, 65_537, 1 << 20]

    /// The parent reads the first message; a child started afterwards reads the two after it
    /// from the same socket: a reader must not have taken them ahead of time.
    func testAReaderTakesNothingOfTheNextMessage() throws {
        for method in ProcessTests.methods {
            let (reader, writer) = try Pipe(duplex: false)
            try writer.sendBytes([1, 2, 3])
            try writer.send(77)
            try writer.sendBytes(SendSizedMessages.message(index: 5, size: 300))
            XCTAssertEqual(try reader.recvBytes(), [1, 2, 3], "\(method)")
            let child = Process(target: ExpectTwoMessages(connection: reader), startMethod: method)
            try child.start()
            try child.join(timeout: 60)
            XCTAssertEqual(child.exitCode, 0, "\(method): the child did not find the second and third messages")
            XCTAssertFalse(try reader.poll(timeout: 0), "\(method): the child read them")
        }
    }

    /// A typed `recv` of a message of the wrong size throws, and the next message still reads.
    func testAMismatchedNumberLeavesTheStreamInStep() throws {
        let (a, b) = try Pipe()
        try a.sendBytes([1, 2, 3])
        XCTAssertThrowsError(try b.recv(Int.self)) { XCTAssertEqual(($0 as? ConnectionError)?.code, .encoding) }
        try a.sendBytes([UInt8](repeating: 9, count: 200))
        XCTAssertThrowsError(try b.recv(Int.self)) { XCTAssertEqual(($0 as? ConnectionError)?.code, .encoding) }
        try a.send(Int64(5))
        XCTAssertThrowsError(try b.recv(Int32.self)) { XCTAssertEqual(($0 as? ConnectionError)?.code, .encoding) }
        try a.send(Int32(-6))
        XCTAssertEqual(try b.recv(Int32.self), -6)
        try a.send("text")
        XCTAssertEqual(try b.recv(String.self), "text")
    }

    /// Plain numbers of every width, sent and received from generic code (where the type is
    /// known only at run time) and from concrete calls, both ways round.
    func testPlainNumbersFromGenericAndConcreteCode() throws {
        let (a, b) = try Pipe()
        try roundTrip(UInt8(200), a, b)
        try roundTrip(Int16(-3), a, b)
        try roundTrip(UInt32.max, a, b)
        try roundTrip(Int.min, a, b)
        try roundTrip(Float(1.5), a, b)
        try roundTrip(-Double.pi, a, b)
        try roundTrip([1, 2, 3], a, b)
        try a.send(Double.infinity)
        XCTAssertEqual(try b.recv(Double.self), .infinity)
        try b.send(UInt64.max)
        XCTAssertEqual(try a.recv(UInt64.self), .max)
        // A number sent from generic code is its bytes too: a concrete recv reads it.
        try sendGeneric(Int16(12), a)
        XCTAssertEqual(try b.recvBytes(), [12, 0])
    }

    @inline(never)
    private func sendGeneric<T: Encodable>(_ value: T, _ connection: Connection) throws {
        try connection.send(value)
    }

    @inline(never)
    private func roundTrip<T: Codable & Equatable>(_ value: T, _ a: Connection, _ b: Connection) throws {
        try a.send(value)
        XCTAssertEqual(try b.recv(T.self), value, "\(T.self)")
        try b.send(value)
        XCTAssertEqual(try a.recv(T.self), value, "\(T.self)")
    }
}

/// Sends, for each size, a message of that many bytes, `-index` as an Int, and a string.
struct SendSizedMessages: ParallelFunction {
    var connection: Connection
    var sizes: [Int]

    static func message(index: Int, size: Int) -> [UInt8] {
        (0..<size).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ index) }
    }

    func callAsFunction(_: Void) throws {
        for (index, size) in sizes.enumerated() {
            try connection.sendBytes(Self.message(index: index, size: size))
            try connection.send(-index)
            try connection.send(String(repeating: "é", count: size % 200))
        }
        connection.close()
    }
}

/// Exits with 0 only if the next two messages are 77 and `SendSizedMessages.message(index: 5, size: 300)`.
struct ExpectTwoMessages: ParallelFunction {
    var connection: Connection
    func callAsFunction(_: Void) throws {
        guard connection.isClosed == false, try connection.poll(timeout: 10) else { exit(3) }
        guard try connection.recv(Int.self) == 77 else { exit(4) }
        guard try connection.recvBytes() == SendSizedMessages.message(index: 5, size: 300) else { exit(5) }
    }
}
