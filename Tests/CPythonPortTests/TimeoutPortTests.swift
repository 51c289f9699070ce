// CPython's cases with non-positive timeouts, across every timed call of the API:
// _TestProcess._kill_process (join(0), join(-1)), _TestConnection.test_connection (poll(-1)),
// TestWait.test_neg_timeout (wait(timeout=-1)), _TestQueue.test_get/test_put (get/put with
// block=False and a timeout), _TestSemaphore.test_timeout (acquire(False, TIMEOUT1)),
// _TestCondition.test_wait_result (wait(0)), _TestEvent.test_event (wait(0.0)).
//
// CPython test                                   → Swift test (TimeoutPortTests)
// the cases above, generalised                   → testNonPositiveTimeoutsReturnAtOnce
// (NaN: CPython rejects it with ValueError)      → testNaNTimeoutsReturnAtOnce
// (the other end: no timeout / infinity)         → testInfiniteTimeoutsStillWait
//
// A timeout of 0 or less means "do not wait" everywhere (CPython clamps negative timeouts
// to 0 in its semaphores, connections and queues). A NaN timeout has no meaning; CPython
// raises ValueError. This API has no error for it: it is treated as 0, the same in every
// call. Bugs these cases found (fixed): a NaN or minus-infinity timeout waited for ever in
// Semaphore, BoundedSemaphore, Event, Condition and Barrier (and not at all elsewhere); an
// infinite or huge timeout on a contended Lock or RLock crashed the process (Double → Int).

import Multiprocessing
import XCTest

#if canImport(Glibc)
import Glibc
#endif

final class TimeoutPortTests: PortTestCase {
    /// Every timed call with `timeout`, on objects that are not ready: each must return (or
    /// throw its time-out error) within a second. Runs each on a thread of its own so that a
    /// call that waits for ever fails the test instead of hanging it.
    private func checkEveryCallReturnsAtOnce(_ timeout: Double, file: StaticString = #filePath, line: UInt = #line) throws {
        let lock = try Lock(), rlock = try RLock()
        let semaphore = try Multiprocessing.Semaphore(value: 0), bounded = try BoundedSemaphore(value: 1)
        let event = try Event(), condition = try Condition()
        let barrier = try Barrier(parties: 2)
        let queue = try Queue<Int>(maxSize: 1), joinable = try JoinableQueue<Int>(), simple = try SimpleQueue<Int>()
        let (a, b) = try Pipe()
        let sleeper = try started(SleepFor(seconds: 30), .fork)
        defer { try? sleeper.kill(); _ = try? sleeper.join(timeout: 20) }
        let pool = try Pool(processes: 1, startMethod: .fork)
        defer { pool.terminate() }
        let slow = try pool.applyAsync(SlowSqr(seconds: 30), 1)
        let stream = try pool.imap(SlowSqr(seconds: 30), [1])
        try queue.put(1)
        try joinable.put(1)
        _ = bounded.acquire()
        // Held by another thread, so that this thread's attempts wait (and do not deadlock).
        let letGo = try Multiprocessing.Semaphore(value: 0)
        let holder = TestThread {
            try lock.acquire()
            try rlock.acquire()
            _ = letGo.acquire(timeout: 30)
            try lock.release()
            try rlock.release()
        }
        XCTAssertTrue(eventually(within: 5) { lock.isLocked && rlock.isLocked })
        let calls: [(String, @Sendable () throws -> Void)] = [
            ("Lock.acquire", { _ = try lock.acquire(timeout: timeout) }),
            ("RLock.acquire", { _ = try rlock.acquire(timeout: timeout) }),
            ("Semaphore.acquire", { _ = semaphore.acquire(timeout: timeout) }),
            ("BoundedSemaphore.acquire", { _ = bounded.acquire(timeout: timeout) }),
            ("Event.wait", { _ = event.wait(timeout: timeout) }),
            ("Condition.wait", { try condition.withLock { _ = try condition.wait(timeout: timeout) } }),
            ("Condition.wait(for:)", { try condition.withLock { _ = try condition.wait(for: { false }, timeout: timeout) } }),
            ("Barrier.wait", { _ = try? barrier.wait(timeout: timeout) }),
            ("Queue.get", { _ = try? Queue<Int>().get(timeout: timeout) }),
            ("Queue.put", { _ = try? queue.put(2, timeout: timeout) }),
            ("JoinableQueue.join", { _ = try joinable.join(timeout: timeout) }),
            ("SimpleQueue.get", { _ = try? simple.get(timeout: timeout) }),
            ("Connection.poll", { _ = try a.poll(timeout: timeout) }),
            ("wait(on:)", { _ = Multiprocessing.wait(on: [a], timeout: timeout) }),
            ("Process.join", { _ = try sleeper.join(timeout: timeout) }),
            ("AsyncResult.wait", { _ = slow.wait(timeout: timeout) }),
            ("AsyncResult.get", { _ = try? slow.get(timeout: timeout) }),
            ("ResultStream.next", { _ = try? stream.next(timeout: timeout) }),
        ]
        for (name, call) in calls {
            let start = monotonicNow()
            let thread = TestThread(call)
            let returned = try thread.wait(5)
            XCTAssertTrue(returned, "\(name)(timeout: \(timeout)) did not return within 5 s", file: file, line: line)
            if returned {
                XCTAssertLessThan(monotonicNow() - start, 1.0, "\(name)(timeout: \(timeout)) waited", file: file, line: line)
            }
        }
        if barrier.isBroken { try barrier.reset() }
        try? barrier.abort() // frees a barrier wait that did not return
        event.set() // frees an event wait that did not return
        try semaphore.release(10)
        try condition.withLock { try condition.notifyAll() }
        try letGo.release()
        _ = try holder.wait(10)
        _ = b
    }

    /// join(0), join(-1), poll(-1), wait(timeout: -1), get/put with timeout 0…: every timed
    /// call returns at once for 0 and for a negative timeout, minus infinity included.
    func testNonPositiveTimeoutsReturnAtOnce() throws {
        try checkEveryCallReturnsAtOnce(0)
        try checkEveryCallReturnsAtOnce(-1)
        try checkEveryCallReturnsAtOnce(-.infinity) // used to wait for ever in the futex-based primitives
    }

    /// A NaN timeout is treated as 0 by every call.
    func testNaNTimeoutsReturnAtOnce() throws {
        try checkEveryCallReturnsAtOnce(.nan)
    }

    /// An infinite (or huge) timeout waits like no timeout: here until another thread lets
    /// go. (A contended Lock or RLock used to crash the process converting the deadline to
    /// an integer; so did `ResultStream.next(timeout:)` — which refused infinity, too.)
    func testInfiniteTimeoutsStillWait() throws {
        let pool = try Pool(processes: 1, startMethod: .fork)
        defer { pool.terminate() }
        for timeout in [Double.infinity, .greatestFiniteMagnitude, 1e300] {
            let stream = try pool.imap(SlowSqr(seconds: 0.6), [3])
            let semaphore = try Multiprocessing.Semaphore(value: 0)
            let event = try Event()
            let queue = try Queue<Int>()
            let lock = try Lock(), rlock = try RLock()
            let held = try Multiprocessing.Semaphore(value: 0), release = try Multiprocessing.Semaphore(value: 0)
            let holder = TestThread {
                try lock.acquire()
                try rlock.acquire()
                try held.release()
                guard release.acquire(timeout: 30) else { throw ChildCheckFailed("no release") }
                try lock.release()
                try rlock.release()
            }
            XCTAssertTrue(held.acquire(timeout: 10))
            let waiters = [
                TestThread { guard semaphore.acquire(timeout: timeout) else { throw ChildCheckFailed("semaphore") } },
                TestThread { guard event.wait(timeout: timeout) else { throw ChildCheckFailed("event") } },
                TestThread { _ = try queue.get(timeout: timeout) },
                TestThread {
                    guard try lock.acquire(timeout: timeout) else { throw ChildCheckFailed("lock") }
                    try lock.release()
                },
                TestThread {
                    guard try rlock.acquire(timeout: timeout) else { throw ChildCheckFailed("rlock") }
                    try rlock.release()
                },
                TestThread { guard try stream.next(timeout: timeout)?.get() == 9 else { throw ChildCheckFailed("stream") } },
            ]
            usleep(200_000)
            for waiter in waiters { XCTAssertFalse(try waiter.wait(0), "timeout \(timeout): returned before the release") }
            try semaphore.release()
            event.set()
            try queue.put(1)
            try release.release()
            XCTAssertTrue(try holder.wait(10))
            for waiter in waiters { XCTAssertTrue(try waiter.wait(10), "timeout \(timeout)") }
        }
    }
}
