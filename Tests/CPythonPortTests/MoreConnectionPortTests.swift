// More ports of CPython's connection tests (Lib/test/_test_multiprocessing.py:
// _TestConnection, _TestPoll), with the other end in a child on every start method.
//
// CPython test                                        → Swift test (MoreConnectionPortTests)
// _TestConnection.test_connection (EOFError at end)   → testEndOfFileOnceTheChildHoldingTheOtherEndExits
// _TestConnection.test_connection (poll timings)      → testPollWaitsForItsTimeoutOrForData
// (BrokenPipeError on a send to a closed end)         → testSendToAnEndClosedInAChildThrows
// _TestPoll.test_strings (after the peer's close)     → testMessagesSentBeforeTheCloseAreStillRead
// _TestConnection.test_sendbytes (offset, size)       → testSendBytesWithAnOffsetAndASize
// _TestConnection.test_connection (recv_bytes_into,
//   BufferTooShort)                                   → testRecvBytesIntoABufferAtAnOffset
// (recv_bytes(maxlength), "bad message length")       → testRecvBytesWithAMaximumLength
//
// Differences from Python, checked as documented: EOFError is `ConnectionError(.endOfFile)`,
// BrokenPipeError is `ConnectionError(.brokenPipe)` (or `.endOfFile`), never a SIGPIPE.

import Dispatch
import Multiprocessing
import XCTest

#if canImport(Glibc)
import Glibc
#endif

/// Sends what it is given, then ends (its end of the pipe closes with it).
struct SendAndExit: ParallelFunction {
    var connection: Connection
    var values: [Int]
    var pause: Double
    func callAsFunction(_: Void) throws {
        usleep(UInt32(pause * 1e6))
        for value in values { try connection.send(value) }
    }
}

/// Closes its end at once and ends.
struct CloseAndExit: ParallelFunction {
    var connection: Connection
    func callAsFunction(_: Void) { connection.close() }
}

final class MoreConnectionPortTests: PortTestCase {
    /// test_connection's end: once the child that held the other end has exited (and this
    /// process closed its copy), what it sent is read, then poll is true and recv, recvBytes
    /// throw end of file — at once, every time.
    func testEndOfFileOnceTheChildHoldingTheOtherEndExits() throws {
        try forEachMethod { method in
            let (mine, theirs) = try Pipe()
            let p = try started(SendAndExit(connection: theirs, values: [1, 2], pause: 0), method)
            theirs.close()
            try joinOrKill(p)
            XCTAssertEqual(p.exitCode, 0)
            XCTAssertEqual(try mine.recv(Int.self), 1, "\(method)")
            XCTAssertEqual(try mine.recv(Int.self), 2, "\(method)")
            XCTAssertTrue(try mine.poll(timeout: 5), "\(method): poll at end of file")
            for _ in 0..<2 {
                let (_, elapsed) = try timed {
                    XCTAssertThrowsError(try mine.recv(Int.self)) {
                        XCTAssertEqual(($0 as? ConnectionError)?.code, .endOfFile, "\(method): \($0)")
                    }
                    XCTAssertThrowsError(try mine.recvBytes()) {
                        XCTAssertEqual(($0 as? ConnectionError)?.code, .endOfFile, "\(method): \($0)")
                    }
                }
                assertQuick(elapsed, "\(method): recv at end of file")
            }
            XCTAssertTrue(mine.readable)
            XCTAssertTrue(mine.writable)
        }
    }

    /// test_connection's poll: poll() and poll(-1) are false at once, poll(t) false after t;
    /// poll(nil) waits for a message the child sends later, and poll(t) is then true at once
    /// without consuming it.
    func testPollWaitsForItsTimeoutOrForData() throws {
        try forEachMethod { method in
            let (mine, theirs) = try Pipe()
            let p = try started(SendAndExit(connection: theirs, values: [7], pause: 0.5), method)
            defer { try? joinOrKill(p) }
            theirs.close()
            let (empty, elapsed0) = try timed { try mine.poll() }
            XCTAssertFalse(empty)
            assertQuick(elapsed0, "poll()")
            let (negative, elapsedNegative) = try timed { try mine.poll(timeout: -1) }
            XCTAssertFalse(negative)
            assertQuick(elapsedNegative, "poll(-1)")
            let (timedOut, elapsed) = try timed { try mine.poll(timeout: 0.1) }
            XCTAssertFalse(timedOut, "\(method)")
            assertWaited(elapsed, 0.1, "poll(0.1)")
            XCTAssertTrue(try mine.poll(timeout: nil), "\(method)")
            let (ready, elapsedReady) = try timed { try mine.poll(timeout: 0.1) }
            XCTAssertTrue(ready)
            assertQuick(elapsedReady, "poll with a message waiting")
            XCTAssertEqual(try mine.recv(Int.self), 7, "\(method)")
        }
    }

    /// BrokenPipeError: a send (small or larger than the pipe's buffer) to an end that the child
    /// closed, with every copy gone, throws — it neither kills this process with SIGPIPE nor
    /// hangs.
    func testSendToAnEndClosedInAChildThrows() throws {
        try forEachMethod { method in
            let (mine, theirs) = try Pipe()
            let p = try started(CloseAndExit(connection: theirs), method)
            theirs.close()
            try joinOrKill(p)
            for size in [1, 1 << 20] {
                let (_, elapsed) = try timed {
                    XCTAssertThrowsError(try mine.sendBytes([UInt8](repeating: 1, count: size))) { error in
                        let code = (error as? ConnectionError)?.code
                        XCTAssertTrue(code == .brokenPipe || code == .endOfFile, "\(method) size \(size): \(error)")
                    }
                }
                assertQuick(elapsed, "\(method): send to a closed end")
            }
            XCTAssertThrowsError(try mine.send("x")) { error in
                let code = (error as? ConnectionError)?.code
                XCTAssertTrue(code == .brokenPipe || code == .endOfFile, "\(method): \(error)")
            }
        }
    }

    /// _TestPoll.test_strings after the writer's end: messages written just before the child
    /// closed and exited are all read, whole and in order, before end of file.
    func testMessagesSentBeforeTheCloseAreStillRead() throws {
        try forEachMethod { method in
            let (reader, writer) = try Pipe(duplex: false)
            let p = try started(SendAndExit(connection: writer, values: Array(0..<200), pause: 0), method)
            writer.close()
            try joinOrKill(p)
            var got: [Int] = []
            while true {
                do { got.append(try reader.recv(Int.self)) } catch let error as ConnectionError where error.code == .endOfFile {
                    break
                }
            }
            XCTAssertEqual(got, Array(0..<200), "\(method)")
        }
    }

    /// test_sendbytes: `sendBytes(msg, offset, size)` sends that slice (size nil: to the end;
    /// an empty one at the end); an offset or size outside the message throws and sends
    /// nothing (Python: ValueError), the pipe going on.
    func testSendBytesWithAnOffsetAndASize() throws {
        let (a, b) = try Pipe()
        let msg = Array("abcdefghijklmnopqrstuvwxyz".utf8)
        try a.sendBytes(msg)
        XCTAssertEqual(try b.recvBytes(), msg)
        try a.sendBytes(msg, offset: 5)
        XCTAssertEqual(try b.recvBytes(), Array(msg[5...]))
        try a.sendBytes(msg, offset: 7, size: 8)
        XCTAssertEqual(try b.recvBytes(), Array(msg[7..<15]))
        try a.sendBytes(msg, offset: 26)
        XCTAssertEqual(try b.recvBytes(), [])
        try a.sendBytes(msg, offset: 26, size: 0)
        XCTAssertEqual(try b.recvBytes(), [])
        for (offset, size) in [(27, nil), (22, 5), (26, 1), (-1, nil), (4, -1)] as [(Int, Int?)] {
            XCTAssertThrowsError(try a.sendBytes(msg, offset: offset, size: size), "offset \(offset) size \(String(describing: size))") {
                XCTAssertEqual(($0 as? ConnectionError)?.code, .invalidArgument, "\($0)")
            }
        }
        XCTAssertFalse(try b.poll(timeout: 0.05), "a refused sendBytes sent something")
        try a.sendBytes(msg, offset: 25)
        XCTAssertEqual(try b.recvBytes(), Array("z".utf8))
    }

    /// test_connection: `recv_bytes_into(buffer)` and `(buffer, offset)` return the length and
    /// fill the buffer from the offset, leaving the rest; a message longer than the room
    /// raises BufferTooShort carrying it whole (the buffer untouched, the next message next);
    /// from a child on every start method, of small and large (framed) sizes.
    func testRecvBytesIntoABufferAtAnOffset() throws {
        try forEachMethod { method in
            let (mine, theirs) = try Pipe()
            let small = Array(repeating: UInt8(7), count: 16)
            let large = (0..<100_000).map { UInt8(truncatingIfNeeded: $0) }
            let p = try started(SendBytesAndExit(connection: theirs, messages: [small, small, large, small]), method)
            theirs.close()
            var buffer = [UInt8](repeating: 0, count: 40)
            XCTAssertEqual(try mine.recvBytes(into: &buffer), 16, "\(method)")
            XCTAssertEqual(Array(buffer[0..<16]), small)
            XCTAssertEqual(Array(buffer[16...]), Array(repeating: 0, count: 24))
            buffer = [UInt8](repeating: 1, count: 40)
            XCTAssertEqual(try mine.recvBytes(into: &buffer, offset: 12), 16, "\(method)")
            XCTAssertEqual(Array(buffer[0..<12]), Array(repeating: 1, count: 12))
            XCTAssertEqual(Array(buffer[12..<28]), small)
            XCTAssertEqual(Array(buffer[28...]), Array(repeating: 1, count: 12))
            let before = buffer
            XCTAssertThrowsError(try mine.recvBytes(into: &buffer, offset: 30), "\(method)") {
                XCTAssertEqual(($0 as? BufferTooShort)?.bytes, large, "\(method)")
                XCTAssertEqual(($0 as? BufferTooShort)?.room, 10, "\(method)")
            }
            XCTAssertEqual(buffer, before, "\(method): BufferTooShort changed the buffer")
            XCTAssertThrowsError(try mine.recvBytes(into: &buffer, offset: 41)) {
                XCTAssertEqual(($0 as? ConnectionError)?.code, .invalidArgument, "\($0)")
            }
            XCTAssertThrowsError(try mine.recvBytes(into: &buffer, offset: -1)) {
                XCTAssertEqual(($0 as? ConnectionError)?.code, .invalidArgument, "\($0)")
            }
            XCTAssertEqual(try mine.recvBytes(into: &buffer, offset: 24), 16, "\(method): the message after the refused one")
            XCTAssertEqual(Array(buffer[24...]), small)
            try joinOrKill(p)
        }
    }

    /// recv_bytes(maxlength): a message longer than the limit is refused (Python: OSError
    /// "bad message length"); here it is dropped and the next one is read.
    func testRecvBytesWithAMaximumLength() throws {
        let (a, b) = try Pipe()
        try a.sendBytes(Array(repeating: 1, count: 300))
        try a.sendBytes(Array(repeating: 2, count: 10))
        XCTAssertThrowsError(try b.recvBytes(maxLength: 299)) {
            XCTAssertEqual(($0 as? ConnectionError)?.code, .messageTooLong, "\($0)")
        }
        XCTAssertEqual(try b.recvBytes(maxLength: 10), Array(repeating: 2, count: 10))
        try a.sendBytes([])
        XCTAssertEqual(try b.recvBytes(maxLength: 0), [])
    }
}

/// Sends each message with `sendBytes`, then ends.
struct SendBytesAndExit: ParallelFunction {
    var connection: Connection
    var messages: [[UInt8]]
    func callAsFunction(_: Void) throws {
        for message in messages { try connection.sendBytes(message) }
    }
}
