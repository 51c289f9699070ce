// Ports of CPython's lock, semaphore, condition and event tests
// (Lib/test/_test_multiprocessing.py: _TestLock, _TestSemaphore, _TestCondition, _TestEvent),
// with their processes on every start method (and their threads as threads).
//
// CPython test                                  → Swift test (LockSemaphoreConditionEventPortTests)
// _TestLock.test_lock                           → testLock
// _TestLock.test_lock_locked_2processes         → testLockHeldByAChildIsLockedHere
// _TestLock.test_rlock                          → testRLock
// _TestLock.test_rlock_locked_2processes        → testLockHeldByAChildIsLockedHere (RLock)
// _TestLock.test_lock_context / rlock_context   → testLock / testRLock (withLock)
// _TestSemaphore.test_semaphore                 → testSemaphoreCounts
// _TestSemaphore.test_bounded_semaphore         → testBoundedSemaphoreCounts
// _TestSemaphore.test_timeout                   → testSemaphoreTimeouts
// _TestCondition.check_invariant               → waiterCount == 0 in the three notify tests
// _TestCondition.test_notify                    → testNotifyWakesOneAtATime
// _TestCondition.test_notify_all                → testNotifyAllAfterTimedOutWaiters
// _TestCondition.test_notify_n                  → testNotifyN
// _TestCondition.test_timeout                   → testConditionWaitTimeout
// _TestCondition.test_waitfor                   → testWaitForAcrossProcesses
// _TestCondition.test_waitfor_timeout           → testWaitForTimeoutInAChild
// _TestCondition.test_wait_result               → testWaitResult
// _TestEvent.test_event                         → testEvent
//
// CPython runs _TestCondition for its 'manager' type too (`Manager().Condition()`, over a
// manager RLock): every condition case above runs a second time as `testManager…` with a
// `Manager`'s `ConditionProxy` (`PortCondition`).
//
// Not applicable: test_repr_lock, test_repr_rlock, _TestEvent.test_repr (no owner
// descriptions); the SIGINT half of test_wait_result (no KeyboardInterrupt).
//
// Differences from Python, checked as documented:
// - A lock whose holder died is recovered by the next acquirer, who is told so
//   (`acquireReportingRecovery` → `.acquiredFromDeadOwner`); Python's stays locked for ever.
// - `acquire(blocking: false)` by the thread that holds a Lock returns false, as Python's;
//   `release()` of a lock not held throws `SynchronizationError(.notHeld)` (Python: ValueError
//   or RuntimeError).
// - A BoundedSemaphore released above its start throws `.releasedTooManyTimes` (CPython's
//   check is commented out for macOS).

import Multiprocessing // and Condition.waiterCount (package access): CPython's check_invariant
import XCTest

#if canImport(Glibc)
import Glibc
#endif

/// CPython's `_test_lock_locked_2processes`: takes the lock, reports `isLocked`, sets the
/// event, and ends holding the lock.
struct TakeLockAndReport: ParallelFunction {
    var lock: Lock?
    var rlock: RLock?
    var result: SharedValue<Int32>
    var event: Event
    func callAsFunction(_: Void) throws {
        if let lock {
            try require(try lock.acquire(timeout: 30), "acquire")
            result.value = lock.isLocked ? 1 : 0
        }
        if let rlock {
            try require(try rlock.acquire(timeout: 30), "acquire")
            result.value = rlock.isLocked ? 1 : 0
        }
        event.set()
        usleep(200_000)
    }
}

/// The condition under test: shared memory's, or a manager's (CPython's 'manager' type).
enum PortCondition: Codable {
    case local(Condition)
    case manager(ConditionProxy)

    /// A condition of `manager` when there is one, else a shared-memory one.
    static func make(_ manager: Manager?) throws -> PortCondition {
        if let manager { return .manager(try manager.condition()) }
        return .local(try Condition())
    }

    func acquire() throws {
        switch self {
        case .local(let condition): _ = try condition.acquire()
        case .manager(let condition): _ = try condition.acquire()
        }
    }

    func release() throws {
        switch self {
        case .local(let condition): try condition.release()
        case .manager(let condition): try condition.release()
        }
    }

    func withLock<R>(_ body: () throws -> R) throws -> R {
        try acquire()
        defer { try? release() }
        return try body()
    }

    func wait(timeout: Double? = nil) throws -> Bool {
        switch self {
        case .local(let condition): try condition.wait(timeout: timeout)
        case .manager(let condition): try condition.wait(timeout: timeout)
        }
    }

    func wait(for predicate: () throws -> Bool, timeout: Double? = nil) throws -> Bool {
        switch self {
        case .local(let condition): try condition.wait(for: predicate, timeout: timeout)
        case .manager(let condition): try condition.wait(for: predicate, timeout: timeout)
        }
    }

    func notify(n: Int = 1) throws {
        switch self {
        case .local(let condition): try condition.notify(n: n)
        case .manager(let condition): _ = try condition.notify(n: n)
        }
    }

    func notifyAll() throws {
        switch self {
        case .local(let condition): try condition.notifyAll()
        case .manager(let condition): _ = try condition.notifyAll()
        }
    }

    /// CPython's check_invariant: the waiters not yet woken.
    var waiterCount: Int? {
        get throws {
            switch self {
            case .local(let condition): condition.waiterCount
            case .manager(let condition): try condition.waiterCount()
            }
        }
    }
}

/// CPython's condition `f`: holding the lock, releases `sleeping`, waits, releases `woken`.
struct WaitOnCondition: ParallelFunction {
    var condition: PortCondition
    var sleeping: Multiprocessing.Semaphore
    var woken: Multiprocessing.Semaphore
    var timeout: Double?
    func callAsFunction(_: Void) throws {
        try condition.acquire()
        try sleeping.release()
        _ = try condition.wait(timeout: timeout)
        try woken.release()
        try condition.release()
    }
}

/// CPython's `_test_waitfor_f`: sets the state to 0, notifies, waits for 4 (exit 1 if not).
struct WaitForFour: ParallelFunction {
    var condition: PortCondition
    var state: SharedValue<Int32>
    func callAsFunction(_: Void) throws {
        try condition.withLock {
            state.value = 0
            try condition.notify()
            let result = try condition.wait(for: { state.value == 4 }, timeout: 30)
            try require(result && state.value == 4, "state \(state.value)")
        }
    }
}

/// CPython's `_test_waitfor_timeout_f`: waits for a state that never comes, 0.1 s.
struct WaitForFourInTime: ParallelFunction {
    var condition: PortCondition
    var state: SharedValue<Int32>
    var success: SharedValue<Int32>
    var started: Multiprocessing.Semaphore
    func callAsFunction(_: Void) throws {
        try started.release()
        try condition.withLock {
            let start = monotonicNow()
            let result = try condition.wait(for: { state.value == 4 }, timeout: 0.1)
            let elapsed = monotonicNow() - start
            if !result && elapsed >= 0.1 - 0.001 { success.value = 1 }
        }
    }
}

/// CPython's `_test_wait_result`: notifies once.
struct NotifyOnce: ParallelFunction {
    var condition: PortCondition
    func callAsFunction(_: Void) throws {
        try condition.withLock { try condition.notify() }
    }
}

/// CPython's `_test_event`: sets the event after a while.
struct SetEventLater: ParallelFunction {
    var event: Event
    var seconds: Double
    func callAsFunction(_: Void) {
        usleep(UInt32(seconds * 1e6))
        event.set()
    }
}

final class LockSemaphoreConditionEventPortTests: PortTestCase {
    /// The manager whose conditions a `testManager…` case uses; nil for shared-memory ones.
    private var manager: Manager?

    override func tearDown() {
        manager?.shutdown()
        manager = nil
        super.tearDown()
    }

    // MARK: locks

    /// test_lock, test_lock_context.
    func testLock() throws {
        let lock = try Lock()
        XCTAssertTrue(try lock.acquire())
        XCTAssertTrue(lock.isLocked)
        XCTAssertFalse(try lock.acquire(blocking: false))
        try lock.release()
        XCTAssertFalse(lock.isLocked)
        XCTAssertThrowsError(try lock.release()) { XCTAssertEqual(($0 as? SynchronizationError)?.code, .notHeld) }
        XCTAssertTrue(try lock.withLock { lock.isLocked })
        XCTAssertFalse(lock.isLocked)
    }

    /// test_rlock, test_rlock_context.
    func testRLock() throws {
        let lock = try RLock()
        XCTAssertTrue(try lock.acquire())
        XCTAssertTrue(lock.isLocked)
        XCTAssertTrue(try lock.acquire())
        XCTAssertTrue(try lock.acquire())
        try lock.release()
        XCTAssertTrue(lock.isLocked)
        try lock.release()
        try lock.release()
        XCTAssertFalse(lock.isLocked)
        XCTAssertThrowsError(try lock.release()) { XCTAssertEqual(($0 as? SynchronizationError)?.code, .notHeld) }
        XCTAssertTrue(try lock.withLock { try lock.withLock { lock.isLocked } })
        XCTAssertFalse(lock.isLocked)
    }

    /// test_lock_locked_2processes and test_rlock_locked_2processes: a lock taken in a child
    /// is locked here too; once the child ended holding it, the next acquire recovers it
    /// (difference: Python's stays locked).
    func testLockHeldByAChildIsLockedHere() throws {
        try forEachMethod { method in
            for reentrant in [false, true] {
                let lock = try Lock(), rlock = try RLock()
                let result = try SharedValue<Int32>(0)
                let event = try Event()
                let p = try started(
                    TakeLockAndReport(
                        lock: reentrant ? nil : lock, rlock: reentrant ? rlock : nil,
                        result: result, event: event), method)
                XCTAssertTrue(event.wait(timeout: 30))
                XCTAssertTrue(reentrant ? rlock.isLocked : lock.isLocked, "\(method) reentrant: \(reentrant)")
                XCTAssertEqual(result.value, 1)
                XCTAssertFalse(reentrant ? try rlock.acquire(blocking: false) : try lock.acquire(blocking: false))
                try joinOrKill(p)
                XCTAssertEqual(p.exitCode, 0)
                let outcome = reentrant ? try rlock.acquireReportingRecovery(timeout: 5) : try lock.acquireReportingRecovery(timeout: 5)
                XCTAssertEqual(outcome, .acquiredFromDeadOwner, "\(method) reentrant: \(reentrant)")
                if reentrant { try rlock.release() } else { try lock.release() }
            }
        }
    }

    // MARK: semaphores

    /// The common part of test_semaphore and test_bounded_semaphore (`_test_semaphore`).
    private func checkTwoUnits(value: () -> Int, acquire: (Bool) -> Bool, release: () throws -> Void) throws {
        XCTAssertEqual(value(), 2)
        XCTAssertTrue(acquire(true))
        XCTAssertEqual(value(), 1)
        XCTAssertTrue(acquire(true))
        XCTAssertEqual(value(), 0)
        XCTAssertFalse(acquire(false))
        XCTAssertEqual(value(), 0)
        try release()
        XCTAssertEqual(value(), 1)
        try release()
        XCTAssertEqual(value(), 2)
    }

    /// test_semaphore: an unbounded semaphore goes above its start.
    func testSemaphoreCounts() throws {
        let semaphore = try Multiprocessing.Semaphore(value: 2)
        try checkTwoUnits(
            value: { semaphore.value }, acquire: { semaphore.acquire(blocking: $0) },
            release: { try semaphore.release() })
        try semaphore.release()
        XCTAssertEqual(semaphore.value, 3)
        try semaphore.release()
        XCTAssertEqual(semaphore.value, 4)
    }

    /// test_bounded_semaphore (with the check CPython leaves commented out).
    func testBoundedSemaphoreCounts() throws {
        let semaphore = try BoundedSemaphore(value: 2)
        try checkTwoUnits(
            value: { semaphore.value }, acquire: { semaphore.acquire(blocking: $0) },
            release: { try semaphore.release() })
        XCTAssertThrowsError(try semaphore.release()) {
            XCTAssertEqual(($0 as? SynchronizationError)?.code, .releasedTooManyTimes)
        }
        XCTAssertEqual(semaphore.value, 2)
    }

    /// test_timeout (semaphore): a non-blocking acquire ignores its timeout; a blocking one
    /// waits it out.
    func testSemaphoreTimeouts() throws {
        let semaphore = try Multiprocessing.Semaphore(value: 0)
        for (blocking, timeout, expected) in [(false, nil, 0.0), (false, 0.1, 0), (true, 0.1, 0.1), (true, 0.2, 0.2)] as [(Bool, Double?, Double)] {
            let (got, elapsed) = timed { semaphore.acquire(blocking: blocking, timeout: timeout) }
            XCTAssertFalse(got)
            if expected == 0 { assertQuick(elapsed, "acquire(blocking: false)") } else { assertWaited(elapsed, expected, "acquire") }
        }
    }

    // MARK: conditions

    /// Starts `processes` children and then `threads` threads running `WaitOnCondition`.
    /// (CPython interleaves them; here every child starts before the first thread: a `.fork`
    /// while a thread the library did not start runs Swift code can hang the child in the
    /// Swift runtime — the README's fork-safety rule, reproduced with these very cases.)
    private func startWaiters(
        _ task: WaitOnCondition, processes: Int, threads: Int,
        _ method: StartMethod
    ) throws -> ([Multiprocessing.Process], [TestThread]) {
        let children = try (0..<processes).map { _ in try started(task, daemon: true, method) }
        let others = (0..<threads).map { _ in TestThread { try task(()) } }
        return (children, others)
    }

    private func finish(_ children: [Multiprocessing.Process], _ threads: [TestThread], _ method: StartMethod) throws {
        for p in children { try joinOrKill(p) }
        XCTAssertEqual(children.map(\.exitCode), Array(repeating: 0, count: children.count), "\(method)")
        for t in threads { XCTAssertTrue(try t.wait(), "\(method): a thread did not end") }
    }

    /// test_notify: a process and a thread wait; each notify wakes exactly one.
    func testNotifyWakesOneAtATime() throws { try notifyWakesOneAtATime(managed: false) }

    func testManagerNotifyWakesOneAtATime() throws { try notifyWakesOneAtATime(managed: true) }

    private func notifyWakesOneAtATime(managed: Bool) throws {
        if managed { manager = try Manager() }
        try forEachMethod { method in
            let task = WaitOnCondition(
                condition: try PortCondition.make(manager), sleeping: try .init(value: 0), woken: try .init(value: 0),
                timeout: nil)
            let (children, threads) = try startWaiters(task, processes: 1, threads: 1, method)
            XCTAssertTrue(task.sleeping.acquire(timeout: 30))
            XCTAssertTrue(task.sleeping.acquire(timeout: 30))
            usleep(50_000)
            XCTAssertEqual(task.woken.value, 0)
            try task.condition.withLock { try task.condition.notify() }
            XCTAssertTrue(eventually { task.woken.value == 1 }, "\(method)")
            usleep(50_000)
            XCTAssertEqual(task.woken.value, 1, "\(method): notify() woke more than one")
            try task.condition.withLock { try task.condition.notify() }
            XCTAssertTrue(eventually { task.woken.value == 2 }, "\(method)")
            XCTAssertEqual(try task.condition.waiterCount, 0, "\(method): check_invariant")
            try finish(children, threads, method)
        }
    }

    /// test_notify_all: three processes and three threads time out (0.1 s); then six more
    /// wait without a timeout, none wakes alone, and one notifyAll wakes them all.
    func testNotifyAllAfterTimedOutWaiters() throws { try notifyAllAfterTimedOutWaiters(managed: false) }

    func testManagerNotifyAllAfterTimedOutWaiters() throws { try notifyAllAfterTimedOutWaiters(managed: true) }

    private func notifyAllAfterTimedOutWaiters(managed: Bool) throws {
        if managed { manager = try Manager() }
        try forEachMethod { method in
            let condition = try PortCondition.make(manager)
            let sleeping = try Multiprocessing.Semaphore(value: 0), woken = try Multiprocessing.Semaphore(value: 0)
            let timing = WaitOnCondition(condition: condition, sleeping: sleeping, woken: woken, timeout: 0.1)
            let (first, firstThreads) = try startWaiters(timing, processes: 3, threads: 3, method)
            for _ in 0..<6 { XCTAssertTrue(sleeping.acquire(timeout: 30)) }
            for _ in 0..<6 { XCTAssertTrue(woken.acquire(timeout: 30), "\(method): a waiter did not time out") }
            XCTAssertEqual(woken.value, 0)
            XCTAssertEqual(try condition.waiterCount, 0, "\(method): check_invariant after time-outs")
            try finish(first, firstThreads, method)
            let waiting = WaitOnCondition(condition: condition, sleeping: sleeping, woken: woken, timeout: nil)
            let (second, secondThreads) = try startWaiters(waiting, processes: 3, threads: 3, method)
            for _ in 0..<6 { XCTAssertTrue(sleeping.acquire(timeout: 30)) }
            usleep(100_000)
            XCTAssertEqual(woken.value, 0, "\(method): a waiter woke without a notify")
            try condition.withLock { try condition.notifyAll() }
            for _ in 0..<6 { XCTAssertTrue(woken.acquire(timeout: 30), "\(method): notifyAll left a waiter asleep") }
            XCTAssertEqual(woken.value, 0)
            XCTAssertEqual(try condition.waiterCount, 0, "\(method): check_invariant after notifyAll")
            try finish(second, secondThreads, method)
        }
    }

    /// test_notify_n: notify(n: 2) wakes two of six; notify(n: 4) the other four; notify(n: 3)
    /// then wakes nobody.
    func testNotifyN() throws { try notifyN(managed: false) }

    func testManagerNotifyN() throws { try notifyN(managed: true) }

    private func notifyN(managed: Bool) throws {
        if managed { manager = try Manager() }
        try forEachMethod { method in
            let task = WaitOnCondition(
                condition: try PortCondition.make(manager), sleeping: try .init(value: 0), woken: try .init(value: 0),
                timeout: nil)
            let (children, threads) = try startWaiters(task, processes: 3, threads: 3, method)
            for _ in 0..<6 { XCTAssertTrue(task.sleeping.acquire(timeout: 30)) }
            usleep(50_000)
            XCTAssertEqual(task.woken.value, 0)
            try task.condition.withLock { try task.condition.notify(n: 2) }
            XCTAssertTrue(eventually { task.woken.value == 2 }, "\(method)")
            usleep(100_000)
            XCTAssertEqual(task.woken.value, 2, "\(method): notify(n: 2) woke more")
            try task.condition.withLock { try task.condition.notify(n: 4) }
            XCTAssertTrue(eventually { task.woken.value == 6 }, "\(method): \(task.woken.value) woken")
            try task.condition.withLock { try task.condition.notify(n: 3) }
            usleep(50_000)
            XCTAssertEqual(task.woken.value, 6)
            XCTAssertEqual(try task.condition.waiterCount, 0, "\(method): check_invariant")
            try finish(children, threads, method)
        }
    }

    /// test_timeout (condition).
    func testConditionWaitTimeout() throws { try conditionWaitTimeout(managed: false) }

    func testManagerConditionWaitTimeout() throws { try conditionWaitTimeout(managed: true) }

    private func conditionWaitTimeout(managed: Bool) throws {
        if managed { manager = try Manager() }
        let condition = try PortCondition.make(manager)
        try condition.acquire()
        let (result, elapsed) = try timed { try condition.wait(timeout: 0.1) }
        try condition.release()
        XCTAssertFalse(result)
        assertWaited(elapsed, 0.1, "wait(timeout: 0.1)")
    }

    /// test_waitfor: the parent waits for the child's state 0, then counts up to 4 with a
    /// notify each time; the child's wait(for:) sees 4.
    func testWaitForAcrossProcesses() throws { try waitForAcrossProcesses(managed: false) }

    func testManagerWaitForAcrossProcesses() throws { try waitForAcrossProcesses(managed: true) }

    private func waitForAcrossProcesses(managed: Bool) throws {
        if managed { manager = try Manager() }
        try forEachMethod { method in
            let condition = try PortCondition.make(manager)
            let state = try SharedValue<Int32>(-1)
            let p = try started(WaitForFour(condition: condition, state: state), daemon: true, method)
            try condition.withLock {
                XCTAssertTrue(try condition.wait(for: { state.value == 0 }, timeout: 30))
                XCTAssertEqual(state.value, 0)
            }
            for _ in 0..<4 {
                usleep(10_000)
                try condition.withLock {
                    state.value += 1
                    try condition.notify()
                }
            }
            try joinOrKill(p)
            XCTAssertEqual(p.exitCode, 0, "\(method)")
        }
    }

    /// test_waitfor_timeout: the state never reaches 4; the child's wait(for:timeout: 0.1)
    /// returns false, not before 0.1 s.
    func testWaitForTimeoutInAChild() throws { try waitForTimeoutInAChild(managed: false) }

    func testManagerWaitForTimeoutInAChild() throws { try waitForTimeoutInAChild(managed: true) }

    private func waitForTimeoutInAChild(managed: Bool) throws {
        if managed { manager = try Manager() }
        try forEachMethod { method in
            let condition = try PortCondition.make(manager)
            let state = try SharedValue<Int32>(0), success = try SharedValue<Int32>(0)
            let semaphore = try Multiprocessing.Semaphore(value: 0)
            let p = try started(
                WaitForFourInTime(condition: condition, state: state, success: success, started: semaphore),
                daemon: true, method)
            XCTAssertTrue(semaphore.acquire(timeout: 30))
            for _ in 0..<3 {
                usleep(10_000)
                try condition.withLock {
                    state.value += 1
                    try condition.notify()
                }
            }
            try joinOrKill(p)
            XCTAssertEqual(success.value, 1, "\(method)")
        }
    }

    /// test_wait_result: wait(0) and wait(0.1) return false; a child's notify makes wait true.
    func testWaitResult() throws { try waitResult(managed: false) }

    func testManagerWaitResult() throws { try waitResult(managed: true) }

    private func waitResult(managed: Bool) throws {
        if managed { manager = try Manager() }
        try forEachMethod { method in
            let condition = try PortCondition.make(manager)
            try condition.withLock {
                XCTAssertFalse(try condition.wait(timeout: 0))
                XCTAssertFalse(try condition.wait(timeout: 0.1))
                let p = try started(NotifyOnce(condition: condition), method)
                XCTAssertTrue(try condition.wait(timeout: 60), "\(method)")
                try joinOrKill(p)
            }
        }
    }

    // MARK: events

    /// test_event.
    func testEvent() throws {
        try forEachMethod { method in
            let event = try Event()
            XCTAssertFalse(event.isSet)
            var (result, elapsed) = timed { event.wait(timeout: 0) }
            XCTAssertFalse(result)
            assertQuick(elapsed, "wait(0)")
            (result, elapsed) = timed { event.wait(timeout: 0.1) }
            XCTAssertFalse(result)
            assertWaited(elapsed, 0.1, "wait(0.1)")
            event.set()
            XCTAssertTrue(event.isSet)
            (result, elapsed) = timed { event.wait() }
            XCTAssertTrue(result)
            assertQuick(elapsed, "wait() on a set event")
            (result, elapsed) = timed { event.wait(timeout: 0.1) }
            XCTAssertTrue(result)
            assertQuick(elapsed, "wait(0.1) on a set event")
            event.clear()
            XCTAssertFalse(event.isSet)
            let p = try started(SetEventLater(event: event, seconds: 0.2), daemon: true, method)
            XCTAssertTrue(event.wait(timeout: 30), "\(method)")
            try joinOrKill(p)
        }
    }
}
