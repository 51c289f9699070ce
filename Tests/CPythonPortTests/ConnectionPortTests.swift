// Ports of CPython's connection tests (Lib/test/_test_multiprocessing.py: _TestConnection,
// _TestPoll, TestWait, _TestPicklingConnections.test_access), with the other end in a child
// on every start method.
//
// CPython test                          → Swift test (ConnectionPortTests)
// _TestConnection.test_connection       → testConnectionWithAnEchoChild
// _TestConnection.test_duplex_false     → testOneWayPipeEnds
// _TestConnection.test_sendbytes        → testSendBytesOfASlice
// _TestConnection.test_context          → testClosedEndsRefuseEverything
// _TestPoll.test_empty_string           → testEmptyMessages
// _TestPoll.test_strings                → testMessagesArriveWholeAndInOrder
// _TestPoll.test_boundaries             → testPollInAnotherProcessConsumesNothing
// _TestPoll.test_dont_merge             → testMessagesAreNotMerged
// TestWait.test_wait / test_wait_slow   → testWaitOnManyChildren
// TestWait.test_wait_timeout            → testWaitTimeout
// TestWait.test_neg_timeout             → testWaitTimeout
// TestWait.test_wait_integer            → testWaitOnAProcessAndConnections (a Process is waitable: gap filled)
// (wait on nothing, on a closed end)     → testWaitOnNothingOrOnAClosedConnectionReturns (hangs fixed)
// _TestPicklingConnections.test_access  → testConnectionCannotTravelThroughAConnection (difference)
// (pickling a Lock for a connection)    → testSharedObjectsAreRefusedAtSend (bug fixed)
//
// Already covered in Tests/MultiprocessingTests: test_spawn_close (the parent closes the
// child's end at once). Not applicable: recv_bytes_into / BufferTooShort, test_fd_transfer
// and test_large_fd_transfer (no reduction.send_handle), socket waits. The Listener/Client
// classes (_TestListener, _TestListenerClient, TestTimeouts): ListenerPortTests.
//
// Differences from Python, checked as documented:
// - A `Connection` travels only in a `Process` target, not through another connection or a
//   queue (Python pickles it with a resource sharer): `send` of one throws.
// - Misuse is `ConnectionError` with a code: `.wrongDirection` (Python's OSError on a one-way
//   end), `.closed` (OSError after close), `.endOfFile` (EOFError).

import Multiprocessing
import XCTest

#if canImport(Glibc)
import Glibc
#endif

/// CPython's `_echo`: echoes byte messages until an empty one, then closes.
struct EchoBytes: ParallelFunction {
    var connection: Connection
    func callAsFunction(_: Void) throws {
        while true {
            let message = try connection.recvBytes()
            if message.isEmpty { break }
            try connection.sendBytes(message)
        }
        connection.close()
    }
}

/// CPython's `_child_strings`: sends each message after a pause, then closes.
struct SendStringsSlowly: ParallelFunction {
    var connection: Connection
    var messages: [[UInt8]]
    func callAsFunction(_: Void) throws {
        for message in messages {
            usleep(20_000)
            try connection.sendBytes(message)
        }
        connection.close()
    }
}

/// CPython's `_child_boundaries`: polls (at most `seconds`) without reading.
struct PollOnly: ParallelFunction {
    var connection: Connection
    var seconds: Double
    func callAsFunction(_: Void) throws { _ = try connection.poll(timeout: seconds) }
}

/// CPython's `_child_dont_merge`.
struct SendThreeMessages: ParallelFunction {
    var connection: Connection
    func callAsFunction(_: Void) throws {
        try connection.sendBytes(Array("a".utf8))
        try connection.sendBytes(Array("b".utf8))
        try connection.sendBytes(Array("cd".utf8))
    }
}

/// CPython's `signal_and_sleep`: releases the semaphore, then sleeps.
struct SignalAndSleep: ParallelFunction {
    var semaphore: Multiprocessing.Semaphore
    var seconds: Double
    func callAsFunction(_: Void) throws {
        try semaphore.release()
        usleep(UInt32(seconds * 1e6))
    }
}

/// CPython's `_child_test_wait`: sends (i, pid) ten times, with random pauses if slow.
struct SendTenNumbered: ParallelFunction {
    var connection: Connection
    var slow: Bool
    func callAsFunction(_: Void) throws {
        for i in 0..<10 {
            if slow { usleep(UInt32.random(in: 0..<20_000)) }
            try connection.send([i, Int(getpid())])
        }
        connection.close()
    }
}

final class ConnectionPortTests: PortTestCase {
    /// test_connection: values and bytes through an echoing child (a `send` can be echoed as
    /// bytes and read back with `recv`), poll's timing, a 16 MiB message, then end of file
    /// once the child is gone.
    func testConnectionWithAnEchoChild() throws {
        try forEachMethod { method in
            let (conn, childConn) = try Pipe()
            let p = try started(EchoBytes(connection: childConn), daemon: true, method)
            XCTAssertGreaterThanOrEqual(conn.fileDescriptor, 0)
            let sequence: [Double?] = [1, 2.25, nil]
            try conn.send(sequence)
            XCTAssertEqual(try conn.recv([Double?].self), sequence, "\(method)")
            let message = Array("hello world".utf8)
            try conn.sendBytes(message)
            XCTAssertEqual(try conn.recvBytes(), message)
            var (ready, elapsed) = try timed { try conn.poll() }
            XCTAssertFalse(ready)
            assertQuick(elapsed, "poll()")
            (ready, elapsed) = try timed { try conn.poll(timeout: -1) }
            XCTAssertFalse(ready)
            assertQuick(elapsed, "poll(-1)")
            (ready, elapsed) = try timed { try conn.poll(timeout: 0.1) }
            XCTAssertFalse(ready)
            assertWaited(elapsed, 0.1, "poll(0.1)")
            try conn.send(Optional<Int>.none)
            usleep(100_000)
            (ready, elapsed) = try timed { try conn.poll(timeout: 0.1) }
            XCTAssertTrue(ready, "\(method)")
            assertQuick(elapsed, "poll(0.1) with a message")
            XCTAssertNil(try conn.recv(Int?.self))
            let big = [UInt8](repeating: UInt8(ascii: "X"), count: 16 << 20)
            try conn.sendBytes(big)
            XCTAssertEqual(try conn.recvBytes(), big, "\(method): 16 MiB")
            try conn.sendBytes([]) // CPython's SENTINEL: the child stops
            childConn.close()
            XCTAssertTrue(conn.readable)
            XCTAssertTrue(conn.writable)
            XCTAssertThrowsError(try conn.recv(Int.self)) { XCTAssertEqual(($0 as? ConnectionError)?.code, .endOfFile, "\($0)") }
            XCTAssertThrowsError(try conn.recvBytes()) { XCTAssertEqual(($0 as? ConnectionError)?.code, .endOfFile, "\($0)") }
            try joinOrKill(p)
            XCTAssertEqual(p.exitCode, 0)
        }
    }

    /// test_duplex_false: each end of a one-way pipe can only do its direction; poll on the
    /// writing end is refused too.
    func testOneWayPipeEnds() throws {
        let (reader, writer) = try Pipe(duplex: false)
        try writer.send(1)
        XCTAssertEqual(try reader.recv(Int.self), 1)
        XCTAssertTrue(reader.readable)
        XCTAssertFalse(reader.writable)
        XCTAssertFalse(writer.readable)
        XCTAssertTrue(writer.writable)
        XCTAssertThrowsError(try reader.send(2)) { XCTAssertEqual(($0 as? ConnectionError)?.code, .wrongDirection) }
        XCTAssertThrowsError(try writer.recv(Int.self)) { XCTAssertEqual(($0 as? ConnectionError)?.code, .wrongDirection) }
        XCTAssertThrowsError(try writer.poll()) { XCTAssertEqual(($0 as? ConnectionError)?.code, .wrongDirection) }
    }

    /// test_sendbytes: a slice of a buffer is one message (Python's offset and size).
    func testSendBytesOfASlice() throws {
        let message = Array("abcdefghijklmnopqrstuvwxyz".utf8)
        let (a, b) = try Pipe()
        for (offset, size) in [(0, 26), (5, 21), (7, 8), (26, 0)] {
            try message.withUnsafeBytes { try a.sendBytes(UnsafeRawBufferPointer(rebasing: $0[offset..<(offset + size)])) }
            XCTAssertEqual(try b.recvBytes(), Array(message[offset..<(offset + size)]))
        }
    }

    /// test_context: closed ends refuse send, recv and poll with `.closed`; close is
    /// idempotent.
    func testClosedEndsRefuseEverything() throws {
        let (a, b) = try Pipe()
        try a.send(1729)
        XCTAssertEqual(try b.recv(Int.self), 1729)
        XCTAssertFalse(a.isClosed)
        XCTAssertFalse(b.isClosed)
        a.close()
        b.close()
        a.close()
        XCTAssertTrue(a.isClosed)
        XCTAssertTrue(b.isClosed)
        for end in [a, b] {
            XCTAssertThrowsError(try end.recv(Int.self)) { XCTAssertEqual(($0 as? ConnectionError)?.code, .closed) }
            XCTAssertThrowsError(try end.send(1)) { XCTAssertEqual(($0 as? ConnectionError)?.code, .closed) }
            XCTAssertThrowsError(try end.poll()) { XCTAssertEqual(($0 as? ConnectionError)?.code, .closed) }
        }
    }

    /// test_empty_string: an empty message makes poll true, and stays until read.
    func testEmptyMessages() throws {
        let (a, b) = try Pipe()
        XCTAssertFalse(try a.poll())
        try b.sendBytes([])
        XCTAssertTrue(try a.poll())
        XCTAssertTrue(try a.poll())
        XCTAssertEqual(try a.recvBytes(), [])
        XCTAssertFalse(try a.poll())
    }

    /// test_strings: messages (some empty) sent one by one by a child arrive whole, in order.
    func testMessagesArriveWholeAndInOrder() throws {
        try forEachMethod { method in
            let strings = ["hello", "", "a", "b", "", "bye", "", "lop"].map { Array($0.utf8) }
            let (a, b) = try Pipe()
            let p = try started(SendStringsSlowly(connection: b, messages: strings), method)
            b.close()
            for s in strings {
                var tries = 0
                while try !a.poll(timeout: 0.01) && tries < 200 { tries += 1 }
                XCTAssertEqual(try a.recvBytes(), s, "\(method)")
            }
            XCTAssertThrowsError(try a.recvBytes()) { XCTAssertEqual(($0 as? ConnectionError)?.code, .endOfFile) }
            try joinOrKill(p)
        }
    }

    /// test_boundaries: a child that only polls the read end must not take (part of) a
    /// message: the parent then reads the first message whole.
    func testPollInAnotherProcessConsumesNothing() throws {
        try forEachMethod { method in
            let (reader, writer) = try Pipe(duplex: false)
            let p = try started(PollOnly(connection: reader, seconds: 5), method)
            usleep(200_000)
            for word in ["first", "second"] { try writer.sendBytes(Array(word.utf8)) }
            writer.close()
            try joinOrKill(p)
            XCTAssertEqual(p.exitCode, 0)
            XCTAssertEqual(String(decoding: try reader.recvBytes(), as: UTF8.self), "first", "\(method)")
            XCTAssertEqual(String(decoding: try reader.recvBytes(), as: UTF8.self), "second")
        }
    }

    /// test_dont_merge: three messages sent back to back stay three; poll stays true until
    /// each is read.
    func testMessagesAreNotMerged() throws {
        try forEachMethod { method in
            let (a, b) = try Pipe()
            XCTAssertFalse(try a.poll(timeout: 0))
            XCTAssertFalse(try a.poll(timeout: 0.1))
            let p = try started(SendThreeMessages(connection: b), method)
            XCTAssertEqual(try a.recvBytes(), Array("a".utf8), "\(method)")
            XCTAssertTrue(try a.poll(timeout: 1))
            XCTAssertTrue(try a.poll(timeout: 1))
            XCTAssertEqual(try a.recvBytes(), Array("b".utf8))
            XCTAssertTrue(try a.poll(timeout: 1))
            XCTAssertTrue(try a.poll(timeout: 1))
            XCTAssertTrue(try a.poll(timeout: 0))
            XCTAssertEqual(try a.recvBytes(), Array("cd".utf8))
            try joinOrKill(p)
        }
    }

    /// test_wait / test_wait_slow: four children each send ten numbered messages and close;
    /// waiting on the four read ends gets every message and each end of file.
    func testWaitOnManyChildren() throws {
        try forEachMethod { method in
            for slow in [false, true] {
                var readers: [Connection] = []
                var children: [Multiprocessing.Process] = []
                for _ in 0..<4 {
                    let (r, w) = try Pipe(duplex: false)
                    children.append(try started(SendTenNumbered(connection: w, slow: slow), daemon: true, method))
                    w.close()
                    readers.append(r)
                }
                var messages: [[Int]] = []
                let end = monotonicNow() + 60
                while !readers.isEmpty && monotonicNow() < end {
                    for r in Multiprocessing.wait(on: readers, timeout: 30) {
                        do {
                            messages.append(try r.recv([Int].self))
                        } catch let error as ConnectionError where error.code == .endOfFile {
                            readers.removeAll { $0 === r }
                            r.close()
                        }
                    }
                }
                let expected = children.flatMap { p in (0..<10).map { [$0, Int(p.pid!)] } }
                XCTAssertEqual(
                    messages.sorted { $0.lexicographicallyPrecedes($1) }, expected.sorted { $0.lexicographicallyPrecedes($1) },
                    "\(method) slow: \(slow)")
                for p in children { try joinOrKill(p) }
            }
        }
    }

    /// test_wait_timeout and test_neg_timeout: nothing ready → empty after the timeout (at
    /// once for a negative one); a message on b makes a ready.
    func testWaitTimeout() throws {
        let (a, b) = try Pipe()
        let (result, elapsed) = timed { Multiprocessing.wait(on: [a, b], timeout: 0.5) }
        XCTAssertTrue(result.isEmpty)
        assertWaited(elapsed, 0.5, "wait(timeout: 0.5)")
        try b.send(Optional<Int>.none)
        let ready = Multiprocessing.wait(on: [a, b], timeout: 20)
        XCTAssertEqual(ready.count, 1)
        XCTAssertTrue(ready.first === a)
        let (negative, quick) = timed { Multiprocessing.wait(on: [b], timeout: -1) }
        XCTAssertTrue(negative.isEmpty)
        assertQuick(quick, "wait(timeout: -1)")
    }

    /// Waits with nothing that could become ready return instead of blocking for ever: an
    /// empty list returns [] at once, and a closed connection or queue is ready (its recv or
    /// get throws `.closed` at once; Python's wait raises on a closed connection). All used to
    /// wait without end when no timeout was given (ppoll on no descriptor; a closed end's
    /// descriptor, -1, was skipped; an empty closed queue was never ready).
    func testWaitOnNothingOrOnAClosedConnectionReturns() throws {
        let (a, b) = try Pipe()
        a.close()
        let queue = try Queue<Int>()
        queue.close()
        let calls: [(String, @Sendable () -> Void)] = [
            ("empty", { XCTAssertTrue(Multiprocessing.wait(on: [] as [Connection]).isEmpty) }),
            ("empty, untyped", { XCTAssertTrue(Multiprocessing.wait(on: [] as [any Waitable]).isEmpty) }),
            ("closed", { XCTAssertTrue(Multiprocessing.wait(on: [a]).first === a) }),
            ("closed queue", { XCTAssertTrue(Multiprocessing.wait(on: [queue]).first === queue) }),
        ]
        for (name, call) in calls {
            let thread = TestThread(call)
            XCTAssertTrue(try thread.wait(5), "wait(on:) \(name) did not return within 5 s")
        }
        _ = b
    }

    /// test_wait_integer: a process is waited for with connections (Python passes its
    /// sentinel): it is ready once it ended, the connections once they can be read.
    func testWaitOnAProcessAndConnections() throws {
        try forEachMethod { method in
            let semaphore = try Multiprocessing.Semaphore(value: 0)
            let (a, b) = try Pipe()
            let expected = 0.5
            let p = try started(SignalAndSleep(semaphore: semaphore, seconds: expected), method)
            defer { try? p.kill(); _ = try? p.join(timeout: 20) }
            XCTAssertTrue(semaphore.acquire(timeout: 20))
            let objects: [any Waitable] = [a, p, b]
            var (ready, elapsed) = timed { Multiprocessing.wait(on: objects, timeout: expected + 20) }
            XCTAssertEqual(ready.count, 1, "\(method)")
            XCTAssertTrue(ready.first === p, "\(method): \(ready)")
            XCTAssertLessThan(elapsed, expected + 2)
            XCTAssertGreaterThan(elapsed, expected - 0.3)
            try a.send(Optional<Int>.none)
            (ready, elapsed) = timed { Multiprocessing.wait(on: objects, timeout: 20) }
            XCTAssertEqual(ready.count, 2, "\(method)")
            XCTAssertTrue(ready.contains { $0 === p } && ready.contains { $0 === b }, "\(method)")
            assertQuick(elapsed, "wait with a process that ended and a readable connection")
            try b.send(Optional<Int>.none)
            (ready, elapsed) = timed { Multiprocessing.wait(on: objects, timeout: 20) }
            XCTAssertEqual(ready.count, 3, "\(method)")
            assertQuick(elapsed, "wait with everything ready")
            try joinOrKill(p)
            XCTAssertEqual(Multiprocessing.wait(on: [p], timeout: 0).count, 1, "\(method): still ready after join")
            try p.close()
            XCTAssertEqual(Multiprocessing.wait(on: [p], timeout: 0).count, 1, "\(method): still ready after close")
        }
        // A process that was never started is never ready.
        let never = Multiprocessing.Process(target: SleepFor(seconds: 0))
        XCTAssertTrue(Multiprocessing.wait(on: [never], timeout: 0.05).isEmpty)
    }

    /// Shared objects cannot be sent through a connection either (bug fixed: the send
    /// succeeded and the receiver failed to decode the message).
    func testSharedObjectsAreRefusedAtSend() throws {
        let (a, b) = try Pipe()
        for send in [
            { try a.send(try Lock()) }, { try a.send(try SharedValue<Double>(1)) }, { try a.send([try Event()]) },
            { try a.send(try Queue<Int>()) },
        ] as [() throws -> Void] {
            XCTAssertThrowsError(try send()) { error in
                XCTAssertEqual((error as? ConnectionError)?.code, .encoding, "\(error)")
                XCTAssertTrue("\(error)".contains("Process target or pool function"), "\(error)")
            }
        }
        XCTAssertFalse(try b.poll(timeout: 0), "nothing was sent")
        try a.send(5)
        XCTAssertEqual(try b.recv(Int.self), 5)
    }

    /// test_access, difference: a connection cannot be sent through another connection; the
    /// error says where it can go.
    func testConnectionCannotTravelThroughAConnection() throws {
        let (a, b) = try Pipe()
        let (r, _) = try Pipe(duplex: false)
        XCTAssertThrowsError(try a.send(r)) { error in
            XCTAssertTrue("\(error)".contains("Process target"), "\(error)")
        }
        try a.send(5)
        XCTAssertEqual(try b.recv(Int.self), 5, "the connection is still usable")
    }
}
