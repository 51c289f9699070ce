// Ports of CPython's cases that run with its 'manager' type (Lib/test/_test_multiprocessing.py:
// every BaseTestCase class whose ALLOWED_TYPES include 'manager' runs once more as
// `WithManager…`, its Queue, JoinableQueue, Lock, RLock, Semaphore, BoundedSemaphore and Event
// being a Manager()'s), and of the TestSyncManagerTypes cases not ported yet. The children run
// on every start method; the proxies are a `Manager`'s.
//
// CPython test (manager type)                 → Swift test (ManagerTypePortTests)
// _TestQueue.test_put                          → testManagerQueuePutFillsAndAChildDrainsIt
// _TestQueue.test_get                          → testManagerQueueGetVariantsAndTimeouts
// _TestQueue.test_fork                         → testManagerQueueItemsPutBeforeAndInAChildKeepTheirOrder
// _TestQueue.test_qsize                        → testManagerQueueCountFollowsPutsAndGets
// _TestQueue.test_task_done                    → testManagerJoinableQueueTaskDoneFromFourWorkers
// _TestQueue.test_timeout                      → testManagerQueueGetVariantsAndTimeouts (get(timeout: 0.2))
// _TestLock.test_lock / test_lock_context      → testManagerLockLikeALock
// _TestLock.test_rlock / test_rlock_context    → testManagerRLockLikeAnRLock
// _TestSemaphore.test_semaphore                → testManagerSemaphoresCount
// _TestSemaphore.test_bounded_semaphore        → testManagerSemaphoresCount
// _TestEvent.test_event                        → testManagerEventLikeAnEvent
// TestSyncManagerTypes.test_condition          → testConditionProxyInAChild
// TestSyncManagerTypes.test_barrier            → testBarrierProxyInAChild
// _TestRemoteManager.test_remote (its values,
//   put by a child, through a manager queue;
//   a value that cannot be encoded is refused) → testValuesOfEveryKindThroughAManagerQueue
// _TestManagerRestart.test_rapid_restart       → testManagersStartedOneAfterAnother
// _TestMyManager.test_mymanager (the server
//   process has ended after shutdown)          → testShutdownEndsTheServerProcess
// _TestSharedMemory.test_shared_memory_SharedMemoryServer_ignores_sigint
//   (its last half: the manager leaves this
//   process's SIGINT handling alone)           → testAManagerLeavesThisProcesssSIGINTHandlingAlone
//   (its first half, the server ignoring SIGINT: Port3DifferenceTests.testManagerServerIgnoresSIGINT)
//
// Already covered: _TestCondition and _TestBarrier with the manager type
// (LockSemaphoreConditionEventPortTests, BarrierPortTests), TestSyncManagerTypes' other
// cases (ManagerPortTests). Not applicable: _TestQueue.test_no_import_lock_contention, the
// feeder-thread cases and the shutdown cases (as for the plain Queue: QueuePortTests);
// _TestSemaphore.test_timeout and _TestLock's two-process cases run for 'processes' only.
//
// Differences from Python, checked as documented: a manager Lock's or RLock's misuse
// (Python's RuntimeError from the server) is `ManagerError(.invalidRequest)`; queue.Full and
// queue.Empty are `Full` and `Empty`.

import Dispatch
import Multiprocessing
import XCTest

#if canImport(Glibc)
import Glibc
#endif

/// CPython's `_test_put` with manager objects: waits for the go, takes six items, says so.
struct Port3ManagerTakeSix: ParallelFunction {
    var queue: QueueProxy<Int>
    var childCanStart: EventProxy
    var parentCanContinue: EventProxy
    func callAsFunction(_: Void) throws {
        try require(try childCanStart.wait(timeout: 30), "no go")
        for _ in 0..<6 { _ = try queue.get(timeout: 30) }
        try parentCanContinue.set()
    }
}

/// CPython's `_test_get` with manager objects: waits for the go, puts 2…5, says so.
struct Port3ManagerPutTwoToFive: ParallelFunction {
    var queue: QueueProxy<Int>
    var childCanStart: EventProxy
    var parentCanContinue: EventProxy
    func callAsFunction(_: Void) throws {
        try require(try childCanStart.wait(timeout: 30), "no go")
        for i in 2...5 { try queue.put(i) }
        try parentCanContinue.set()
    }
}

/// CPython's `_test_fork` with a manager queue: puts 10…19.
struct Port3ManagerPutTenToNineteen: ParallelFunction {
    var queue: QueueProxy<Int>
    func callAsFunction(_: Void) throws {
        for i in 10..<20 { try queue.put(i) }
    }
}

/// CPython's `_test_task_done` with a manager joinable queue: gets until the sentinel (-1),
/// marking each item done after a short pause.
struct Port3ManagerWorkUntilSentinel: ParallelFunction {
    var queue: QueueProxy<Int>
    func callAsFunction(_: Void) throws {
        while try queue.get(timeout: 30) >= 0 {
            usleep(10_000)
            try queue.taskDone()
        }
    }
}

/// CPython's _TestEvent `_test_event` with a manager event: sets it after a while.
struct Port3ManagerSetEventLater: ParallelFunction {
    var event: EventProxy
    var seconds: Double
    func callAsFunction(_: Void) throws {
        usleep(UInt32(seconds * 1e6))
        try event.set()
    }
}

/// TestSyncManagerTypes `_test_condition`: acquires and releases the manager condition (and,
/// beyond CPython, notifies under it, which needs the lock).
struct Port3ConditionChild: ParallelFunction {
    var condition: ConditionProxy
    func callAsFunction(_: Void) throws {
        try require(try condition.acquire(timeout: 10), "acquire")
        _ = try condition.notify()
        try condition.release()
    }
}

/// TestSyncManagerTypes `_test_barrier`: sees 5 parties and resets the barrier.
struct Port3BarrierChild: ParallelFunction {
    var barrier: BarrierProxy
    func callAsFunction(_: Void) throws {
        try require(barrier.parties == 5, "parties \(barrier.parties)")
        try barrier.reset()
        try require(!(try barrier.isBroken()), "broken after reset")
        try require(try barrier.nWaiting() == 0, "waiting after reset")
    }
}

/// CPython's _TestRemoteManager `values`: a string, None, True, 2.25, two non-ASCII
/// strings and bytes.
struct Port3RemoteValues: Codable, Sendable, Equatable {
    var hello = "hello world"
    var none: Int? = nil
    var flag = true
    var number = 2.25
    var latin = "hall\u{e5} v\u{e4}rlden"
    var cyrillic = "\u{43f}\u{440}\u{438}\u{432}\u{456}\u{442} \u{441}\u{432}\u{456}\u{442}"
    var bytes: [UInt8] = Array("hall".utf8) + [0xe5, 0x20, 0x76, 0xe4] + Array("rlden".utf8)
}

/// CPython's `_putter`: puts the values into the manager's queue.
struct Port3PutRemoteValues: ParallelFunction {
    var queue: QueueProxy<Port3RemoteValues>
    func callAsFunction(_: Void) throws {
        try queue.put(Port3RemoteValues())
    }
}

/// Puts a string into a manager queue (CPython's _TestManagerRestart `_putter`).
struct Port3PutHello: ParallelFunction {
    var queue: QueueProxy<String>
    func callAsFunction(_: Void) throws {
        try queue.put("hello world")
    }
}

final class ManagerTypePortTests: ManagerPortTestCase {

    /// _TestQueue.test_put: a manager queue of 6 fills; every put that may not wait, or waits
    /// in vain, fails with Full (at once, or after its timeout); once a child took the six
    /// it is empty again.
    func testManagerQueuePutFillsAndAChildDrainsIt() throws {
        try forEachMethod { method in
            let queue = try manager.queue(of: Int.self, maxSize: 6)
            let childCanStart = try manager.event(), parentCanContinue = try manager.event()
            let p = try started(
                Port3ManagerTakeSix(queue: queue, childCanStart: childCanStart, parentCanContinue: parentCanContinue),
                daemon: true, method)
            XCTAssertTrue(try queue.isEmpty())
            try queue.put(1)
            try queue.put(2, timeout: nil)
            try queue.put(3, timeout: 5)
            try queue.putNowait(4)
            try queue.put(5, timeout: 0)
            try queue.putNowait(6)
            XCTAssertFalse(try queue.isEmpty())
            XCTAssertEqual(try queue.count(), 6)
            for (timeout, expected) in [(0.0, 0.0), (-1, 0), (0.1, 0.1), (0.2, 0.2)] {
                let (result, elapsed) = timed { Result { try queue.put(7, timeout: timeout) } }
                XCTAssertThrowsError(try result.get(), "\(method) put(timeout: \(timeout))") { XCTAssertTrue($0 is Full, "\($0)") }
                if expected == 0 { assertQuick(elapsed, "put(timeout: \(timeout))") } else { assertWaited(elapsed, expected, "put") }
            }
            let (nowait, elapsed) = timed { Result { try queue.putNowait(7) } }
            XCTAssertThrowsError(try nowait.get()) { XCTAssertTrue($0 is Full, "\($0)") }
            assertQuick(elapsed, "putNowait")
            XCTAssertEqual(try queue.count(), 6, "\(method): a refused put changed the count")
            try childCanStart.set()
            XCTAssertTrue(try parentCanContinue.wait(timeout: 30), "\(method)")
            XCTAssertTrue(try queue.isEmpty(), "\(method)")
            try joinOrKill(p)
            XCTAssertEqual(p.exitCode, 0, "\(method)")
        }
    }

    /// _TestQueue.test_get and test_timeout: what a child put is got with every variant; then
    /// every variant on the empty manager queue fails with Empty, at once or after its
    /// timeout.
    func testManagerQueueGetVariantsAndTimeouts() throws {
        try forEachMethod { method in
            let queue = try manager.queue(of: Int.self)
            let childCanStart = try manager.event(), parentCanContinue = try manager.event()
            let p = try started(
                Port3ManagerPutTwoToFive(queue: queue, childCanStart: childCanStart, parentCanContinue: parentCanContinue),
                daemon: true, method)
            XCTAssertTrue(try queue.isEmpty())
            try childCanStart.set()
            XCTAssertTrue(try parentCanContinue.wait(timeout: 30), "\(method)")
            XCTAssertFalse(try queue.isEmpty())
            XCTAssertEqual(try queue.get(timeout: nil), 2, "\(method)")
            XCTAssertEqual(try queue.get(), 3)
            XCTAssertEqual(try queue.get(timeout: 1), 4)
            XCTAssertEqual(try queue.getNowait(), 5)
            XCTAssertTrue(try queue.isEmpty())
            for (timeout, expected) in [(0.0, 0.0), (-1, 0), (0.1, 0.1), (0.2, 0.2)] {
                let (result, elapsed) = timed { Result { try queue.get(timeout: timeout) } }
                XCTAssertThrowsError(try result.get(), "\(method) get(timeout: \(timeout))") { XCTAssertTrue($0 is Empty, "\($0)") }
                if expected == 0 { assertQuick(elapsed, "get(timeout: \(timeout))") } else { assertWaited(elapsed, expected, "get") }
            }
            let (nowait, elapsed) = timed { Result { try queue.getNowait() } }
            XCTAssertThrowsError(try nowait.get()) { XCTAssertTrue($0 is Empty, "\($0)") }
            assertQuick(elapsed, "getNowait")
            try joinOrKill(p)
            XCTAssertEqual(p.exitCode, 0, "\(method)")
        }
    }

    /// _TestQueue.test_fork: items put before the child started come out before the
    /// child's, in order, and nothing else.
    func testManagerQueueItemsPutBeforeAndInAChildKeepTheirOrder() throws {
        try forEachMethod { method in
            let queue = try manager.queue(of: Int.self)
            for i in 0..<10 { try queue.put(i) }
            let p = try started(Port3ManagerPutTenToNineteen(queue: queue), daemon: true, method)
            XCTAssertEqual(try (0..<20).map { _ in try queue.get(timeout: 30) }, Array(0..<20), "\(method)")
            XCTAssertThrowsError(try queue.getNowait()) { XCTAssertTrue($0 is Empty, "\($0)") }
            try joinOrKill(p)
            XCTAssertEqual(p.exitCode, 0, "\(method)")
        }
    }

    /// _TestQueue.test_qsize with a manager queue.
    func testManagerQueueCountFollowsPutsAndGets() throws {
        for queue in [try manager.queue(of: Int.self), try manager.joinableQueue(of: Int.self)] {
            XCTAssertEqual(try queue.count(), 0)
            try queue.put(1)
            XCTAssertEqual(try queue.count(), 1)
            try queue.put(5)
            XCTAssertEqual(try queue.count(), 2)
            XCTAssertEqual(try queue.get(), 1)
            XCTAssertEqual(try queue.count(), 1)
            XCTAssertEqual(try queue.get(), 5)
            XCTAssertEqual(try queue.count(), 0)
        }
    }

    /// _TestQueue.test_task_done with a manager JoinableQueue: four worker processes mark
    /// ten items done; join returns once all are; a sentinel each then ends them.
    func testManagerJoinableQueueTaskDoneFromFourWorkers() throws {
        try forEachMethod { method in
            let queue = try manager.joinableQueue(of: Int.self)
            let workers = try (0..<4).map { _ in try started(Port3ManagerWorkUntilSentinel(queue: queue), daemon: true, method) }
            for i in 0..<10 { try queue.put(i) }
            XCTAssertTrue(try queue.join(timeout: 30), "\(method)")
            for _ in workers { try queue.put(-1) }
            for p in workers { try joinOrKill(p) }
            XCTAssertEqual(workers.map(\.exitCode), [0, 0, 0, 0], "\(method)")
            XCTAssertTrue(try queue.isEmpty())
        }
    }

    /// _TestLock.test_lock and test_lock_context with a manager Lock: acquire, held, a
    /// non-blocking acquire fails (also by the holder), release, free; a second release is
    /// refused; `withLock` holds it for its body.
    func testManagerLockLikeALock() throws {
        let lock = try manager.lock()
        XCTAssertTrue(try lock.acquire())
        XCTAssertTrue(try lock.isLocked())
        XCTAssertFalse(try lock.acquire(blocking: false))
        let (timedOut, elapsed) = try timed { try lock.acquire(timeout: 0.1) }
        XCTAssertFalse(timedOut)
        assertWaited(elapsed, 0.1, "acquire(timeout: 0.1) of a held manager lock")
        try lock.release()
        XCTAssertFalse(try lock.isLocked())
        XCTAssertThrowsError(try lock.release()) { XCTAssertEqual(($0 as? ManagerError)?.code, .invalidRequest, "\($0)") }
        let inside = try lock.withLock { try lock.isLocked() }
        XCTAssertTrue(inside)
        XCTAssertFalse(try lock.isLocked())
    }

    /// _TestLock.test_rlock and test_rlock_context with a manager RLock: three acquires by
    /// this thread, held until the third release; a further release is refused.
    func testManagerRLockLikeAnRLock() throws {
        let lock = try manager.rlock()
        XCTAssertTrue(try lock.acquire())
        XCTAssertTrue(try lock.isLocked())
        XCTAssertTrue(try lock.acquire())
        XCTAssertTrue(try lock.acquire())
        XCTAssertEqual(try lock.heldByCurrentThread(), 3)
        try lock.release()
        XCTAssertTrue(try lock.isLocked())
        try lock.release()
        try lock.release()
        XCTAssertFalse(try lock.isLocked())
        XCTAssertThrowsError(try lock.release()) { XCTAssertEqual(($0 as? ManagerError)?.code, .invalidRequest, "\($0)") }
        let inside = try lock.withLock { try lock.heldByCurrentThread() }
        XCTAssertEqual(inside, 1)
        XCTAssertFalse(try lock.isLocked())
    }

    /// _TestSemaphore.test_semaphore and test_bounded_semaphore with manager semaphores:
    /// the value follows acquire and release (2, 1, 0, a refused acquire, 1, 2); a plain
    /// semaphore may go above its start (3, 4); a bounded one may not.
    func testManagerSemaphoresCount() throws {
        for bounded in [false, true] {
            let semaphore = bounded ? try manager.boundedSemaphore(value: 2) : try manager.semaphore(value: 2)
            XCTAssertEqual(try semaphore.value(), 2)
            XCTAssertTrue(try semaphore.acquire())
            XCTAssertEqual(try semaphore.value(), 1)
            XCTAssertTrue(try semaphore.acquire())
            XCTAssertEqual(try semaphore.value(), 0)
            XCTAssertFalse(try semaphore.acquire(blocking: false))
            XCTAssertEqual(try semaphore.value(), 0)
            try semaphore.release()
            XCTAssertEqual(try semaphore.value(), 1)
            try semaphore.release()
            XCTAssertEqual(try semaphore.value(), 2)
            if bounded {
                XCTAssertThrowsError(try semaphore.release()) { XCTAssertEqual(($0 as? ManagerError)?.code, .invalidRequest, "\($0)") }
                XCTAssertEqual(try semaphore.value(), 2)
            } else {
                try semaphore.release()
                XCTAssertEqual(try semaphore.value(), 3)
                try semaphore.release()
                XCTAssertEqual(try semaphore.value(), 4)
            }
        }
    }

    /// _TestEvent.test_event with a manager Event: wait(0) and wait(0.1) fail (in time)
    /// while unset; once set every wait returns true at once; after clear, a child's set
    /// ends a wait without timeout.
    func testManagerEventLikeAnEvent() throws {
        try forEachMethod { method in
            let event = try manager.event()
            XCTAssertFalse(try event.isSet())
            var (result, elapsed) = try timed { try event.wait(timeout: 0) }
            XCTAssertFalse(result)
            assertQuick(elapsed, "wait(0)")
            (result, elapsed) = try timed { try event.wait(timeout: 0.1) }
            XCTAssertFalse(result)
            assertWaited(elapsed, 0.1, "wait(0.1)")
            try event.set()
            XCTAssertTrue(try event.isSet())
            (result, elapsed) = try timed { try event.wait() }
            XCTAssertTrue(result)
            assertQuick(elapsed, "wait() of a set event")
            (result, elapsed) = try timed { try event.wait(timeout: 0.1) }
            XCTAssertTrue(result)
            assertQuick(elapsed, "wait(0.1) of a set event")
            try event.clear()
            XCTAssertFalse(try event.isSet())
            let p = try started(Port3ManagerSetEventLater(event: event, seconds: 0.1), daemon: true, method)
            let waiter = TestThread { try require(try event.wait(), "wait() returned false") }
            XCTAssertTrue(try waiter.wait(30), "\(method): wait() did not see the child's set")
            try joinOrKill(p)
            XCTAssertEqual(p.exitCode, 0, "\(method)")
        }
    }

    /// TestSyncManagerTypes.test_condition: a child acquires and releases a manager
    /// Condition (and notifies under it); the condition is then free here.
    func testConditionProxyInAChild() throws {
        try forEachMethod { method in
            let condition = try manager.condition()
            let p = try started(Port3ConditionChild(condition: condition), daemon: true, method)
            try joinOrKill(p)
            XCTAssertEqual(p.exitCode, 0, "\(method)")
            XCTAssertTrue(try condition.acquire(timeout: 5), "\(method): the child left the condition's lock held")
            XCTAssertEqual(try condition.waiterCount(), 0)
            try condition.release()
        }
    }

    /// TestSyncManagerTypes.test_barrier: a child sees a manager Barrier(5) with its five
    /// parties and resets it; it is usable here afterwards (one pass of five threads).
    func testBarrierProxyInAChild() throws {
        try forEachMethod { method in
            let barrier = try manager.barrier(parties: 5)
            let p = try started(Port3BarrierChild(barrier: barrier), daemon: true, method)
            try joinOrKill(p)
            XCTAssertEqual(p.exitCode, 0, "\(method)")
            XCTAssertFalse(try barrier.isBroken())
            let indexes = NSLockish()
            nonisolated(unsafe) var seen: [Int] = []
            let parties = (0..<5).map { _ in
                TestThread {
                    let index = try barrier.wait(timeout: 20)
                    indexes.withLock { seen.append(index) }
                }
            }
            for t in parties { XCTAssertTrue(try t.wait(30), "\(method): a party did not pass") }
            indexes.withLock { XCTAssertEqual(seen.sorted(), [0, 1, 2, 3, 4], "\(method)") }
        }
    }

    /// _TestMyManager.test_mymanager: after shutdown the manager's server process has ended
    /// (Python: exit code 0 or -SIGTERM), and its proxies say the manager is gone.
    func testShutdownEndsTheServerProcess() throws {
        let other = try Manager()
        let pid = other.serverPID
        let list = try other.list(of: Int.self)
        try list.append(1)
        XCTAssertTrue(isRunning(pid))
        other.shutdown()
        XCTAssertTrue(eventually(within: 10) { !isRunning(pid) }, "the server process \(pid) outlived shutdown()")
        XCTAssertThrowsError(try list.append(2)) { XCTAssertEqual(($0 as? ManagerError)?.code, .unavailable, "\($0)") }
        other.shutdown()
    }

    /// test_shared_memory_SharedMemoryServer_ignores_sigint, last half: starting a manager
    /// (and using it) does not change how this process handles SIGINT.
    func testAManagerLeavesThisProcesssSIGINTHandlingAlone() throws {
        func disposition() -> (UInt, Int32) {
            var action = sigaction()
            sigaction(SIGINT, nil, &action)
            return (unsafeBitCast(action.__sigaction_handler.sa_handler, to: UInt.self), action.sa_flags)
        }
        let before = disposition()
        let other = try Manager()
        let value = try other.value(5)
        XCTAssertEqual(try value.get(), 5)
        let during = disposition()
        other.shutdown()
        XCTAssertTrue(during == before, "a Manager changed this process's SIGINT handler: \(before) → \(during)")
        XCTAssertTrue(disposition() == before, "shutdown() left this process's SIGINT handler changed")
    }

    /// _TestRemoteManager.test_remote: values of every kind put by a child come out of a
    /// manager queue equal; a value that cannot be encoded is refused at the put (Python:
    /// the put raises) and leaves the queue as it was.
    func testValuesOfEveryKindThroughAManagerQueue() throws {
        try forEachMethod { method in
            let queue = try manager.queue(of: Port3RemoteValues.self)
            let p = try started(Port3PutRemoteValues(queue: queue), daemon: true, method)
            XCTAssertEqual(try queue.get(timeout: 30), Port3RemoteValues(), "\(method)")
            try joinOrKill(p)
            XCTAssertEqual(p.exitCode, 0, "\(method)")
        }
        let broken = try manager.queue(of: FlagOrBroken.self)
        XCTAssertThrowsError(try broken.put(.broken))
        XCTAssertEqual(try broken.count(), 0)
        try broken.put(.flag(true))
        XCTAssertEqual(try broken.get(timeout: 5), .flag(true))
    }

    /// _TestManagerRestart.test_rapid_restart: managers started one right after another's
    /// shutdown each serve a child's put.
    func testManagersStartedOneAfterAnother() throws {
        for round in 0..<4 {
            let method = PortTestCase.methods[round % PortTestCase.methods.count]
            let other = try Manager()
            let queue = try other.queue(of: String.self)
            let p = try started(Port3PutHello(queue: queue), method)
            XCTAssertEqual(try queue.get(timeout: 30), "hello world", "round \(round) (\(method))")
            try joinOrKill(p)
            XCTAssertEqual(p.exitCode, 0, "round \(round) (\(method))")
            other.shutdown()
        }
    }
}
