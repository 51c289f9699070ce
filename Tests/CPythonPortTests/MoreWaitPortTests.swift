// More ports of CPython's connection-waiting tests (Lib/test/_test_multiprocessing.py:
// TestWait, TestTimeouts, TestInvalidHandle), beyond ConnectionPortTests. CPython's
// `multiprocessing.connection.wait` takes connections, sockets and sentinels; ours takes
// connections, processes and queues (`Waitable`), so TestWait's cases run here with queues
// as well, which are waited for without a descriptor (checked between polls). Children on
// every start method.
//
// CPython test                               → Swift test (MoreWaitPortTests)
// TestWait.test_wait / test_wait_slow        → testWaitOnQueuesFilledByChildren (queues instead of pipes)
// TestWait.test_wait_timeout / test_neg_timeout → testWaitOnQueuesTimesOut
// TestWait.test_wait_integer (mixed kinds)   → testWaitOnAMixOfQueuesAndConnections
// TestTimeouts.test_timeout (its Pipe half)  → testRecvWaitsForASlowSender
// TestInvalidHandle.test_invalid_handles     → testAConnectionWhoseDescriptorIsGone
//
// Not applicable: TestWait.test_wait_socket / test_wait_socket_slow (no sockets in the API),
// TestInvalidFamily (a Windows pipe name: `ConnectionAddress` has no such case). TestTimeouts'
// Listener/Client half: ListenerPortTests.testAClientThatComesLateIsAccepted.
//
// TestInvalidHandle builds a Connection on a descriptor number that is not open; there is no
// such initializer here, so the port closes a connection's descriptor behind its back. As in
// CPython, the test asks only that nothing crashes or hangs: `poll` may answer or throw
// (Python: OSError or ValueError), `recv` and `send` must throw.

import Dispatch
import Multiprocessing
import XCTest

#if canImport(Glibc)
import Glibc
#endif

/// CPython's `_child_test_wait` with a queue: puts (i, pid) ten times, with random pauses
/// if slow, then an end marker [-1].
struct Port3PutTenNumbered: ParallelFunction {
    var queue: Queue<[Int]>
    var slow: Bool
    func callAsFunction(_: Void) throws {
        for i in 0..<10 {
            if slow { usleep(UInt32.random(in: 0..<100_000)) }
            try queue.put([i, Int(getpid())])
        }
        try queue.put([-1])
    }
}

/// CPython's TestTimeouts `_test_timeout` (its pipe half): sleeps, then sends 123 and closes.
struct Port3SendLate: ParallelFunction {
    var connection: Connection
    var seconds: Double
    func callAsFunction(_: Void) throws {
        usleep(UInt32(seconds * 1e6))
        try connection.send(123)
        connection.close()
    }
}

final class MoreWaitPortTests: PortTestCase {
    /// TestWait.test_wait / test_wait_slow with queues: four children each put ten numbered
    /// items and an end marker into their own queue; waiting on the four queues gets every
    /// item and every marker.
    func testWaitOnQueuesFilledByChildren() throws {
        try forEachMethod { method in
            for slow in [false, true] {
                var queues: [Queue<[Int]>] = []
                var children: [Multiprocessing.Process] = []
                for _ in 0..<4 {
                    let queue = try Queue<[Int]>()
                    children.append(try started(Port3PutTenNumbered(queue: queue, slow: slow), daemon: true, method))
                    queues.append(queue)
                }
                var messages: [[Int]] = []
                let end = monotonicNow() + 60
                while !queues.isEmpty && monotonicNow() < end {
                    let ready = Multiprocessing.wait(on: queues, timeout: 30)
                    for queue in ready {
                        let item = try queue.get(timeout: 0)
                        if item == [-1] {
                            queues.removeAll { $0 === queue }
                        } else {
                            messages.append(item)
                        }
                    }
                }
                XCTAssertTrue(queues.isEmpty, "\(method) slow \(slow): \(queues.count) queues never ended")
                let expected = children.flatMap { p in (0..<10).map { [$0, Int(p.pid!)] } }
                XCTAssertEqual(
                    messages.sorted { $0.lexicographicallyPrecedes($1) }, expected.sorted { $0.lexicographicallyPrecedes($1) },
                    "\(method) slow: \(slow)")
                for p in children { try joinOrKill(p) }
            }
        }
    }

    /// TestWait.test_wait_timeout and test_neg_timeout with queues (a plain, a simple and a
    /// joinable one): nothing ready gives [] after the timeout (at once for a negative one);
    /// an item makes its queue, and only it, ready.
    func testWaitOnQueuesTimesOut() throws {
        let plain = try Queue<Int>()
        let simple = try SimpleQueue<Int>()
        let joinable = try JoinableQueue<Int>()
        let objects: [any Waitable] = [plain, simple, joinable]
        let (none, elapsed) = timed { Multiprocessing.wait(on: objects, timeout: 0.5) }
        XCTAssertTrue(none.isEmpty)
        assertWaited(elapsed, 0.5, "wait(on: queues, timeout: 0.5)")
        let (negative, quick) = timed { Multiprocessing.wait(on: objects, timeout: -1) }
        XCTAssertTrue(negative.isEmpty)
        assertQuick(quick, "wait(on: queues, timeout: -1)")
        for (index, put) in [{ try plain.put(1) }, { try simple.put(2) }, { try joinable.put(3) }].enumerated() as EnumeratedSequence<[() throws -> Void]> {
            try put()
            let (ready, waited) = timed { Multiprocessing.wait(on: objects, timeout: 20) }
            XCTAssertEqual(ready.count, 1, "after a put into queue \(index)")
            XCTAssertTrue(ready.first === objects[index], "queue \(index): \(ready)")
            assertQuick(waited, "wait with queue \(index) ready")
            switch index {
            case 0: XCTAssertEqual(try plain.get(timeout: 1), 1)
            case 1: XCTAssertEqual(try simple.get(timeout: 1), 2)
            default: XCTAssertEqual(try joinable.get(timeout: 1), 3)
            }
        }
        XCTAssertTrue(Multiprocessing.wait(on: objects, timeout: 0).isEmpty, "every queue was emptied")
    }

    /// TestWait.test_wait_integer with every kind at once: a queue, a connection and a
    /// process; each is ready once it has something (its item, its message, its end), the
    /// others stay out of the answer.
    func testWaitOnAMixOfQueuesAndConnections() throws {
        try forEachMethod { method in
            let queue = try Queue<Int>()
            let (a, b) = try Pipe()
            let p = try started(SleepFor(seconds: 0.3), method)
            defer { try? p.kill(); _ = try? p.join(timeout: 20) }
            let objects: [any Waitable] = [queue, a, p]
            let (first, elapsed) = timed { Multiprocessing.wait(on: objects, timeout: 20) }
            XCTAssertEqual(first.count, 1, "\(method): \(first)")
            XCTAssertTrue(first.first === p, "\(method): the process should end first")
            XCTAssertLessThan(elapsed, 10)
            try queue.put(7)
            XCTAssertEqual(Multiprocessing.wait(on: [queue, a], timeout: 5).count, 1, "\(method)")
            try b.send(8)
            let all = Multiprocessing.wait(on: objects, timeout: 5)
            XCTAssertEqual(all.count, 3, "\(method): \(all)")
            XCTAssertEqual(try queue.get(timeout: 1), 7)
            XCTAssertEqual(try a.recv(Int.self), 8)
            let left = Multiprocessing.wait(on: objects, timeout: 0.1)
            XCTAssertEqual(left.count, 1, "\(method): only the ended process is still ready")
            XCTAssertTrue(left.first === p)
        }
    }

    /// TestTimeouts.test_timeout, its pipe half: a recv without a timeout waits for a child
    /// that sends after a pause, and then sees end of file once the child is gone.
    func testRecvWaitsForASlowSender() throws {
        try forEachMethod { method in
            let (parent, child) = try Pipe()
            let p = try started(Port3SendLate(connection: child, seconds: 0.3), method)
            child.close()
            let (value, elapsed) = try timed { try parent.recv(Int.self) }
            XCTAssertEqual(value, 123, "\(method)")
            XCTAssertGreaterThanOrEqual(elapsed, 0.2, "\(method): recv returned before the child sent")
            XCTAssertThrowsError(try parent.recv(Int.self)) {
                XCTAssertEqual(($0 as? ConnectionError)?.code, .endOfFile, "\(method): \($0)")
            }
            parent.close()
            try joinOrKill(p)
            XCTAssertEqual(p.exitCode, 0, "\(method)")
        }
    }

    /// TestInvalidHandle.test_invalid_handles: a connection whose descriptor is no longer
    /// open must not crash or hang — poll answers (or throws), recv and send throw, and wait
    /// returns. (The descriptor is closed behind the connection's back, then the number is
    /// taken again by /dev/null so that the connection's own close later closes that.)
    func testAConnectionWhoseDescriptorIsGone() throws {
        let (a, b) = try Pipe()
        let fd = a.fileDescriptor
        XCTAssertEqual(close(fd), 0)
        defer {
            let null = open("/dev/null", O_RDONLY)
            if null >= 0 && null != fd {
                dup2(null, fd)
                close(null)
            }
        }
        let outcome = TestThread {
            _ = try? a.poll(timeout: 0)
            _ = try? a.poll(timeout: 1)
            XCTAssertThrowsError(try a.recv(Int.self), "recv on a descriptor that is gone")
            XCTAssertThrowsError(try a.send(1), "send on a descriptor that is gone")
            _ = Multiprocessing.wait(on: [a], timeout: 1)
        }
        XCTAssertTrue(try outcome.wait(10), "a connection with a bad descriptor hung")
        _ = b
    }
}
