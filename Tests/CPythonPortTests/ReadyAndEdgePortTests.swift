// Ports of CPython's cases with zero timeouts on objects that are ready, and of edge inputs
// and misuse (Lib/test/_test_multiprocessing.py: _TestQueue.test_get, _TestLock,
// _TestSemaphore.test_timeout, _TestEvent.test_event, _TestCondition.test_waitfor,
// _TestBarrier, _TestContainers.test_list, _TestArray, _TestProcess, _TestManagerRestart,
// _TestSharedMemory; Lib/test/lock_tests.py), beyond TimeoutPortTests (which waits on objects
// that are not ready) and MoreEdgePortTests. Children on every start method.
//
// CPython test                                           → Swift test (ReadyAndEdgePortTests)
// _TestQueue.test_get (get(True, 0) / get(timeout=0) with
//   an item there), _TestLock.test_lock (acquire(False)),
//   _TestSemaphore.test_timeout, _TestEvent.test_event
//   (wait(0.0) once set), _TestCondition.test_waitfor (a
//   predicate already true), _TestBarrier (one party)     → testZeroNegativeAndNaNTimeoutsSucceedWhenReady
// the same with the 'manager' type                       → testManagerZeroNegativeAndNaNTimeoutsSucceedWhenReady
// _TestPool.test_async_timeout / test_imap (a result
//   already there, with no time to wait)                 → testReadyPoolResultsWithNoTimeToWait
// _TestContainers.test_list (insert, Python's clamping
//   of out-of-range positions)                           → testManagerListInsertClampsLikePython
// _TestArray.test_array_from_size (size 0) and the
//   manager's Array([])                                  → testEmptySharedArrays
// _TestBarrier / _TestSemaphore / _TestSharedMemory
//   (ValueError for parties < 1, a negative value, a bad
//   name; maxsize < 0)                                   → testInvalidSizesAndNamesAreRefused (difference below)
// _TestProcess (start twice, join before start, close
//   while running: AssertionError / ValueError)         → testProcessMisuseIsRefused
// _TestProcess.test_terminate (.spawn and .forkserver
//   children started from a Task or a Dispatch queue)   → testSpawnAndForkserverChildrenStartedFromATaskCanBeTerminated
//   (the .fork half: Port4DifferenceTests.testAForkChildStartedFromATaskCanBeTerminated)
// _TestManagerRestart / test_shared_memory_cleaned_after_process_termination
//   (a program SIGKILLed with a manager and children)    → testAKilledProgramsManagerAndChildrenGoWithIt
// _TestPool (a Manager and a Process made in a pool task;
//   Python: "daemonic processes are not allowed to have
//   children")                                           → testAPoolTaskCanStartAManagerAndAProcess (difference below)
// _TestContainers / TestSyncManagerTypes with threads
//   (BaseProxy keeps a connection per thread: proxies
//   are shared by a process's threads)                   → testManagerProxiesSharedByThreads
//
// Differences from Python, checked as documented here:
// - `Queue(maxSize:)` below 0 is refused (`QueueError(.invalidArgument)`; the initializer
//   documents "0: no bound"); Python's Queue(maxsize=-1) has no bound.
// - A pool worker may start processes and managers (as a daemon `Process` may:
//   MoreManagerProcessPortTests); Python refuses.

import Dispatch
import Foundation
import Multiprocessing
import XCTest

#if canImport(Glibc)
import Glibc
#endif

/// A Process started from a Task or a Dispatch queue (`useTask`) with `method`, terminated:
/// reports "ended <exit code>" or what went wrong.
struct Port4TerminateFromAThread: ParallelFunction {
    var report: Queue<String>
    var method: StartMethod
    var useTask: Bool
    func callAsFunction(_: Void) throws {
        let box = NSLockish()
        nonisolated(unsafe) var outcome = "nothing"
        let body: @Sendable () -> Void = {
            do {
                let started = try Event()
                let p = Multiprocessing.Process(target: Port4SetAndSleep(event: started, seconds: 30), startMethod: method)
                try p.start()
                guard started.wait(timeout: 20) else {
                    try p.kill()
                    box.withLock { outcome = "the child did not start" }
                    return
                }
                try p.terminate()
                let ended = try p.join(timeout: 3)
                if !ended {
                    try p.kill()
                    _ = try p.join(timeout: 10)
                }
                box.withLock { outcome = ended ? "ended \(p.exitCode.map(String.init) ?? "?")" : "still running" }
            } catch {
                box.withLock { outcome = "error \(error)" }
            }
        }
        let done = DispatchSemaphore(value: 0)
        if useTask {
            Task.detached {
                body()
                done.signal()
            }
        } else {
            DispatchQueue.global().async {
                body()
                done.signal()
            }
        }
        done.wait()
        try report.put(box.withLock { outcome })
    }
}

/// Makes a Manager and a `method` child (which sleeps 60 s), reports [server pid, child pid]
/// and the manager's directory count, and sleeps: the test SIGKILLs it.
struct Port4OwnerToKill: ParallelFunction {
    var report: Queue<[Int32]>
    var method: StartMethod
    func callAsFunction(_: Void) throws {
        let manager = try Manager()
        let list = try manager.list(of: Int.self)
        try list.append(1)
        let child = Multiprocessing.Process(target: SleepFor(seconds: 60), startMethod: method)
        try child.start()
        try report.put([manager.serverPID, child.pid ?? -1])
        usleep(60_000_000)
        withExtendedLifetime(manager) {}
    }
}

/// In a pool task: a Manager (a list of one element) and a child process; returns the
/// list's count plus 10 × the child's exit code.
struct Port4ChildrenOfATask: ParallelFunction {
    func callAsFunction(_ x: Int) throws -> Int {
        let manager = try Manager()
        defer { manager.shutdown() }
        let list = try manager.list(of: Int.self)
        try list.append(x)
        let child = Multiprocessing.Process(target: SleepFor(seconds: 0), startMethod: .fork)
        try child.start()
        guard try child.join(timeout: 10) else { return -1 }
        return try list.count() + 10 * Int(child.exitCode ?? 99)
    }
}

/// The names in /tmp that a Manager makes.
func port4ManagerDirectories() -> Set<String> {
    Set(((try? FileManager.default.contentsOfDirectory(atPath: "/tmp")) ?? []).filter { $0.hasPrefix("swiftmp-manager-") })
}

final class ReadyAndEdgePortTests: PortTestCase {
    /// Every timed call whose object is ready succeeds with a timeout of 0, −1, −∞ or NaN
    /// (Python: get(timeout=0) returns the item there, acquire(timeout=0) takes a free lock,
    /// wait(0.0) of a set event is True…): "do not wait" is not "fail".
    func testZeroNegativeAndNaNTimeoutsSucceedWhenReady() throws {
        for timeout in [0, -1, -Double.infinity, .nan] {
            let what = "timeout \(timeout)"
            let queue = try Queue<Int>(maxSize: 1), simple = try SimpleQueue<Int>()
            try queue.put(1, timeout: timeout)
            try simple.put(2)
            let (a, b) = try Pipe()
            try a.send(3)
            XCTAssertTrue(eventually(within: 5) { !queue.isEmpty && (try? b.poll(timeout: 0)) == true }, what)
            XCTAssertEqual(Multiprocessing.wait(on: [queue], timeout: timeout).count, 1, "\(what): wait(on:)")
            XCTAssertEqual(try queue.get(timeout: timeout), 1, "\(what): Queue.get")
            XCTAssertEqual(try simple.get(timeout: timeout), 2, "\(what): SimpleQueue.get")
            XCTAssertTrue(try b.poll(timeout: timeout), "\(what): Connection.poll")
            XCTAssertEqual(try b.recv(Int.self), 3)
            let lock = try Lock(), rlock = try RLock()
            XCTAssertTrue(try lock.acquire(timeout: timeout), "\(what): Lock.acquire")
            try lock.release()
            XCTAssertTrue(try rlock.acquire(timeout: timeout), "\(what): RLock.acquire")
            XCTAssertTrue(try rlock.acquire(timeout: timeout), "\(what): RLock.acquire again")
            try rlock.release()
            try rlock.release()
            XCTAssertTrue(try Multiprocessing.Semaphore(value: 1).acquire(timeout: timeout), "\(what): Semaphore.acquire")
            XCTAssertTrue(try BoundedSemaphore(value: 1).acquire(timeout: timeout), "\(what): BoundedSemaphore.acquire")
            let event = try Event()
            event.set()
            XCTAssertTrue(event.wait(timeout: timeout), "\(what): Event.wait")
            let condition = try Condition()
            XCTAssertTrue(try condition.withLock { try condition.wait(for: { true }, timeout: timeout) }, "\(what): wait(for:)")
            let joinable = try JoinableQueue<Int>()
            XCTAssertTrue(try joinable.join(timeout: timeout), "\(what): JoinableQueue.join with no tasks")
            try joinable.put(1)
            _ = try joinable.get(timeout: 5)
            try joinable.taskDone()
            XCTAssertTrue(try joinable.join(timeout: timeout), "\(what): JoinableQueue.join with every task done")
            XCTAssertEqual(try Barrier(parties: 1).wait(timeout: timeout), 0, "\(what): Barrier.wait of one party")
        }
    }

    /// The same with a Manager's proxies (CPython's 'manager' type).
    func testManagerZeroNegativeAndNaNTimeoutsSucceedWhenReady() throws {
        let manager = try Manager()
        defer { manager.shutdown() }
        for timeout in [0, -1, Double.nan] {
            let what = "timeout \(timeout)"
            let queue = try manager.queue(of: Int.self, maxSize: 1)
            try queue.put(1, timeout: timeout)
            XCTAssertEqual(try queue.get(timeout: timeout), 1, "\(what): queue get")
            let lock = try manager.lock()
            XCTAssertTrue(try lock.acquire(timeout: timeout), "\(what): lock")
            try lock.release()
            let rlock = try manager.rlock()
            XCTAssertTrue(try rlock.acquire(timeout: timeout), "\(what): rlock")
            try rlock.release()
            XCTAssertTrue(try manager.semaphore(value: 1).acquire(timeout: timeout), "\(what): semaphore")
            XCTAssertTrue(try manager.boundedSemaphore(value: 1).acquire(timeout: timeout), "\(what): bounded semaphore")
            let event = try manager.event()
            try event.set()
            XCTAssertTrue(try event.wait(timeout: timeout), "\(what): event")
            let condition = try manager.condition()
            XCTAssertTrue(try condition.withLock { try condition.wait(for: { true }, timeout: timeout) }, "\(what): condition")
            XCTAssertTrue(try manager.joinableQueue(of: Int.self).join(timeout: timeout), "\(what): joinable queue")
            XCTAssertEqual(try manager.barrier(parties: 1).wait(timeout: timeout), 0, "\(what): barrier")
        }
    }

    /// A pool result that is there already is returned with no time to wait: `get`, `wait`
    /// and an imap's `next(timeout:)` with 0, −1 and NaN.
    func testReadyPoolResultsWithNoTimeToWait() throws {
        try Pool.with(processes: 1, startMethod: .fork) { pool in
            for timeout in [0, -1, Double.nan] {
                let result = try pool.applyAsync(Sqr(), 3)
                let stream = try pool.imap(Sqr(), [4])
                XCTAssertTrue(result.wait(timeout: 30))
                usleep(100_000) // the stream's result arrives meanwhile
                XCTAssertTrue(result.wait(timeout: timeout), "timeout \(timeout)")
                XCTAssertEqual(try result.get(timeout: timeout), 9, "timeout \(timeout)")
                XCTAssertEqual(try stream.next(timeout: timeout)?.get(), 16, "timeout \(timeout)")
                XCTAssertNil(try stream.next(timeout: timeout), "timeout \(timeout)")
            }
        }
    }

    /// _TestContainers.test_list: a manager list's insert does what Python's list.insert does
    /// with any position: past the end appends, before the start prepends, a negative one
    /// counts from the end.
    func testManagerListInsertClampsLikePython() throws {
        let manager = try Manager()
        defer { manager.shutdown() }
        for (position, expected) in [(100, [1, 2, 3, 9]), (-100, [9, 1, 2, 3]), (-1, [1, 2, 9, 3]), (3, [1, 2, 3, 9]), (0, [9, 1, 2, 3])] {
            let list = try manager.list(of: Int.self)
            try list.extend([1, 2, 3])
            try list.insert(9, at: position)
            XCTAssertEqual(try list.items(), expected, "insert at \(position)")
        }
    }

    /// _TestArray.test_array_from_size with size 0, and the manager's Array([]): empty arrays
    /// exist, have no elements, and travel to a child.
    func testEmptySharedArrays() throws {
        let shared = try SharedArray<Int32>(count: 0)
        XCTAssertEqual(shared.count, 0)
        XCTAssertEqual(shared.snapshot(), [])
        XCTAssertEqual(try SharedArray<Double>([Double]()).count, 0)
        XCTAssertEqual(try RawSharedArray<Int64>(count: 0).count, 0)
        let manager = try Manager()
        defer { manager.shutdown() }
        XCTAssertEqual(try manager.array([Int]()).count(), 0)
    }

    /// ValueError where CPython raises it — a Barrier of no parties, a negative semaphore, a
    /// shared-memory name with a '/' or empty — is a typed error here; so is a negative
    /// queue size (documented difference: Python's has no bound).
    func testInvalidSizesAndNamesAreRefused() throws {
        XCTAssertThrowsError(try Barrier(parties: 0)) { XCTAssertTrue($0 is SynchronizationError, "\($0)") }
        XCTAssertThrowsError(try Barrier(parties: -1)) { XCTAssertTrue($0 is SynchronizationError, "\($0)") }
        XCTAssertThrowsError(try Queue<Int>(maxSize: -1)) { XCTAssertEqual(($0 as? QueueError)?.code, .invalidArgument, "\($0)") }
        XCTAssertThrowsError(try JoinableQueue<Int>(maxSize: -1)) { XCTAssertEqual(($0 as? QueueError)?.code, .invalidArgument, "\($0)") }
        XCTAssertThrowsError(try SharedMemory(name: "port4/name", create: true, size: 16)) {
            XCTAssertEqual(($0 as? SharedMemoryError)?.code, .invalidName, "\($0)")
        }
        XCTAssertThrowsError(try SharedMemory(name: "", create: true, size: 16)) {
            XCTAssertEqual(($0 as? SharedMemoryError)?.code, .invalidName, "\($0)")
        }
        let manager = try Manager()
        defer { manager.shutdown() }
        XCTAssertThrowsError(try manager.barrier(parties: 0))
        XCTAssertThrowsError(try manager.semaphore(value: -1))
        XCTAssertThrowsError(try manager.queue(of: Int.self, maxSize: -1))
        XCTAssertEqual(try manager.list(of: Int.self).count(), 0, "the manager goes on")
    }

    /// _TestProcess: a process cannot be started twice (AssertionError), joined before it
    /// started (AssertionError), nor closed while it runs (ValueError); after its end it can
    /// still not be started again, and its exit code stays.
    func testProcessMisuseIsRefused() throws {
        try forEachMethod { method in
            let p = Multiprocessing.Process(target: SleepFor(seconds: 0.3), startMethod: method)
            XCTAssertThrowsError(try p.join(timeout: 0)) { XCTAssertEqual(($0 as? ProcessError)?.code, .notStarted, "\(method): \($0)") }
            XCTAssertNil(p.exitCode)
            XCTAssertFalse(p.isAlive)
            try p.start()
            XCTAssertThrowsError(try p.start()) { XCTAssertEqual(($0 as? ProcessError)?.code, .alreadyStarted, "\(method): \($0)") }
            XCTAssertThrowsError(try p.close()) { XCTAssertEqual(($0 as? ProcessError)?.code, .stillRunning, "\(method): \($0)") }
            try joinOrKill(p)
            XCTAssertThrowsError(try p.start()) { XCTAssertEqual(($0 as? ProcessError)?.code, .alreadyStarted, "\(method): \($0)") }
            XCTAssertEqual(p.exitCode, 0, "\(method)")
            XCTAssertNoThrow(try p.close(), "\(method)")
        }
    }

    /// test_terminate for children started from a Swift concurrency Task or a Dispatch queue
    /// (in a fresh `.spawn` child, so that this process's history does not matter): with
    /// `.spawn` and `.forkserver` they start with no signal blocked and `terminate()` ends
    /// them with -SIGTERM. (With `.fork` it does not: Port4DifferenceTests.)
    func testSpawnAndForkserverChildrenStartedFromATaskCanBeTerminated() throws {
        for method in [StartMethod.spawn, .forkserver] {
            let report = try Queue<String>()
            let sandbox = try started(Port4TerminateFromAThread(report: report, method: method, useTask: true), .spawn)
            XCTAssertEqual(try report.get(timeout: 60), "ended -15", "\(method)")
            try joinOrKill(sandbox)
        }
    }

    /// A program SIGKILLed while it has a Manager and a child: the manager's server, the child
    /// and the manager's directory in /tmp go with it (documented: the server "goes away with
    /// its owner"; children die with their parent).
    func testAKilledProgramsManagerAndChildrenGoWithIt() throws {
        try forEachMethod { method in
            let report = try Queue<[Int32]>()
            let directories = port4ManagerDirectories()
            let owner = try started(Port4OwnerToKill(report: report, method: method), .spawn)
            let pids = try report.get(timeout: 30)
            XCTAssertEqual(pids.count, 2)
            XCTAssertTrue(pids.allSatisfy(isRunning), "\(method): \(pids)")
            XCTAssertEqual(port4ManagerDirectories().subtracting(directories).count, 1, "\(method): the manager's directory")
            try owner.kill()
            try joinOrKill(owner)
            XCTAssertTrue(eventually(within: 10) { !pids.contains(where: isRunning) }, "\(method): left running: \(pids.filter(isRunning))")
            XCTAssertTrue(
                eventually(within: 10) { port4ManagerDirectories().subtracting(directories).isEmpty },
                "\(method): the manager's directory was left in /tmp")
        }
    }

    /// Documented difference: a pool task may start a Manager and a Process (Python's pool
    /// workers are daemonic and refuse to have children); both work and are gone after it.
    func testAPoolTaskCanStartAManagerAndAProcess() throws {
        try forEachMethod([.fork, .spawn]) { method in
            try Pool.with(processes: 1, startMethod: method) { pool in
                XCTAssertEqual(try pool.apply(Port4ChildrenOfATask(), 5, timeout: 30), 1, "\(method): count 1, child exit 0")
            }
        }
    }

    /// Four threads share a list, a dict and a queue proxy: 4 × 300 appends, sets and puts
    /// all land, and four threads then take the 1200 items back.
    func testManagerProxiesSharedByThreads() throws {
        let manager = try Manager()
        defer { manager.shutdown() }
        let list = try manager.list(of: Int.self)
        let dict = try manager.dict(Int.self, Int.self)
        let queue = try manager.queue(of: Int.self)
        let writers = (0..<4).map { k in
            TestThread {
                for i in 0..<300 {
                    try list.append(k * 1000 + i)
                    try dict.set(k * 1000 + i, i)
                    try queue.put(k * 1000 + i)
                }
            }
        }
        for writer in writers { XCTAssertTrue(try writer.wait(60), "a writing thread did not end") }
        XCTAssertEqual(try list.count(), 1200)
        XCTAssertEqual(Set(try list.items()).count, 1200)
        XCTAssertEqual(try dict.count(), 1200)
        XCTAssertEqual(try queue.count(), 1200)
        let box = NSLockish()
        nonisolated(unsafe) var taken: [Int] = []
        let readers = (0..<4).map { _ in
            TestThread {
                for _ in 0..<300 {
                    let item = try queue.get(timeout: 10)
                    box.withLock { taken.append(item) }
                }
            }
        }
        for reader in readers { XCTAssertTrue(try reader.wait(60), "a reading thread did not end") }
        XCTAssertEqual(Set(box.withLock { taken }), Set(try list.items()))
        XCTAssertEqual(try queue.count(), 0)
    }
}
