// Ports of Lib/test/lock_tests.py cases (the threading tests that _TestSemaphore and
// _TestEvent of Lib/test/_test_multiprocessing.py adapt) with child processes instead of
// threads, on every start method — the contended cases the multiprocessing suite leaves out.
//
// CPython test                                  → Swift test (LockTestsProcessPortTests)
// lock_tests BaseSemaphoreTests.test_acquire_contended (never more holders than the value)
//                                                 → testSemaphoreAdmitsAtMostItsValue
// lock_tests EventTests.test_notify               → testSetWakesEveryWaitingProcess
// lock_tests BaseLockTests.test_acquire_contended → testProcessesWaitForAHeldLock (Lock and RLock)
// lock_tests BaseSemaphoreTests.test_acquire_contended → testSemaphoreAdmitsAsManyAsReleased
// lock_tests BaseSemaphoreTests.test_try_acquire_contended → testNonBlockingAcquiresFromProcesses
// lock_tests BaseSemaphoreTests.test_default_value → testProcessesWaitForAHeldLock (Semaphore())
// lock_tests EventTests.test_timeout              → testEventTimeoutsInProcesses
// lock_tests BaseLockTests.test_with /
//   BaseSemaphoreTests.test_with                  → testWithLockReleasesWhenTheBodyThrows (every lock-like
//                                                   object, local and a manager's)
// lock_tests ConditionTests.test_acquire          → testConditionOverAGivenLock
//
// Differences from Python, checked as documented: a Condition's default lock is a `Lock`
// (Python's is an RLock, acquired twice by test_acquire).
//
// Not applicable: the thread-leak and weakref cases, LockTests.test_timeout's ValueError for
// a timeout with blocking=False (multiprocessing's locks ignore it; TimeoutPortTests checks
// ours).

import Dispatch
import Multiprocessing
import XCTest

#if canImport(Glibc)
import Glibc
#endif

/// Takes the semaphore, counts itself among the holders (and the most seen at once) under the
/// lock, holds it a while, and leaves.
struct Port3HoldSemaphore: ParallelFunction {
    var semaphore: Multiprocessing.Semaphore
    var lock: Lock
    var holders: RawSharedValue<Int32>
    var most: RawSharedValue<Int32>
    func callAsFunction(_: Void) throws {
        try require(semaphore.acquire(timeout: 30), "acquire")
        try lock.withLock {
            holders.value += 1
            most.value = max(most.value, holders.value)
        }
        usleep(50_000)
        try lock.withLock { holders.value -= 1 }
        try semaphore.release()
    }
}

/// Says it is about to wait, then waits on the event (exit 1 if the wait fails).
struct Port3WaitForEvent: ParallelFunction {
    var event: Event
    var waiting: Multiprocessing.Semaphore
    func callAsFunction(_: Void) throws {
        try waiting.release()
        try require(event.wait(timeout: 30), "the event was not set within 30 s")
        try require(event.isSet, "woken but not set")
    }
}

/// Which lock-like object `Port3AcquireRelease` takes.
enum Port3LockKind: String, Codable, Sendable { case lock, rlock, semaphore }

/// lock_tests' contended `f`: says it started, acquires, releases.
struct Port3AcquireRelease: ParallelFunction {
    var kind: Port3LockKind
    var lock: Lock
    var rlock: RLock
    var semaphore: Multiprocessing.Semaphore
    var started: Multiprocessing.Semaphore
    func callAsFunction(_: Void) throws {
        try started.release()
        switch kind {
        case .lock:
            try require(try lock.acquire(timeout: 30), "lock")
            try lock.release()
        case .rlock:
            try require(try rlock.acquire(timeout: 30), "rlock")
            try rlock.release()
        case .semaphore:
            try require(semaphore.acquire(timeout: 30), "semaphore")
            try semaphore.release()
        }
    }
}

/// lock_tests' test_try_acquire_contended `f`: two non-blocking acquires, reported.
struct Port3TryAcquireTwice: ParallelFunction {
    var semaphore: Multiprocessing.Semaphore
    var results: Queue<Bool>
    func callAsFunction(_: Void) throws {
        try results.put(semaphore.acquire(blocking: false))
        try results.put(semaphore.acquire(blocking: false))
    }
}

/// lock_tests' test_acquire_contended `f` for semaphores: acquires twice, reporting the
/// phase it saw after each.
struct Port3AcquireTwiceReportingPhase: ParallelFunction {
    var semaphore: Multiprocessing.Semaphore
    var phase: SharedValue<Int32>
    var results: Queue<Int32>
    func callAsFunction(_: Void) throws {
        for _ in 0..<2 {
            try require(semaphore.acquire(timeout: 30), "acquire")
            try results.put(phase.value)
        }
    }
}

/// lock_tests' EventTests.test_timeout `f`: wait(0), then wait(0.2) timed; reports
/// [first, second, seconds].
struct Port3EventTimeouts: ParallelFunction {
    var event: Event
    var results: Queue<[Double]>
    func callAsFunction(_: Void) throws {
        let first = event.wait(timeout: 0)
        let start = monotonicNow()
        let second = event.wait(timeout: 0.2)
        try results.put([first ? 1 : 0, second ? 1 : 0, monotonicNow() - start])
    }
}

final class LockTestsProcessPortTests: PortTestCase {
    /// SemaphoreTests.test_acquire_contended: eight processes share a semaphore of 3; at no
    /// time do more than three hold it, all get through, and it ends at 3 again.
    func testSemaphoreAdmitsAtMostItsValue() throws {
        try forEachMethod { method in
            let semaphore = try Multiprocessing.Semaphore(value: 3)
            let lock = try Lock()
            let holders = try RawSharedValue<Int32>(0), most = try RawSharedValue<Int32>(0)
            let count = method == .spawn ? 5 : 8
            let children = try (0..<count).map { _ in
                try started(Port3HoldSemaphore(semaphore: semaphore, lock: lock, holders: holders, most: most), method)
            }
            for p in children { try joinOrKill(p) }
            XCTAssertEqual(Set(children.map(\.exitCode)), [0], "\(method)")
            XCTAssertLessThanOrEqual(most.value, 3, "\(method): more holders than the semaphore's value")
            XCTAssertGreaterThanOrEqual(most.value, 1)
            XCTAssertEqual(holders.value, 0)
            XCTAssertEqual(semaphore.value, 3, "\(method)")
        }
    }

    /// EventTests.test_notify: five processes wait on one event; one `set` wakes them all.
    func testSetWakesEveryWaitingProcess() throws {
        try forEachMethod { method in
            let event = try Event()
            let waiting = try Multiprocessing.Semaphore(value: 0)
            let count = method == .spawn ? 3 : 5
            let children = try (0..<count).map { _ in try started(Port3WaitForEvent(event: event, waiting: waiting), method) }
            for _ in children { XCTAssertTrue(waiting.acquire(timeout: 30), "\(method): a child did not start") }
            usleep(50_000)
            XCTAssertTrue(children.allSatisfy(\.isAlive), "\(method): a child did not wait")
            event.set()
            for p in children { try joinOrKill(p, 10, "waiter") }
            XCTAssertEqual(Set(children.map(\.exitCode)), [0], "\(method)")
        }
    }

    /// BaseLockTests.test_acquire_contended (Lock, RLock) and BaseSemaphoreTests
    /// test_default_value (Semaphore() starts at 1): five processes wait while this one
    /// holds it, and all get it once it is released.
    func testProcessesWaitForAHeldLock() throws {
        try forEachMethod { method in
            for kind in [Port3LockKind.lock, .rlock, .semaphore] {
                let lock = try Lock(), rlock = try RLock(), semaphore = try Multiprocessing.Semaphore()
                let ready = try Multiprocessing.Semaphore(value: 0)
                switch kind {
                case .lock: XCTAssertTrue(try lock.acquire())
                case .rlock: XCTAssertTrue(try rlock.acquire())
                case .semaphore: XCTAssertTrue(semaphore.acquire())
                }
                let count = method == .spawn ? 3 : 5
                let children = try (0..<count).map { _ in
                    try started(
                        Port3AcquireRelease(kind: kind, lock: lock, rlock: rlock, semaphore: semaphore, started: ready), method)
                }
                for _ in children { XCTAssertTrue(ready.acquire(timeout: 30), "\(method) \(kind)") }
                usleep(100_000)
                XCTAssertTrue(children.allSatisfy(\.isAlive), "\(method) \(kind): a child got a held lock")
                switch kind {
                case .lock: try lock.release()
                case .rlock: try rlock.release()
                case .semaphore: try semaphore.release()
                }
                for p in children { try joinOrKill(p, 20, "\(kind) waiter") }
                XCTAssertEqual(Set(children.map(\.exitCode)), [0], "\(method) \(kind)")
            }
        }
    }

    /// BaseSemaphoreTests.test_acquire_contended: a semaphore of 7, one unit taken here; ten
    /// processes acquire twice each: six get through at once (phase 0), seven more after
    /// seven releases (phase 1), six more after six (phase 2); then it is empty, and one more
    /// release lets the last through.
    func testSemaphoreAdmitsAsManyAsReleased() throws {
        try forEachMethod { method in
            let semaphore = try Multiprocessing.Semaphore(value: 7)
            XCTAssertTrue(semaphore.acquire())
            let phase = try SharedValue<Int32>(0)
            let results = try Queue<Int32>()
            let children = try (0..<10).map { _ in
                try started(Port3AcquireTwiceReportingPhase(semaphore: semaphore, phase: phase, results: results), method)
            }
            var seen: [Int32] = []
            func collect(_ n: Int) throws {
                for _ in 0..<n { seen.append(try results.get(timeout: 30)) }
            }
            try collect(6)
            usleep(50_000)
            XCTAssertTrue(results.isEmpty, "\(method): more than six got through")
            XCTAssertEqual(seen, Array(repeating: 0, count: 6), "\(method)")
            phase.value = 1
            for _ in 0..<7 { try semaphore.release() }
            try collect(7)
            usleep(50_000)
            XCTAssertTrue(results.isEmpty, "\(method): more than seven got through")
            XCTAssertEqual(seen.sorted(), Array(repeating: 0, count: 6) + Array(repeating: 1, count: 7), "\(method)")
            phase.value = 2
            for _ in 0..<6 { try semaphore.release() }
            try collect(6)
            XCTAssertEqual(
                seen.sorted(), Array(repeating: 0, count: 6) + Array(repeating: 1, count: 7) + Array(repeating: 2, count: 6),
                "\(method)")
            XCTAssertFalse(semaphore.acquire(blocking: false), "\(method): the semaphore should be empty")
            try semaphore.release()
            try collect(1)
            for p in children { try joinOrKill(p) }
            XCTAssertEqual(Set(children.map(\.exitCode)), [0], "\(method)")
        }
    }

    /// BaseSemaphoreTests.test_try_acquire_contended: a semaphore of 4 with one unit taken;
    /// five processes try twice each without blocking: exactly three succeed.
    func testNonBlockingAcquiresFromProcesses() throws {
        try forEachMethod { method in
            let semaphore = try Multiprocessing.Semaphore(value: 4)
            XCTAssertTrue(semaphore.acquire())
            let results = try Queue<Bool>()
            let children = try (0..<5).map { _ in try started(Port3TryAcquireTwice(semaphore: semaphore, results: results), method) }
            for p in children { try joinOrKill(p) }
            var got: [Bool] = []
            for _ in 0..<10 { got.append(try results.get(timeout: 30)) }
            XCTAssertEqual(got.filter { $0 }.count, 3, "\(method): \(got)")
            XCTAssertEqual(semaphore.value, 0)
        }
    }

    /// EventTests.test_timeout: processes waiting on an unset event get false from wait(0) at
    /// once and from wait(0.2) after about 0.2 s; once it is set, both are true.
    func testEventTimeoutsInProcesses() throws {
        try forEachMethod { method in
            let event = try Event()
            let results = try Queue<[Double]>()
            for set in [false, true] {
                if set { event.set() }
                let children = try (0..<3).map { _ in try started(Port3EventTimeouts(event: event, results: results), method) }
                for p in children { try joinOrKill(p) }
                for _ in children {
                    let r = try results.get(timeout: 30)
                    XCTAssertEqual(r[0], set ? 1 : 0, "\(method) set \(set): wait(0)")
                    XCTAssertEqual(r[1], set ? 1 : 0, "\(method) set \(set): wait(0.2)")
                    if set {
                        XCTAssertLessThan(r[2], 1, "\(method): wait(0.2) of a set event")
                    } else {
                        assertWaited(r[2], 0.2, "\(method): wait(0.2) in a child")
                    }
                }
            }
        }
    }

    /// BaseLockTests.test_with and BaseSemaphoreTests.test_with: a body that throws leaves
    /// every lock-like object free again (local ones and a manager's); a semaphore of 2 held
    /// once by `withLock` still has a unit, and none inside a nested `withLock`.
    func testWithLockReleasesWhenTheBodyThrows() throws {
        struct Boom: Error {}
        let lock = try Lock(), rlock = try RLock(), condition = try Condition()
        let semaphore = try Multiprocessing.Semaphore(value: 2), bounded = try BoundedSemaphore(value: 2)
        XCTAssertThrowsError(try lock.withLock { throw Boom() }) { XCTAssertTrue($0 is Boom) }
        XCTAssertFalse(lock.isLocked)
        XCTAssertThrowsError(try rlock.withLock { try rlock.withLock { throw Boom() } }) { XCTAssertTrue($0 is Boom) }
        XCTAssertFalse(rlock.isLocked)
        XCTAssertThrowsError(try condition.withLock { throw Boom() }) { XCTAssertTrue($0 is Boom) }
        XCTAssertFalse(condition.lock.isLocked)
        try semaphore.withLock {
            XCTAssertTrue(semaphore.acquire(blocking: false))
            try semaphore.release()
            try semaphore.withLock { XCTAssertFalse(semaphore.acquire(blocking: false)) }
        }
        XCTAssertEqual(semaphore.value, 2)
        for s in [semaphore] {
            XCTAssertThrowsError(try s.withLock { try s.withLock { throw Boom() } }) { XCTAssertTrue($0 is Boom) }
            XCTAssertEqual(s.value, 2)
        }
        XCTAssertThrowsError(try bounded.withLock { try bounded.withLock { throw Boom() } }) { XCTAssertTrue($0 is Boom) }
        XCTAssertEqual(bounded.value, 2)
        let manager = try Manager()
        defer { manager.shutdown() }
        let mLock = try manager.lock(), mRLock = try manager.rlock(), mSemaphore = try manager.semaphore(value: 2)
        let mCondition = try manager.condition()
        XCTAssertThrowsError(try mLock.withLock { throw Boom() }) { XCTAssertTrue($0 is Boom) }
        XCTAssertFalse(try mLock.isLocked())
        XCTAssertThrowsError(try mRLock.withLock { try mRLock.withLock { throw Boom() } }) { XCTAssertTrue($0 is Boom) }
        XCTAssertFalse(try mRLock.isLocked())
        XCTAssertThrowsError(try mSemaphore.withLock { try mSemaphore.withLock { throw Boom() } }) { XCTAssertTrue($0 is Boom) }
        XCTAssertEqual(try mSemaphore.value(), 2)
        XCTAssertThrowsError(try mCondition.withLock { throw Boom() }) { XCTAssertTrue($0 is Boom) }
        XCTAssertTrue(try mCondition.acquire(blocking: false), "the manager condition's lock was left held")
        try mCondition.release()
    }

    /// ConditionTests.test_acquire: over a given Lock, holding the condition holds that lock
    /// and the reverse. The default condition's lock is a `Lock`, not Python's `RLock`
    /// (documented): a second acquire by its holder does not succeed.
    func testConditionOverAGivenLock() throws {
        let byDefault = try Condition()
        XCTAssertTrue(try byDefault.acquire())
        XCTAssertFalse(try byDefault.acquire(blocking: false), "the default lock is not reentrant (documented)")
        try byDefault.release()
        XCTAssertFalse(byDefault.lock.isLocked)
        let lock = try Lock()
        let condition = try Condition(lock: lock)
        XCTAssertTrue(try condition.acquire())
        XCTAssertTrue(lock.isLocked)
        XCTAssertFalse(try lock.acquire(blocking: false))
        try condition.release()
        XCTAssertFalse(lock.isLocked)
        XCTAssertTrue(try lock.acquire(blocking: false))
        XCTAssertFalse(try condition.acquire(blocking: false))
        try lock.release()
        try condition.withLock { XCTAssertFalse(try lock.acquire(blocking: false)) }
        XCTAssertFalse(lock.isLocked)
        // Held by another thread: the condition cannot be had here either.
        let holder = TestThread {
            try require(try lock.acquire(), "acquire in the thread")
            usleep(300_000)
            try lock.release()
        }
        usleep(100_000)
        XCTAssertFalse(try condition.acquire(blocking: false))
        XCTAssertTrue(try condition.acquire(timeout: 10))
        try condition.release()
        XCTAssertTrue(try holder.wait(10))
    }
}
