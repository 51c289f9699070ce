import Dispatch
import XCTest

@testable import Multiprocessing

#if canImport(Glibc)
import Glibc
#endif

final class SemaphoreEventConditionTests: XCTestCase {
    func testSemaphoreCountsAndTimesOut() throws {
        let semaphore = try Multiprocessing.Semaphore(value: 2)
        XCTAssertTrue(semaphore.acquire())
        XCTAssertTrue(semaphore.acquire(blocking: false))
        XCTAssertFalse(semaphore.acquire(blocking: false))
        let start = monotonicSeconds()
        XCTAssertFalse(semaphore.acquire(timeout: 0.1))
        XCTAssertGreaterThan(monotonicSeconds() - start, 0.09)
        XCTAssertEqual(semaphore.value, 0)
        try semaphore.release(3) // an unbounded semaphore may go above its start
        XCTAssertEqual(semaphore.value, 3)
        XCTAssertThrowsError(try Multiprocessing.Semaphore(value: -1))
    }

    func testSemaphoreWakesWaiterOnRelease() throws {
        let semaphore = try Multiprocessing.Semaphore(value: 0)
        DispatchQueue.global().asyncAfter(deadline: .now() + 0.05) { try? semaphore.release() }
        let start = monotonicSeconds()
        XCTAssertTrue(semaphore.acquire(timeout: 5))
        XCTAssertLessThan(monotonicSeconds() - start, 4)
    }

    func testBoundedSemaphoreRejectsExtraRelease() throws {
        let semaphore = try BoundedSemaphore(value: 1)
        XCTAssertThrowsError(try semaphore.release()) {
            XCTAssertEqual(($0 as? SynchronizationError)?.code, .releasedTooManyTimes)
        }
        XCTAssertTrue(semaphore.acquire())
        try semaphore.release()
        XCTAssertEqual(semaphore.value, 1)
    }

    /// Semaphore(2) across 3 worker processes: never more than 2 holders at once.
    func testSemaphoreLimitsConcurrencyAcrossProcesses() throws {
        try Pool.with(processes: 3, startMethod: .fork) { pool in
            _ = try pool.map(Square(), [1, 2, 3], chunkSize: 1)
            let task = UseLimitedResource(semaphore: try Multiprocessing.Semaphore(value: 2), current: try SharedValue(0), peak: try SharedValue(0))
            XCTAssertEqual(try pool.map(task, 0..<9, chunkSize: 1), Array(0..<9))
            XCTAssertEqual(task.peak.value, 2)
            XCTAssertEqual(task.current.value, 0)
            XCTAssertEqual(task.semaphore.value, 2)
        }
    }

    func testEventSetClearWait() throws {
        let event = try Event()
        XCTAssertFalse(event.isSet)
        XCTAssertFalse(event.wait(timeout: 0.05))
        event.set()
        XCTAssertTrue(event.isSet)
        XCTAssertTrue(event.wait(timeout: 0))
        event.clear()
        XCTAssertFalse(event.isSet)
        XCTAssertFalse(event.wait(timeout: 0.01))
    }

    /// Polls `condition` every 5 ms for at most `seconds`; whether it became true.
    private func eventually(within seconds: Double = 30, _ condition: () -> Bool) -> Bool {
        let end = monotonicSeconds() + seconds
        while monotonicSeconds() < end {
            if condition() { return true }
            usleep(5_000)
        }
        return condition()
    }

    /// Workers in other processes sleep on an event until the parent sets it: both are
    /// inside `wait` (the event's waiter count says so) before the parent sets it, so the
    /// `true`s come from the wake, not from a flag already up.
    func testEventWakesWorkersInOtherProcesses() throws {
        try Pool.with(processes: 2, startMethod: .spawn) { pool in
            _ = try pool.map(Square(), [1, 2], chunkSize: 1)
            let event = try Event()
            XCTAssertEqual(event.waiterCount, 0)
            let waiting = try pool.mapAsync(WaitForEvent(event: event), [30.0, 30.0], chunkSize: 1)
            XCTAssertTrue(eventually { event.waiterCount == 2 }, "waiters: \(String(describing: event.waiterCount))")
            XCTAssertFalse(waiting.isReady)
            event.set()
            XCTAssertEqual(try waiting.get(timeout: 30), [true, true])
            XCTAssertTrue(eventually { event.waiterCount == 0 })
            // Cleared again: a worker times out.
            event.clear()
            XCTAssertEqual(try pool.apply(WaitForEvent(event: event), 0.05), false)
        }
    }

    func testConditionWaitTimeoutAndMisuse() throws {
        let condition = try Condition()
        XCTAssertThrowsError(try condition.wait(timeout: 0.01)) {
            XCTAssertEqual(($0 as? SynchronizationError)?.code, .notHeld)
        }
        XCTAssertThrowsError(try condition.notify()) {
            XCTAssertEqual(($0 as? SynchronizationError)?.code, .notHeld)
        }
        try condition.withLock {
            XCTAssertFalse(try condition.wait(timeout: 0.05))
            XCTAssertTrue(condition.lock.isHeldByCurrentThread) // re-acquired
            XCTAssertFalse(try condition.wait(for: { false }, timeout: 0.05))
            XCTAssertTrue(try condition.wait(for: { true }, timeout: 0))
            try condition.notifyAll()
        }
    }

    /// Workers in other processes wait on a condition; the parent changes the state and
    /// notifies them all — once both are inside `wait` (the waiter count says so), so the
    /// notify is what wakes them.
    func testConditionNotifiesWorkersInOtherProcesses() throws {
        try Pool.with(processes: 2, startMethod: .fork) { pool in
            _ = try pool.map(Square(), [1, 2], chunkSize: 1)
            let task = WaitForFlag(condition: try Condition(), flag: try RawSharedValue(Int32(0)))
            XCTAssertEqual(task.condition.waiterCount, 0)
            let waiting = try pool.mapAsync(task, [30.0, 30.0], chunkSize: 1)
            XCTAssertTrue(
                eventually { task.condition.waiterCount == 2 },
                "waiters: \(String(describing: task.condition.waiterCount))")
            XCTAssertFalse(waiting.isReady)
            try task.condition.withLock {
                task.flag.value = 1
                try task.condition.notifyAll()
            }
            XCTAssertEqual(try waiting.get(timeout: 30), [true, true])
        }
    }

    /// `notify()` wakes one waiter, not every waiter that happens to look at the condition
    /// after it: waiters that are not asleep at that moment (here: stopped and continued,
    /// which makes a sleeping waiter look again, as one that had released the lock and was
    /// about to sleep would) stay waiting. `notifyAll()` then releases the rest.
    func testNotifyOneReleasesExactlyOneWaiter() throws {
        let condition = try Condition()
        let ready = try SharedValue<Int32>(0)
        let proceeded = try SharedValue<Int32>(0)
        let children = try (0..<3).map { _ in
            let child = Multiprocessing.Process(
                target: WaitOnceOnCondition(condition: condition, ready: ready, proceeded: proceeded), startMethod: .fork)
            try child.start()
            return child
        }
        defer { for child in children where child.isAlive { try? child.kill(); _ = try? child.join(timeout: 5) } }
        func waitUntil(_ what: String, _ condition: () -> Bool) {
            let end = monotonicSeconds() + 10
            while !condition() && monotonicSeconds() < end { usleep(5_000) }
            XCTAssertTrue(condition(), what)
        }
        waitUntil("3 waiters") { ready.value == 3 }
        // Holding the lock: every child has released it inside wait.
        try condition.withLock { try condition.notify() }
        waitUntil("one waiter proceeds") { proceeded.value >= 1 }
        for child in children {
            guard let pid = child.pid else { continue }
            kill(pid, SIGSTOP)
            kill(pid, SIGCONT)
        }
        usleep(500_000)
        XCTAssertEqual(proceeded.value, 1, "notify() released more than one waiter")
        try condition.withLock { try condition.notifyAll() }
        for child in children { XCTAssertTrue(try child.join(timeout: 10)) }
        XCTAssertEqual(children.map(\.exitCode), [0, 0, 0])
        XCTAssertEqual(proceeded.value, 3)
    }

    /// The same with threads of this process, and `notify(n: 2)`.
    func testNotifyNReleasesAtMostNThreads() throws {
        let condition = try Condition()
        let ready = try SharedValue<Int32>(0)
        let proceeded = try SharedValue<Int32>(0)
        let group = DispatchGroup()
        for _ in 0..<4 {
            group.enter()
            DispatchQueue.global().async {
                defer { group.leave() }
                try? WaitOnceOnCondition(condition: condition, ready: ready, proceeded: proceeded)(())
            }
        }
        let end = monotonicSeconds() + 10
        while ready.value < 4 && monotonicSeconds() < end { usleep(5_000) }
        XCTAssertEqual(ready.value, 4)
        try condition.withLock { try condition.notify(n: 2) }
        // Spurious returns from the kernel's wait must not let a third one through: wake
        // every sleeper on the word without a notify.
        usleep(200_000)
        if let segment = condition.segment {
            for _ in 0..<20 { Futex.wake(segment.word(0)); usleep(10_000) }
        }
        usleep(300_000)
        XCTAssertEqual(proceeded.value, 2, "notify(n: 2) released another number of waiters")
        try condition.withLock { try condition.notifyAll() }
        XCTAssertEqual(group.wait(timeout: .now() + 10), .success)
        XCTAssertEqual(proceeded.value, 4)
    }
}

extension SemaphoreEventConditionTests {
    /// A count out of range says which range: "release at least 1" was the message for
    /// `release(Int.max)` too.
    func testAReleaseCountOutOfRangeSaysTheRange() throws {
        let semaphore = try Multiprocessing.Semaphore(value: 0)
        for count in [0, -1, Int.max, Int(UInt32.max)] {
            XCTAssertThrowsError(try semaphore.release(count)) { error in
                guard let error = error as? SynchronizationError else { return XCTFail("\(error)") }
                XCTAssertEqual(error.code, .invalidArgument)
                XCTAssertTrue("\(error)".contains("from 1 to 4294967294"), "\(count): \(error)")
            }
        }
        try semaphore.release(2)
        XCTAssertTrue(semaphore.acquire(timeout: 0) && semaphore.acquire(timeout: 0))
    }
}
