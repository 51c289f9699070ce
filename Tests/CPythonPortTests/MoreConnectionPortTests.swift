// More ports of CPython's connection tests (Lib/test/_test_multiprocessing.py:
// _TestConnection, _TestPoll), with the other end in a child on every start method.
//
// CPython test                                        → Swift test (MoreConnectionPortTests)
// _TestConnection.test_connection (EOFError at end)   → testEndOfFileOnceTheChildHoldingTheOtherEndExits
// _TestConnection.test_connection (poll timings)      → testPollWaitsForItsTimeoutOrForData
// (BrokenPipeError on a send to a closed end)         → testSendToAnEndClosedInAChildThrows
// _TestPoll.test_strings (after the peer's close)     → testMessagesSentBeforeTheCloseAreStillRead
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
}
