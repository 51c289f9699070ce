// More ports of CPython's lock, semaphore, condition and barrier tests
// (Lib/test/_test_multiprocessing.py: _TestLock, _TestSemaphore, _TestCondition, _TestBarrier,
// and the Lib/test/lock_tests.py cases those classes share with threading), with their
// processes on every start method.
//
// CPython test                                       → Swift test (MoreSynchronizationPortTests)
// _TestSemaphore (ValueError: initial value < 0)     → testNegativeSemaphoreValuesAreRefused
// lock_tests ConditionTests.test_unacquired_wait /
//   test_unacquired_notify                           → testConditionWaitAndNotifyNeedTheLock
// lock_tests RLockTests.test_different_thread        → testRLockCannotBeReleasedByAnotherThread
// _TestCondition.test_notify_n (notify(0))           → testNotifyZeroWakesNobody
// _TestBarrier.test_action (an action that raises;
//   lock_tests BarrierTests.test_action_exception)   → testAThrowingActionBreaksTheBarrierForAll
// _TestBarrier.test_abort (wait on a broken barrier) → testWaitOnABrokenBarrierThrowsAtOnce
//
// Differences from Python, checked as documented: RuntimeError / ValueError are
// `SynchronizationError` codes (`.notHeld`, `.invalidArgument`); BrokenBarrierError is
// `BrokenBarrierError`.

import Dispatch
import Multiprocessing
import XCTest

#if canImport(Glibc)
import Glibc
#endif

/// Says it is about to wait (a semaphore released under the condition's lock), waits at
/// most 10 s, and counts its wake-up if it was notified.
struct WaitAndCountWakeUp: ParallelFunction {
    var condition: Condition
    var ready: Multiprocessing.Semaphore
    var woken: SharedValue<Int32>
    func callAsFunction(_: Void) throws {
        try condition.withLock {
            try ready.release()
            if try condition.wait(timeout: 10) { woken.withLock { $0 += 1 } }
        }
    }
}

/// A barrier action that throws on its first pass only (lock_tests' `action` raising).
struct ThrowOnFirstPass: BarrierAction {
    struct ActionFailed: Error {}
    var passes: SharedValue<Int32>
    func callAsFunction() throws {
        let pass = passes.withLock { value -> Int32 in
            value += 1
            return value
        }
        if pass == 1 { throw ActionFailed() }
    }
}

/// One party of the barrier: the first wait's outcome ("broken" or "passed"), then, once
/// the parent has reset it, a second wait's.
struct WaitTwiceReporting: ParallelFunction {
    var barrier: Barrier
    var report: Queue<String>
    var resetDone: Event
    func callAsFunction(_: Void) throws {
        func attempt() throws {
            do {
                _ = try barrier.wait(timeout: 20)
                try report.put("passed")
            } catch is BrokenBarrierError {
                try report.put("broken")
            }
        }
        try attempt()
        try require(resetDone.wait(timeout: 30), "no reset")
        try attempt()
    }
}

final class MoreSynchronizationPortTests: PortTestCase {
    /// ValueError("semaphore initial value must be >= 0"): a negative start is refused.
    func testNegativeSemaphoreValuesAreRefused() throws {
        for value in [-1, Int.min] {
            XCTAssertThrowsError(try Multiprocessing.Semaphore(value: value)) {
                XCTAssertEqual(($0 as? SynchronizationError)?.code, .invalidArgument, "Semaphore(\(value)): \($0)")
            }
            XCTAssertThrowsError(try BoundedSemaphore(value: value)) {
                XCTAssertEqual(($0 as? SynchronizationError)?.code, .invalidArgument, "BoundedSemaphore(\(value)): \($0)")
            }
        }
        let zero = try Multiprocessing.Semaphore(value: 0)
        XCTAssertEqual(zero.value, 0)
        XCTAssertFalse(zero.acquire(blocking: false))
        // Difference: Python allows BoundedSemaphore(0) (every release then raises); here it is
        // refused at creation, saying it could never be released.
        XCTAssertThrowsError(try BoundedSemaphore(value: 0)) {
            XCTAssertEqual(($0 as? SynchronizationError)?.code, .invalidArgument, "\($0)")
        }
    }

    /// test_unacquired_wait / test_unacquired_notify: wait, notify and notifyAll without the
    /// condition's lock throw (RuntimeError) at once instead of waiting or waking anyone.
    func testConditionWaitAndNotifyNeedTheLock() throws {
        let condition = try Condition()
        let (_, elapsed) = try timed {
            XCTAssertThrowsError(try condition.wait(timeout: 5)) {
                XCTAssertEqual(($0 as? SynchronizationError)?.code, .notHeld, "wait: \($0)")
            }
            XCTAssertThrowsError(try condition.wait(for: { false }, timeout: 5)) {
                XCTAssertEqual(($0 as? SynchronizationError)?.code, .notHeld, "wait(for:): \($0)")
            }
        }
        assertQuick(elapsed, "wait without the lock")
        XCTAssertThrowsError(try condition.notify()) {
            XCTAssertEqual(($0 as? SynchronizationError)?.code, .notHeld, "notify: \($0)")
        }
        XCTAssertThrowsError(try condition.notifyAll()) {
            XCTAssertEqual(($0 as? SynchronizationError)?.code, .notHeld, "notifyAll: \($0)")
        }
        XCTAssertThrowsError(try condition.release()) {
            XCTAssertEqual(($0 as? SynchronizationError)?.code, .notHeld, "release: \($0)")
        }
        // held by another thread is not held by this one
        let held = DispatchSemaphore(value: 0), done = DispatchSemaphore(value: 0)
        let thread = TestThread {
            try condition.withLock {
                held.signal()
                _ = done.wait(timeout: .now() + 10)
            }
        }
        XCTAssertEqual(held.wait(timeout: .now() + 10), .success)
        XCTAssertThrowsError(try condition.notify()) {
            XCTAssertEqual(($0 as? SynchronizationError)?.code, .notHeld, "notify while another thread holds it: \($0)")
        }
        XCTAssertThrowsError(try condition.wait(timeout: 0.1)) {
            XCTAssertEqual(($0 as? SynchronizationError)?.code, .notHeld, "wait while another thread holds it: \($0)")
        }
        done.signal()
        XCTAssertTrue(try thread.wait())
    }

    /// lock_tests RLockTests.test_different_thread: an RLock (and a Lock) held by one thread
    /// cannot be released by another (RuntimeError); it stays held.
    func testRLockCannotBeReleasedByAnotherThread() throws {
        let rlock = try RLock()
        let lock = try Lock()
        let held = DispatchSemaphore(value: 0), done = DispatchSemaphore(value: 0)
        let thread = TestThread {
            _ = try rlock.acquire()
            _ = try lock.acquire()
            held.signal()
            _ = done.wait(timeout: .now() + 10)
            try lock.release()
            try rlock.release()
        }
        XCTAssertEqual(held.wait(timeout: .now() + 10), .success)
        XCTAssertThrowsError(try rlock.release()) { XCTAssertEqual(($0 as? SynchronizationError)?.code, .notHeld, "\($0)") }
        XCTAssertTrue(rlock.isLocked)
        XCTAssertFalse(rlock.isHeldByCurrentThread)
        XCTAssertThrowsError(try lock.release()) { XCTAssertEqual(($0 as? SynchronizationError)?.code, .notHeld, "\($0)") }
        XCTAssertTrue(lock.isLocked)
        XCTAssertFalse(try rlock.acquire(blocking: false))
        done.signal()
        XCTAssertTrue(try thread.wait())
        XCTAssertFalse(rlock.isLocked)
        XCTAssertFalse(lock.isLocked)
    }

    /// test_notify_n with n = 0: notify(n: 0) wakes none of two waiting children; notifyAll
    /// then wakes both.
    func testNotifyZeroWakesNobody() throws {
        try forEachMethod { method in
            let condition = try Condition()
            let ready = try Multiprocessing.Semaphore(value: 0)
            let woken = try SharedValue<Int32>(0)
            let children = try (0..<2).map { _ in
                try started(WaitAndCountWakeUp(condition: condition, ready: ready, woken: woken), method)
            }
            for _ in children { XCTAssertTrue(ready.acquire(timeout: 30), "\(method)") }
            try condition.withLock { try condition.notify(n: 0) }
            usleep(300_000)
            XCTAssertEqual(woken.value, 0, "\(method): notify(n: 0) woke a waiter")
            try condition.withLock { try condition.notifyAll() }
            for p in children { try joinOrKill(p) }
            XCTAssertEqual(woken.value, 2, "\(method)")
            XCTAssertEqual(children.map(\.exitCode), [0, 0])
        }
    }

    /// An action that throws breaks the barrier: every party (two children and this
    /// process) gets BrokenBarrierError; after reset() the barrier works again (the action
    /// does not throw on its second pass).
    func testAThrowingActionBreaksTheBarrierForAll() throws {
        try forEachMethod { method in
            let passes = try SharedValue<Int32>(0)
            let barrier = try Barrier(parties: 3, action: ThrowOnFirstPass(passes: passes))
            let report = try Queue<String>()
            let resetDone = try Event()
            let children = try (0..<2).map { _ in
                try started(WaitTwiceReporting(barrier: barrier, report: report, resetDone: resetDone), method)
            }
            defer { for p in children { try? joinOrKill(p) } }
            var mine: String
            do {
                _ = try barrier.wait(timeout: 20)
                mine = "passed"
            } catch is BrokenBarrierError {
                mine = "broken"
            }
            let theirs = try (0..<2).map { _ in try report.get(timeout: 30) }
            XCTAssertEqual([mine] + theirs, ["broken", "broken", "broken"], "\(method)")
            XCTAssertTrue(barrier.isBroken, "\(method)")
            XCTAssertEqual(passes.value, 1)
            try barrier.reset()
            XCTAssertFalse(barrier.isBroken)
            resetDone.set()
            let index = try barrier.wait(timeout: 20)
            XCTAssertTrue((0..<3).contains(index))
            let again = try (0..<2).map { _ in try report.get(timeout: 30) }
            XCTAssertEqual(again, ["passed", "passed"], "\(method)")
            XCTAssertEqual(passes.value, 2)
            XCTAssertFalse(barrier.isBroken)
        }
    }

    /// test_abort: a wait on a barrier that is already broken throws at once (Python: at
    /// once too), with or without a timeout.
    func testWaitOnABrokenBarrierThrowsAtOnce() throws {
        let barrier = try Barrier(parties: 2)
        try barrier.abort()
        XCTAssertTrue(barrier.isBroken)
        for timeout in [nil, 5.0] {
            let (_, elapsed) = try timed {
                XCTAssertThrowsError(try barrier.wait(timeout: timeout)) { XCTAssertTrue($0 is BrokenBarrierError, "\($0)") }
            }
            assertQuick(elapsed, "wait on a broken barrier")
        }
        XCTAssertEqual(barrier.nWaiting, 0)
        try barrier.reset()
        XCTAssertFalse(barrier.isBroken)
    }
}
