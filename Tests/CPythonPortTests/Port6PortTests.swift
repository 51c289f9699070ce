// Sixth round of ports of CPython's Lib/test/_test_multiprocessing.py: processes that ignore
// or are stopped by signals, several producers and consumers on one queue, joiners of a
// JoinableQueue in threads and children, pipes between two children and pipes that fill up,
// semaphores released elsewhere, managers shut down or killed while in use, and pools used
// after close, terminated under a waiting reader, or read from several threads. Children on
// every start method unless a case says otherwise.
//
// CPython test                                             → Swift test (Port6PortTests)
// _TestProcess._kill_process / test_terminate (a child
//   that ignores SIGTERM: terminate() leaves it, kill()
//   ends it)                                               → testTerminateOfAChildThatIgnoresSIGTERMThenKill
// _TestProcess.test_process (is_alive / exitcode of a
//   child stopped with SIGSTOP, then continued)            → testAStoppedChildIsStillAlive
// TestWait.test_wait_integer (the sentinel of one of
//   three children, killed from outside)                   → testWaitOnChildrenReturnsTheKilledOne
// TestWait.test_wait (wait(timeout=None) until a child
//   ends)                                                  → testWaitWithoutTimeoutReturnsWhenAChildEnds
// _TestProcess.test_active_children (a child killed from
//   outside, never joined)                                 → testActiveChildrenDropsAChildKilledFromOutside
// _TestQueue.test_fork (items of mixed sizes, some larger
//   than the buffer, from one child keep their order)      → testItemsOfMixedSizesFromAChildKeepTheirOrder
// _TestQueue.test_fork / test_qsize (three producers: no
//   item lost or doubled, each producer's order kept)      → testThreeProducersLoseNothingAndKeepTheirOrder
// _TestQueue.test_get / test_timeout (a thread and a child
//   wait with a timeout for one item)                      → testOneItemGoesToExactlyOneOfTwoTimedGets
// _TestQueue.test_closed_queue_put_get_exceptions (close()
//   in a child; the parent's handle goes on)               → testCloseInAChildLeavesTheQueueUsableHere
// _TestQueue.test_task_done (join() in a thread and in a
//   child at once)                                         → testJoinableQueueJoinersInAThreadAndAChild
// TestSimpleQueue / _TestQueue.test_task_done (two
//   consuming children, each item got once)                → testSimpleQueueItemsAreGotOnceByTwoChildren
// _TestConnection.test_connection (poll(None) waits)       → testPollWithoutTimeoutWaitsForAMessage
// _TestPoll.test_strings (a child sends more than the
//   pipe holds; every message arrives in order, then EOF)  → testManyMessagesThatFillThePipeArriveInOrder
// _TestConnection.test_connection (the echo between two
//   children over one duplex pipe)                         → testDuplexPipeBetweenTwoChildren
// TestWait.test_wait (a connection whose peer ends is
//   ready: EOF)                                            → testWaitOnAConnectionWakesWhenThePeerEnds
// _TestSemaphore.test_semaphore (released by a process
//   that never acquired it)                                → testSemaphoreReleasedByAChildThatNeverAcquiredIt
// _TestSemaphore.test_bounded_semaphore (over-release in
//   a child)                                               → testBoundedSemaphoreOverReleasedInAChild
// _TestPool.test_terminate (a thread waiting in the
//   IMapIterator's next())                                 → testTerminateEndsAThreadWaitingInImapNext
// _TestPool.test_context / test_terminate (close and join
//   twice, terminate after join)                           → testCloseAndJoinTwiceThenTerminate
// _TestPool.test_enter ("Pool not running" after close)   → testAClosedPoolRefusesNewWork
// _TestPool.test_async (get from two threads)             → testAsyncResultGotFromTwoThreads
// _TestPool.test_async_timeout (wait(timeout), ready(),
//   successful() before and after)                         → testWaitWithTimeoutOnASlowApplyAsync
// _TestPool.test_async / test_async_error_callback
//   (callbacks have run when get() returns)                → testCallbacksHaveRunWhenGetReturns
//
// CPython test (manager)                                   → Swift test (Port6ManagerPortTests)
// _TestMyManager / BaseManager.shutdown (a thread waiting
//   in a queue proxy's get())                              → testShutdownEndsAThreadWaitingInQueueGet
// _TestMyManager / BaseManager.shutdown (a child waiting
//   in a lock proxy's acquire())                           → testShutdownEndsAChildWaitingOnALockProxy
// _TestManagerRestart (the server killed: proxies raise)  → testProxiesOfAKilledServerThrow
// _TestContainers / TestSyncManagerTypes.test_lock (two
//   children increment a dict entry under a manager lock)  → testIncrementsUnderAManagerLockFromTwoChildren
// TestSyncManagerTypes.test_joinable_queue (join() until
//   a child's task_done())                                 → testManagerJoinableQueueJoinWaitsForAChild
//
// CPython test                                             → Swift test (Port6MorePortTests)
// _TestConnection (one end passed to two Processes)        → testSameConnectionEndGivenToTwoChildren
// _TestPool.test_terminate / TestInitializers (workers in
//   a slow initializer)                                    → testTerminateWhileWorkersAreInTheirInitializer
// _TestPool (Pool._maintain_pool: idle workers killed)     → testWorkersKilledWhileIdleAreReplaced
// _TestSharedMemory.test_shared_memory_basics (size of a
//   block opened by name)                                  → testSharedMemoryOpenedByNameHasTheCreatorsSize
// _TestLock (acquire(timeout) while the holder process is
//   stopped)                                               → testLockTimeoutWhileTheHolderIsStopped
// _TestCondition.test_notify_all (threads here woken by a
//   child)                                                 → testChildNotifiesAllThreadsWaitingHere
// _TestQueue.test_task_done (task_done from another
//   process than the get)                                  → testTaskDoneFromAnotherProcessThanTheGet
// lock_tests EventTests.test_set_and_clear (gh-57711; the
//   shared-memory Event, waiters in threads and a child)   → testEventSetThenClearWakesItsWaiters
// (manager) BaseManager.shutdown with a thread waiting to
//   put on a full queue proxy                              → Port6MoreManagerPortTests.testShutdownEndsAThreadWaitingToPutOnAFullQueue
//
// CPython test                                             → Swift test (Port6StressPortTests)
// TestForkAwareThreadLock / _TestProcess (.fork children
//   started while another thread keeps a pool busy)        → testForkedChildrenWhileAPoolMapsOnAnotherThread
// _TestQueue.test_put / test_get (no item lost, doubled or
//   torn; puts abandoned in the middle of big items)       → testItemsOfImpatientProducersArriveWholeAndOnce
//
// CPython test                                             → Swift test (Port6ThreadPortTests)
// _TestQueue.test_get / test_timeout (a timed get while
//   another thread waits untimed; _rlock.acquire(timeout)) → testTimedGetWhileAnotherThreadWaitsWithoutTimeout
//   (the timed get in a child)                             → testTimedGetInAChildWhileThisProcessWaitsWithoutTimeout
// _TestQueue.test_put (a timed put while another thread
//   waits for room)                                        → testTimedPutWhileAnotherThreadWaitsForRoom
// _TestConnection.test_connection (poll timings while
//   another thread waits in recv)                          → testPollTimeoutWhileAnotherThreadWaitsInRecv
// _TestConnection.test_connection (echo; a reader thread
//   and a writer thread on one end)                        → testSendWhileAnotherThreadWaitsInRecv
// _TestPool.test_imap (next(timeout) while another thread
//   waits in next())                                       → testTimedImapNextWhileAnotherThreadWaits
// lock_tests RLockTests (acquire(timeout) from another
//   thread)                                                → testRLockTimeoutFromAnotherThread
// _TestProcess.test_active_children (in a child: its own) → testActiveChildrenInAChildAreItsOwn
// TestSyncManagerTypes / BaseProxy's connection per
//   thread (calls while another thread waits in get())     → Port6ThreadManagerPortTests.testProxyCallsWhileAnotherThreadWaitsInGet

import Dispatch
import Foundation
import Multiprocessing
import XCTest

#if canImport(Glibc)
import Glibc
#endif

// MARK: child targets

/// Ignores SIGTERM, says so, then sleeps.
struct Port6IgnoreTermThenSleep: ParallelFunction {
    var ready: Event
    func callAsFunction(_: Void) {
        signal(SIGTERM, SIG_IGN)
        ready.set()
        usleep(30_000_000)
    }
}

/// Says it runs, then sleeps.
struct Port6SetThenSleep: ParallelFunction {
    var ready: Event
    var seconds: Double
    func callAsFunction(_: Void) {
        ready.set()
        usleep(UInt32(seconds * 1e6))
    }
}

/// Puts twelve items of mixed sizes (some larger than the queue's 1 MiB buffer).
struct Port6PutMixedSizes: ParallelFunction {
    var queue: Queue<[UInt8]>
    static func size(_ i: Int) -> Int { i % 3 == 0 ? (3 << 20) + i : (i % 3 == 1 ? 10 + i : 200_000 + i) }
    func callAsFunction(_: Void) throws {
        for i in 0..<12 { try queue.put([UInt8](repeating: UInt8(i), count: Port6PutMixedSizes.size(i))) }
    }
}

/// Puts [tag, i] for i in 0..<n.
struct Port6PutTagged: ParallelFunction {
    var queue: Queue<[Int]>
    var tag: Int
    var n: Int
    func callAsFunction(_: Void) throws {
        for i in 0..<n { try queue.put([tag, i]) }
    }
}

/// Gets one item with a timeout; reports it, or -1 on Empty.
struct Port6TimedGet: ParallelFunction {
    var queue: Queue<Int>
    var report: Queue<Int>
    var started: Event
    var seconds: Double
    func callAsFunction(_: Void) throws {
        started.set()
        do {
            try report.put(try queue.get(timeout: seconds))
        } catch is Empty {
            try report.put(-1)
        }
    }
}

/// Closes its handle of the queue and reports what put and get then do.
struct Port6CloseThenUse: ParallelFunction {
    var queue: Queue<Int>
    var report: Queue<String>
    func callAsFunction(_: Void) throws {
        queue.close()
        do {
            try queue.put(1)
            try report.put("put worked")
        } catch let error as QueueError {
            try report.put("put \(error.code)")
        } catch {
            try report.put("put threw \(error)")
        }
        do {
            _ = try queue.get(timeout: 0.1)
            try report.put("get worked")
        } catch let error as QueueError {
            try report.put("get \(error.code)")
        } catch {
            try report.put("get threw \(error)")
        }
    }
}

/// Joins the queue and reports how that ended.
struct Port6JoinThenReport: ParallelFunction {
    var queue: JoinableQueue<Int>
    var report: Queue<String>
    func callAsFunction(_: Void) throws {
        try report.put("joining")
        try report.put(try queue.join(timeout: 60) ? "joined" : "timed out")
    }
}

/// Gets until a negative item; reports [sum, count].
struct Port6SumUntilNegative: ParallelFunction {
    var queue: SimpleQueue<Int>
    var result: Queue<[Int]>
    func callAsFunction(_: Void) throws {
        var sum = 0
        var n = 0
        while true {
            let v = try queue.get(timeout: 60)
            if v < 0 { break }
            sum += v
            n += 1
        }
        try result.put([sum, n])
    }
}

/// Sleeps, then sends a number.
struct Port6SendAfter: ParallelFunction {
    var conn: Connection
    var seconds: Double
    func callAsFunction(_: Void) throws {
        usleep(UInt32(seconds * 1e6))
        try conn.send(7)
    }
}

/// Sends `count` byte messages of `size` bytes (message i filled with i mod 256), then closes.
struct Port6SendMany: ParallelFunction {
    var conn: Connection
    var count: Int
    var size: Int
    func callAsFunction(_: Void) throws {
        for i in 0..<count {
            try conn.sendBytes([UInt8](repeating: UInt8(i & 0xff), count: size))
        }
        conn.close()
    }
}

/// Sends 0..<rounds and expects each back plus 1000; then sends -1.
struct Port6Ping: ParallelFunction {
    var conn: Connection
    var rounds: Int
    func callAsFunction(_: Void) throws {
        for i in 0..<rounds {
            try conn.send(i)
            let back = try conn.recv(Int.self)
            try require(back == i + 1000, "round \(i): got \(back)")
        }
        try conn.send(-1)
    }
}

/// Answers each number with it plus 1000 until a negative one.
struct Port6Pong: ParallelFunction {
    var conn: Connection
    func callAsFunction(_: Void) throws {
        while true {
            let v = try conn.recv(Int.self)
            if v < 0 { return }
            try conn.send(v + 1000)
        }
    }
}

/// Sleeps, then ends (its end of the pipe closes with it).
struct Port6HoldThenEnd: ParallelFunction {
    var conn: Connection
    var seconds: Double
    func callAsFunction(_: Void) {
        usleep(UInt32(seconds * 1e6))
    }
}

/// Releases the semaphore `times` times.
struct Port6ReleaseSemaphore: ParallelFunction {
    var semaphore: Multiprocessing.Semaphore
    var times: Int
    func callAsFunction(_: Void) throws {
        for _ in 0..<times { try semaphore.release() }
    }
}

/// Releases the bounded semaphore once; reports "released" or the error's code.
struct Port6ReleaseBounded: ParallelFunction {
    var semaphore: BoundedSemaphore
    var report: Queue<String>
    func callAsFunction(_: Void) throws {
        do {
            try semaphore.release()
            try report.put("released")
        } catch let error as SynchronizationError {
            try report.put("\(error.code)")
        }
    }
}

/// Throws for every input (CPython's `raising`).
struct Port6Boom: Error, CustomStringConvertible {
    var description: String { "boom" }
}

struct Port6Raise: ParallelFunction {
    func callAsFunction(_ x: Int) throws -> Int { throw Port6Boom() }
}

/// Says it is about to wait, then acquires the manager lock without a timeout.
struct Port6AcquireManagerLock: ParallelFunction {
    var lock: LockProxy
    var started: Event
    func callAsFunction(_: Void) throws {
        started.set()
        _ = try lock.acquire()
    }
}

/// Increments dict["n"] `n` times under the manager lock.
struct Port6IncrementUnderManagerLock: ParallelFunction {
    var dict: DictProxy<String, Int>
    var lock: LockProxy
    var n: Int
    func callAsFunction(_: Void) throws {
        for _ in 0..<n {
            try lock.withLock {
                let v = try dict.get("n") ?? 0
                try dict.set("n", v + 1)
            }
        }
    }
}

/// Gets every item of a manager queue, pausing before each taskDone.
struct Port6DrainManagerQueue: ParallelFunction {
    var queue: QueueProxy<Int>
    var n: Int
    func callAsFunction(_: Void) throws {
        for _ in 0..<n {
            _ = try queue.get(timeout: 30)
            usleep(200_000)
            try queue.taskDone()
        }
    }
}

/// Things recorded by threads and callbacks.
final class Port6Log<T: Sendable>: @unchecked Sendable {
    private let lock = NSLockish()
    private var items: [T] = []
    func append(_ item: T) { lock.withLock { items.append(item) } }
    var all: [T] { lock.withLock { items } }
}

// MARK: processes, queues, pipes, semaphores, pools

final class Port6PortTests: PortTestCase {
    /// _kill_process / test_terminate: terminate() sends SIGTERM, which a child that ignores
    /// it survives (join(timeout) times out, it is alive, no exit code); kill() ends it with
    /// exit code -SIGKILL.
    func testTerminateOfAChildThatIgnoresSIGTERMThenKill() throws {
        try forEachMethod { method in
            let ready = try Event()
            let p = try started(Port6IgnoreTermThenSleep(ready: ready), method)
            XCTAssertTrue(ready.wait(timeout: 30), "\(method)")
            try p.terminate()
            let (joined, elapsed) = try timed { try p.join(timeout: 0.5) }
            XCTAssertFalse(joined, "\(method): a child that ignores SIGTERM ended on terminate()")
            assertWaited(elapsed, 0.5, "\(method): join(timeout: 0.5)")
            XCTAssertTrue(p.isAlive, "\(method)")
            XCTAssertNil(p.exitCode, "\(method)")
            try p.kill()
            XCTAssertTrue(try p.join(timeout: 10), "\(method)")
            XCTAssertEqual(p.exitCode, -SIGKILL, "\(method)")
            XCTAssertFalse(p.isAlive)
        }
    }

    /// test_process: a stopped child has not ended (Python's waitpid(WNOHANG) sees nothing):
    /// alive, no exit code, join(timeout) and wait() time out; continued, it ends with 0.
    func testAStoppedChildIsStillAlive() throws {
        try forEachMethod { method in
            let ready = try Event()
            let p = try started(Port6SetThenSleep(ready: ready, seconds: 0.5), method)
            XCTAssertTrue(ready.wait(timeout: 30), "\(method)")
            let pid = try XCTUnwrap(p.pid)
            XCTAssertEqual(kill(pid, SIGSTOP), 0)
            defer { kill(pid, SIGCONT) }
            usleep(200_000)
            XCTAssertTrue(p.isAlive, "\(method): a stopped child is not alive")
            XCTAssertNil(p.exitCode, "\(method): a stopped child has an exit code")
            XCTAssertFalse(try p.join(timeout: 0.3), "\(method): join returned for a stopped child")
            XCTAssertTrue(Multiprocessing.wait(on: [p], timeout: 0.3).isEmpty, "\(method): wait saw a stopped child end")
            XCTAssertTrue(Multiprocessing.activeChildren().contains { $0.pid == pid }, "\(method)")
            XCTAssertEqual(kill(pid, SIGCONT), 0)
            XCTAssertTrue(try p.join(timeout: 30), "\(method)")
            XCTAssertEqual(p.exitCode, 0, "\(method)")
        }
    }

    /// test_wait_integer: of three sleeping children, the one killed from outside is the one
    /// wait() returns, at once; its exit code is -SIGKILL.
    func testWaitOnChildrenReturnsTheKilledOne() throws {
        try forEachMethod { method in
            let ps = try (0..<3).map { _ in try started(SleepFor(seconds: 30), method) }
            defer {
                for p in ps {
                    try? p.kill()
                    _ = try? p.join(timeout: 10)
                }
            }
            // Each has started (its pid is known) before the kill.
            let victim = try XCTUnwrap(ps[1].pid)
            usleep(100_000)
            XCTAssertEqual(kill(victim, SIGKILL), 0)
            let (ready, elapsed) = timed { Multiprocessing.wait(on: ps, timeout: 10) }
            XCTAssertEqual(ready.map { $0.pid }, [victim], "\(method)")
            assertQuick(elapsed, "\(method): wait for a killed child")
            XCTAssertTrue(try ps[1].join(timeout: 5))
            XCTAssertEqual(ps[1].exitCode, -SIGKILL, "\(method)")
            XCTAssertTrue(ps[0].isAlive && ps[2].isAlive, "\(method)")
        }
    }

    /// TestWait.test_wait: wait(timeout=None) returns once a child ends, with it.
    func testWaitWithoutTimeoutReturnsWhenAChildEnds() throws {
        try forEachMethod { method in
            let p = try started(SleepFor(seconds: 0.3), method)
            let (ready, elapsed) = timed { Multiprocessing.wait(on: [p], timeout: nil) }
            XCTAssertEqual(ready.count, 1, "\(method)")
            XCTAssertLessThan(elapsed, 20, "\(method)")
            try joinOrKill(p)
            XCTAssertEqual(p.exitCode, 0, "\(method)")
        }
    }

    /// test_active_children: a child killed from outside leaves active_children() (which
    /// reaps) without a join.
    func testActiveChildrenDropsAChildKilledFromOutside() throws {
        try forEachMethod { method in
            let p = try started(SleepFor(seconds: 30), method)
            let pid = try XCTUnwrap(p.pid)
            XCTAssertTrue(Multiprocessing.activeChildren().contains { $0.pid == pid }, "\(method)")
            XCTAssertEqual(kill(pid, SIGKILL), 0)
            XCTAssertTrue(
                eventually(within: 10) { !Multiprocessing.activeChildren().contains { $0.pid == pid } },
                "\(method): a killed child stays in activeChildren()")
            XCTAssertEqual(p.exitCode, -SIGKILL, "\(method)")
            try joinOrKill(p)
        }
    }

    /// test_fork with items of mixed sizes: a child puts 3 MiB, 10-byte and 200 kB items in
    /// turn (the buffer is 1 MiB); they arrive whole and in order.
    func testItemsOfMixedSizesFromAChildKeepTheirOrder() throws {
        try forEachMethod { method in
            let queue = try Queue<[UInt8]>()
            let p = try started(Port6PutMixedSizes(queue: queue), method)
            for i in 0..<12 {
                let item = try queue.get(timeout: 30)
                XCTAssertEqual(item.count, Port6PutMixedSizes.size(i), "\(method): item \(i)")
                XCTAssertTrue(item.allSatisfy { $0 == UInt8(i) }, "\(method): item \(i) is not whole")
            }
            try joinOrKill(p)
            XCTAssertEqual(p.exitCode, 0, "\(method)")
            XCTAssertTrue(queue.isEmpty)
        }
    }

    /// Three children put 300 tagged items each into one queue: every item arrives once, each
    /// producer's in the order it put them; then the queue is empty.
    func testThreeProducersLoseNothingAndKeepTheirOrder() throws {
        try forEachMethod { method in
            let queue = try Queue<[Int]>(bufferSize: 4096)
            let ps = try (0..<3).map { tag in try started(Port6PutTagged(queue: queue, tag: tag, n: 300), method) }
            var next = [0, 0, 0]
            for _ in 0..<900 {
                let item = try queue.get(timeout: 30)
                XCTAssertEqual(item.count, 2)
                let (tag, i) = (item[0], item[1])
                XCTAssertEqual(i, next[tag], "\(method): producer \(tag) out of order")
                next[tag] = i + 1
            }
            XCTAssertEqual(next, [300, 300, 300], "\(method)")
            for p in ps { try joinOrKill(p) }
            XCTAssertTrue(queue.isEmpty, "\(method)")
            XCTAssertThrowsError(try queue.getNowait()) { XCTAssertTrue($0 is Empty, "\($0)") }
        }
    }

    /// test_get / test_timeout with two consumers: a thread here and a child wait with a
    /// timeout; one item put meanwhile goes to exactly one of them, the other times out.
    func testOneItemGoesToExactlyOneOfTwoTimedGets() throws {
        try forEachMethod { method in
            let queue = try Queue<Int>()
            let report = try Queue<Int>()
            let started = try Event()
            let p = try self.started(Port6TimedGet(queue: queue, report: report, started: started, seconds: 2), method)
            XCTAssertTrue(started.wait(timeout: 30))
            let log = Port6Log<Int>()
            let thread = TestThread {
                do { log.append(try queue.get(timeout: 2)) } catch is Empty { log.append(-1) }
            }
            usleep(300_000)
            try queue.put(42)
            XCTAssertTrue(try thread.wait(30))
            let childGot = try report.get(timeout: 30)
            try joinOrKill(p)
            let results = (log.all + [childGot]).sorted()
            XCTAssertEqual(results, [-1, 42], "\(method): thread \(log.all), child \(childGot)")
            XCTAssertTrue(queue.isEmpty)
        }
    }

    /// test_closed_queue_put_get_exceptions in a child: after close() there, its put and get
    /// throw `.closed`; this process's handle is unaffected.
    func testCloseInAChildLeavesTheQueueUsableHere() throws {
        try forEachMethod { method in
            let queue = try Queue<Int>()
            let report = try Queue<String>()
            try queue.put(5)
            let p = try started(Port6CloseThenUse(queue: queue, report: report), method)
            XCTAssertEqual(try report.get(timeout: 30), "put closed", "\(method)")
            XCTAssertEqual(try report.get(timeout: 30), "get closed", "\(method)")
            try joinOrKill(p)
            XCTAssertEqual(p.exitCode, 0)
            XCTAssertEqual(try queue.get(timeout: 1), 5, "\(method)")
            try queue.put(6)
            XCTAssertEqual(try queue.get(timeout: 1), 6, "\(method)")
        }
    }

    /// test_task_done with several joiners: join() in a thread here and in a child both wait
    /// while tasks are unfinished and both return once the last taskDone comes.
    func testJoinableQueueJoinersInAThreadAndAChild() throws {
        try forEachMethod { method in
            let queue = try JoinableQueue<Int>()
            let report = try Queue<String>()
            for i in 0..<3 { try queue.put(i) }
            let p = try started(Port6JoinThenReport(queue: queue, report: report), method)
            XCTAssertEqual(try report.get(timeout: 30), "joining")
            let joined = Port6Log<Bool>()
            let thread = TestThread { joined.append(try queue.join(timeout: 60)) }
            usleep(300_000)
            XCTAssertThrowsError(try report.get(timeout: 0.1), "\(method): the child's join returned early")
            XCTAssertTrue(joined.all.isEmpty, "\(method): the thread's join returned early")
            for _ in 0..<3 {
                _ = try queue.get(timeout: 5)
                try queue.taskDone()
            }
            XCTAssertEqual(try report.get(timeout: 30), "joined", "\(method)")
            XCTAssertTrue(try thread.wait(30))
            XCTAssertEqual(joined.all, [true], "\(method)")
            try joinOrKill(p)
        }
    }

    /// Two children consume a SimpleQueue until an end marker each: every item is got once.
    func testSimpleQueueItemsAreGotOnceByTwoChildren() throws {
        try forEachMethod { method in
            let queue = try SimpleQueue<Int>()
            let result = try Queue<[Int]>()
            let ps = try (0..<2).map { _ in try started(Port6SumUntilNegative(queue: queue, result: result), method) }
            for i in 1...300 { try queue.put(i) }
            try queue.put(-1)
            try queue.put(-1)
            let a = try result.get(timeout: 30)
            let b = try result.get(timeout: 30)
            XCTAssertEqual(a[0] + b[0], 300 * 301 / 2, "\(method)")
            XCTAssertEqual(a[1] + b[1], 300, "\(method)")
            for p in ps { try joinOrKill(p) }
            XCTAssertTrue(queue.isEmpty)
        }
    }

    /// test_connection: poll(None) waits as long as it takes for a message.
    func testPollWithoutTimeoutWaitsForAMessage() throws {
        try forEachMethod { method in
            let (here, there) = try Pipe()
            let p = try started(Port6SendAfter(conn: there, seconds: 0.3), method)
            let (ready, elapsed) = try timed { try here.poll(timeout: nil) }
            XCTAssertTrue(ready, "\(method)")
            XCTAssertGreaterThanOrEqual(elapsed, 0.29, "\(method): poll(nil) returned early")
            XCTAssertEqual(try here.recv(Int.self), 7)
            try joinOrKill(p)
        }
    }

    /// test_strings with more than a pipe holds: a child sends 2000 messages of 4 KiB while
    /// nobody reads (its sends wait); all arrive, in order, then end of file.
    func testManyMessagesThatFillThePipeArriveInOrder() throws {
        try forEachMethod { method in
            let (here, there) = try Pipe(duplex: false)
            let p = try started(Port6SendMany(conn: there, count: 2000, size: 4096), method)
            there.close()
            usleep(300_000)
            for i in 0..<2000 {
                let message = try here.recvBytes()
                guard message.count == 4096, message.allSatisfy({ $0 == UInt8(i & 0xff) }) else {
                    XCTFail("\(method): message \(i) is wrong (\(message.count) bytes)")
                    break
                }
            }
            XCTAssertThrowsError(try here.recvBytes()) {
                XCTAssertEqual(($0 as? ConnectionError)?.code, .endOfFile, "\(method): \($0)")
            }
            try joinOrKill(p)
            XCTAssertEqual(p.exitCode, 0)
        }
    }

    /// test_connection's echo with both ends in children: 200 round trips over one duplex
    /// pipe between two children.
    func testDuplexPipeBetweenTwoChildren() throws {
        try forEachMethod { method in
            let (a, b) = try Pipe()
            let pong = try started(Port6Pong(conn: b), method)
            let ping = try started(Port6Ping(conn: a, rounds: 200), method)
            a.close()
            b.close()
            try joinOrKill(ping)
            try joinOrKill(pong)
            XCTAssertEqual(ping.exitCode, 0, "\(method)")
            XCTAssertEqual(pong.exitCode, 0, "\(method)")
        }
    }

    /// TestWait.test_wait: a connection whose peer ends (end of file) is ready; wait returns
    /// it when the child ends, and recv throws end of file.
    func testWaitOnAConnectionWakesWhenThePeerEnds() throws {
        try forEachMethod { method in
            let (here, there) = try Pipe()
            let p = try started(Port6HoldThenEnd(conn: there, seconds: 0.3), method)
            there.close()
            let (ready, elapsed) = timed { Multiprocessing.wait(on: [here], timeout: 20) }
            XCTAssertEqual(ready.count, 1, "\(method): the peer's end was not seen (\(elapsed) s)")
            XCTAssertThrowsError(try here.recv(Int.self)) {
                XCTAssertEqual(($0 as? ConnectionError)?.code, .endOfFile, "\(method): \($0)")
            }
            try joinOrKill(p)
        }
    }

    /// test_semaphore: a semaphore is not owned: a child that never acquired it releases it
    /// twice and this process acquires twice.
    func testSemaphoreReleasedByAChildThatNeverAcquiredIt() throws {
        try forEachMethod { method in
            let semaphore = try Multiprocessing.Semaphore(value: 0)
            XCTAssertFalse(semaphore.acquire(blocking: false))
            let p = try started(Port6ReleaseSemaphore(semaphore: semaphore, times: 2), method)
            XCTAssertTrue(semaphore.acquire(timeout: 30), "\(method)")
            XCTAssertTrue(semaphore.acquire(timeout: 30), "\(method)")
            try joinOrKill(p)
            XCTAssertEqual(p.exitCode, 0)
            XCTAssertFalse(semaphore.acquire(blocking: false))
            XCTAssertEqual(semaphore.value, 0)
        }
    }

    /// test_bounded_semaphore in a child: releasing a full BoundedSemaphore there throws;
    /// once this process took a unit, a child's release gives it back.
    func testBoundedSemaphoreOverReleasedInAChild() throws {
        try forEachMethod { method in
            let semaphore = try BoundedSemaphore(value: 2)
            let report = try Queue<String>()
            let p1 = try started(Port6ReleaseBounded(semaphore: semaphore, report: report), method)
            XCTAssertEqual(try report.get(timeout: 30), "releasedTooManyTimes", "\(method)")
            try joinOrKill(p1)
            XCTAssertEqual(semaphore.value, 2)
            XCTAssertTrue(semaphore.acquire(blocking: false))
            let p2 = try started(Port6ReleaseBounded(semaphore: semaphore, report: report), method)
            XCTAssertEqual(try report.get(timeout: 30), "released", "\(method)")
            try joinOrKill(p2)
            XCTAssertEqual(semaphore.value, 2)
        }
    }

    /// test_terminate with a reader waiting in the stream: terminate() ends its wait (a
    /// failed result or the end), it does not hang.
    func testTerminateEndsAThreadWaitingInImapNext() throws {
        try forEachMethod { method in
            let pool = try Pool(processes: 1, startMethod: method)
            let stream = try pool.imap(SlowSqr(seconds: 30), [1, 2])
            let outcome = Port6Log<String>()
            let thread = TestThread {
                switch stream.next() {
                case .success(let v)?: outcome.append("value \(v)")
                case .failure(let e)?: outcome.append("failure \(type(of: e))")
                case nil: outcome.append("end")
                }
            }
            usleep(300_000)
            let (_, elapsed) = timed { pool.terminate() }
            XCTAssertLessThan(elapsed, 10, "\(method)")
            XCTAssertTrue(try thread.wait(20), "\(method): next() still waits after terminate()")
            XCTAssertFalse(outcome.all.first?.hasPrefix("value") ?? false, "\(method): \(outcome.all)")
            try pool.join()
        }
    }

    /// close() and join() twice, terminate() after join(): all allowed, as in Python.
    func testCloseAndJoinTwiceThenTerminate() throws {
        try forEachMethod { method in
            let pool = try Pool(processes: 1, startMethod: method)
            XCTAssertEqual(try pool.apply(Sqr(), 3), 9)
            pool.close()
            pool.close()
            try pool.join()
            try pool.join()
            pool.terminate()
            try pool.join()
        }
    }

    /// test_enter: after close() every new call is refused ("Pool not running"), at once;
    /// work submitted before completes.
    func testAClosedPoolRefusesNewWork() throws {
        try forEachMethod([.fork]) { method in
            let pool = try Pool(processes: 1, startMethod: method)
            let before = try pool.applyAsync(SlowSqr(seconds: 0.2), 4)
            pool.close()
            func refused(_ what: String, _ body: () throws -> Void) {
                let (result, elapsed) = timed { Result { try body() } }
                assertQuick(elapsed, what)
                switch result {
                case .success: XCTFail("\(what) after close() was accepted")
                case .failure(let error):
                    XCTAssertEqual((error as? PoolError)?.code, .closed, "\(what): \(error)")
                }
            }
            refused("apply") { _ = try pool.apply(Sqr(), 1) }
            refused("applyAsync") { _ = try pool.applyAsync(Sqr(), 1) }
            refused("map") { _ = try pool.map(Sqr(), [1, 2]) }
            refused("mapAsync") { _ = try pool.mapAsync(Sqr(), [1, 2]) }
            refused("imap") { _ = try pool.imap(Sqr(), [1, 2]) }
            refused("imapUnordered") { _ = try pool.imapUnordered(Sqr(), [1, 2]) }
            refused("starmap") { _ = try pool.starmap(Mul6(), [(1, 2)]) }
            XCTAssertEqual(try before.get(timeout: 30), 16)
            try pool.join()
        }
    }

    /// test_async: one result got from two threads at once; both get it.
    func testAsyncResultGotFromTwoThreads() throws {
        try forEachMethod([.fork, .spawn]) { method in
            try Pool.with(processes: 1, startMethod: method) { pool in
                let result = try pool.applyAsync(SlowSqr(seconds: 0.3), 7)
                let got = Port6Log<Int>()
                let threads = (0..<2).map { _ in TestThread { got.append(try result.get(timeout: 30)) } }
                for t in threads { XCTAssertTrue(try t.wait(40)) }
                XCTAssertEqual(got.all, [49, 49], "\(method)")
            }
        }
    }

    /// test_async_timeout: wait(timeout) returns false in time and get(timeout) throws
    /// TimeoutError while the task runs; ready() and successful() follow; then the value.
    func testWaitWithTimeoutOnASlowApplyAsync() throws {
        try forEachMethod([.forkserver]) { method in
            try Pool.with(processes: 1, startMethod: method) { pool in
                let result = try pool.applyAsync(SlowSqr(seconds: 1.5), 5)
                let (ready, elapsed) = timed { result.wait(timeout: 0.2) }
                XCTAssertFalse(ready)
                assertWaited(elapsed, 0.2, "wait(timeout: 0.2)")
                XCTAssertFalse(result.isReady)
                XCTAssertThrowsError(try result.successful()) {
                    XCTAssertEqual(($0 as? PoolError)?.code, .stillRunning, "\($0)")
                }
                XCTAssertThrowsError(try result.get(timeout: 0.1)) { XCTAssertTrue($0 is TimeoutError, "\($0)") }
                XCTAssertTrue(result.wait(timeout: 30))
                XCTAssertTrue(result.isReady)
                XCTAssertTrue(try result.successful())
                XCTAssertEqual(try result.get(timeout: 0), 25)
            }
        }
    }

    /// test_async / test_async_error_callback: a callback (or error callback) has run when
    /// get() returns (or throws) — Python calls it before it sets the result ready.
    func testCallbacksHaveRunWhenGetReturns() throws {
        try forEachMethod([.fork]) { method in
            try Pool.with(processes: 2, startMethod: method) { pool in
                for round in 0..<20 {
                    let values = Port6Log<Int>()
                    let errors = Port6Log<String>()
                    let lists = Port6Log<[Int]>()
                    let r1 = try pool.applyAsync(Sqr(), round, callback: { values.append($0) })
                    let r2 = try pool.applyAsync(Port6Raise(), round, errorCallback: { errors.append("\($0)") })
                    let r3 = try pool.mapAsync(Sqr(), [1, 2, round], callback: { lists.append($0) })
                    XCTAssertEqual(try r1.get(timeout: 30), round * round)
                    XCTAssertEqual(values.all, [round * round], "round \(round): callback not run when get returned")
                    XCTAssertThrowsError(try r2.get(timeout: 30))
                    XCTAssertEqual(errors.all.count, 1, "round \(round): error callback not run when get threw")
                    XCTAssertEqual(try r3.get(timeout: 30), [1, 4, round * round])
                    XCTAssertEqual(lists.all, [[1, 4, round * round]], "round \(round)")
                }
            }
        }
    }
}

/// CPython's `mul` for starmap.
struct Mul6: ParallelFunction {
    func callAsFunction(_ args: Arguments<Int, Int>) -> Int {
        let (a, b) = args.values
        return a * b
    }
}

// MARK: managers

final class Port6ManagerPortTests: ManagerPortTestCase {
    /// shutdown() while a thread waits in a queue proxy's get() without a timeout: the get
    /// fails (Python: EOFError or ConnectionError from the closed connection), it does not
    /// hang.
    func testShutdownEndsAThreadWaitingInQueueGet() throws {
        let queue = try manager.queue(of: Int.self)
        let outcome = Port6Log<String>()
        let thread = TestThread {
            do {
                let v = try queue.get()
                outcome.append("got \(v)")
            } catch {
                outcome.append("threw \(type(of: error))")
            }
        }
        usleep(300_000)
        XCTAssertTrue(outcome.all.isEmpty)
        let (_, elapsed) = timed { manager.shutdown() }
        XCTAssertLessThan(elapsed, 10)
        XCTAssertTrue(try thread.wait(20), "get() still waits after the manager's shutdown")
        XCTAssertTrue(outcome.all.first?.hasPrefix("threw") ?? false, "\(outcome.all)")
    }

    /// shutdown() while a child waits in a lock proxy's acquire() without a timeout: the
    /// child's acquire fails and the child ends with status 1 (Python: EOFError in the child).
    func testShutdownEndsAChildWaitingOnALockProxy() throws {
        try forEachMethod([.fork, .spawn]) { method in
            let manager = try Manager()
            defer { manager.shutdown() }
            let lock = try manager.lock()
            XCTAssertTrue(try lock.acquire())
            let started = try Event()
            let p = try self.started(Port6AcquireManagerLock(lock: lock, started: started), method)
            XCTAssertTrue(started.wait(timeout: 30))
            usleep(300_000)
            XCTAssertTrue(p.isAlive, "\(method): the child got a held lock")
            manager.shutdown()
            try joinOrKill(p, 20, "after the manager's shutdown")
            XCTAssertEqual(p.exitCode, 1, "\(method)")
        }
    }

    /// The server killed (SIGKILL): every proxy call throws, those without a timeout too
    /// (Python: ConnectionRefusedError / EOFError), none hangs.
    func testProxiesOfAKilledServerThrow() throws {
        let dict = try manager.dict(String.self, Int.self)
        let queue = try manager.queue(of: Int.self)
        let lock = try manager.lock()
        try dict.set("a", 1)
        XCTAssertEqual(try dict.get("a"), 1)
        XCTAssertEqual(kill(manager.serverPID, SIGKILL), 0)
        usleep(200_000)
        let outcome = Port6Log<String>()
        let thread = TestThread {
            for (name, call) in [
                ("dict.get", { _ = try dict.get("a") }),
                ("dict.set", { try dict.set("b", 2) }),
                ("queue.get", { _ = try queue.get() }),
                ("queue.put", { try queue.put(1) }),
                ("lock.acquire", { _ = try lock.acquire() }),
            ] as [(String, () throws -> Void)] {
                do {
                    try call()
                    outcome.append("\(name) worked")
                } catch {
                    outcome.append("\(name) threw")
                }
            }
        }
        XCTAssertTrue(try thread.wait(60), "a proxy call hangs on a killed server: \(outcome.all)")
        XCTAssertEqual(
            outcome.all, ["dict.get threw", "dict.set threw", "queue.get threw", "queue.put threw", "lock.acquire threw"])
    }

    /// Two children increment one dict entry 40 times each under a manager lock: 80.
    func testIncrementsUnderAManagerLockFromTwoChildren() throws {
        try forEachMethod { method in
            let dict = try manager.dict(String.self, Int.self)
            let lock = try manager.lock()
            let ps = try (0..<2).map { _ in
                try started(Port6IncrementUnderManagerLock(dict: dict, lock: lock, n: 40), method)
            }
            for p in ps {
                try joinOrKill(p, 60)
                XCTAssertEqual(p.exitCode, 0, "\(method)")
            }
            XCTAssertEqual(try dict.get("n"), 80, "\(method)")
            XCTAssertFalse(try lock.isLocked())
        }
    }

    /// test_joinable_queue: join() waits until a child has marked every item done;
    /// join(timeout) times out before.
    func testManagerJoinableQueueJoinWaitsForAChild() throws {
        try forEachMethod([.fork, .forkserver]) { method in
            let queue = try manager.joinableQueue(of: Int.self)
            try queue.put(1)
            try queue.put(2)
            let (early, elapsed) = try timed { try queue.join(timeout: 0.2) }
            XCTAssertFalse(early)
            assertWaited(elapsed, 0.2, "join(timeout: 0.2)")
            let p = try started(Port6DrainManagerQueue(queue: queue, n: 2), method)
            let joined = Port6Log<Bool>()
            let thread = TestThread { joined.append(try queue.join()) }
            XCTAssertTrue(try thread.wait(40), "\(method): join() did not return")
            XCTAssertEqual(joined.all, [true])
            XCTAssertEqual(try queue.count(), 0)
            try joinOrKill(p)
            XCTAssertEqual(p.exitCode, 0, "\(method)")
        }
    }
}

// MARK: second batch

/// Sends one number and ends.
struct Port6SendOne: ParallelFunction {
    var conn: Connection
    var value: Int
    func callAsFunction(_: Void) throws { try conn.send(value) }
}

/// An initializer that sleeps (a worker slow to start).
struct Port6SlowInit: ParallelFunction {
    var seconds: Double
    func callAsFunction(_: Void) { usleep(UInt32(seconds * 1e6)) }
}

/// The worker's pid.
struct Port6WorkerPID: ParallelFunction {
    func callAsFunction(_ x: Int) -> Int32 {
        usleep(20_000)
        return getpid()
    }
}

/// Takes the lock, says so, and holds it (until killed).
struct Port6HoldLock: ParallelFunction {
    var lock: Lock
    var held: Event
    func callAsFunction(_: Void) throws {
        _ = try lock.acquire()
        held.set()
        usleep(30_000_000)
    }
}

/// Waits until `ready` waiters are counted, then notifies all under the lock.
struct Port6NotifyAllWhenReady: ParallelFunction {
    var condition: Condition
    var waiting: SharedValue<Int>
    var ready: Int
    func callAsFunction(_: Void) throws {
        let end = Date().addingTimeInterval(30)
        while waiting.withLock({ $0 }) < ready && Date() < end { usleep(5_000) }
        usleep(100_000)
        try condition.withLock { try condition.notifyAll() }
    }
}

/// Gets one item (and marks it done only if `done`).
struct Port6GetOne: ParallelFunction {
    var queue: JoinableQueue<Int>
    var done: Bool
    var report: Queue<Int>
    func callAsFunction(_: Void) throws {
        let v = try queue.get(timeout: 30)
        if done { try queue.taskDone() }
        try report.put(v)
    }
}

/// Waits on the event (10 s at most) and reports what wait returned.
struct Port6WaitEventReport: ParallelFunction {
    var event: Event
    var report: Queue<String>
    func callAsFunction(_: Void) throws { try report.put("\(event.wait(timeout: 10))") }
}

/// Marks one item done without getting it.
struct Port6TaskDoneOnly: ParallelFunction {
    var queue: JoinableQueue<Int>
    func callAsFunction(_: Void) throws { try queue.taskDone() }
}

final class Port6MorePortTests: PortTestCase {
    /// One end of a pipe given to two children (Python passes the same Connection to several
    /// Processes): both children's messages arrive.
    func testSameConnectionEndGivenToTwoChildren() throws {
        try forEachMethod { method in
            let (here, there) = try Pipe()
            let p1 = try started(Port6SendOne(conn: there, value: 1), method)
            let p2 = try started(Port6SendOne(conn: there, value: 2), method)
            var got: [Int] = []
            for _ in 0..<2 {
                guard try here.poll(timeout: 30) else { XCTFail("\(method): a message did not come"); break }
                got.append(try here.recv(Int.self))
            }
            XCTAssertEqual(got.sorted(), [1, 2], "\(method)")
            try joinOrKill(p1)
            try joinOrKill(p2)
            XCTAssertEqual(p1.exitCode, 0, "\(method)")
            XCTAssertEqual(p2.exitCode, 0, "\(method)")
        }
    }

    /// test_terminate with workers still in their initializer: terminate() returns at once,
    /// join() too, and the call submitted fails instead of waiting.
    func testTerminateWhileWorkersAreInTheirInitializer() throws {
        try forEachMethod([.fork, .spawn]) { method in
            let pool = try Pool(processes: 2, startMethod: method, initializer: Port6SlowInit(seconds: 30))
            let result = try pool.applyAsync(Sqr(), 3)
            usleep(300_000)
            let (_, elapsed) = timed { pool.terminate() }
            XCTAssertLessThan(elapsed, 5, "\(method): terminate()")
            let (_, joinElapsed) = try timed { try pool.join() }
            XCTAssertLessThan(joinElapsed, 5, "\(method): join()")
            XCTAssertThrowsError(try result.get(timeout: 5), "\(method)") {
                XCTAssertFalse($0 is TimeoutError, "\(method): the call was left waiting: \($0)")
            }
        }
    }

    /// Pool._maintain_pool: workers killed while idle are replaced; the next map runs on the
    /// same number of live workers.
    func testWorkersKilledWhileIdleAreReplaced() throws {
        try forEachMethod([.fork, .forkserver]) { method in
            try Pool.with(processes: 2, startMethod: method) { pool in
                let before = Set(try pool.map(Port6WorkerPID(), Array(0..<20)))
                XCTAssertFalse(before.isEmpty)
                for pid in before { kill(pid, SIGKILL) }
                usleep(300_000)
                let after = try pool.map(Port6WorkerPID(), Array(0..<20))
                XCTAssertEqual(after.count, 20, "\(method)")
                XCTAssertTrue(Set(after).isDisjoint(with: before), "\(method): a killed worker ran tasks")
                XCTAssertLessThanOrEqual(Set(after).count, 2, "\(method)")
                XCTAssertEqual(try pool.apply(Sqr(), 12), 144)
            }
        }
    }

    /// test_shared_memory_basics: a block opened by name has the creator's size (on Linux
    /// Python's is the size asked for, st_size), also when it is not a multiple of the page.
    func testSharedMemoryOpenedByNameHasTheCreatorsSize() throws {
        for size in [1, 512, 4096, 10_000] {
            let created = try SharedMemory(create: true, size: size)
            defer { created.close() }
            XCTAssertEqual(created.size, size, "created with \(size)")
            let opened = try SharedMemory(name: created.name)
            XCTAssertEqual(opened.size, size, "opened a block of \(size)")
            XCTAssertEqual(opened.bytes.count, size)
            opened.close()
        }
    }

    /// _TestLock: acquire(timeout) while the holder process is stopped (not dead) times out
    /// in time; the lock is still held; once the holder is killed the lock is free again.
    func testLockTimeoutWhileTheHolderIsStopped() throws {
        try forEachMethod([.fork, .spawn]) { method in
            let lock = try Lock()
            let held = try Event()
            let p = try started(Port6HoldLock(lock: lock, held: held), method)
            XCTAssertTrue(held.wait(timeout: 30))
            let pid = try XCTUnwrap(p.pid)
            kill(pid, SIGSTOP)
            let (got, elapsed) = try timed { try lock.acquire(timeout: 0.3) }
            XCTAssertFalse(got, "\(method)")
            assertWaited(elapsed, 0.3, "\(method): acquire(timeout: 0.3)")
            XCTAssertTrue(lock.isLocked)
            try p.kill()
            kill(pid, SIGCONT)
            XCTAssertTrue(try p.join(timeout: 10))
            XCTAssertTrue(try lock.acquire(timeout: 5), "\(method): the dead holder's lock")
            try lock.release()
        }
    }

    /// test_notify_all the other way round: threads of this process wait on a condition and a
    /// child notifies them all.
    func testChildNotifiesAllThreadsWaitingHere() throws {
        try forEachMethod { method in
            let condition = try Condition()
            let waiting = try SharedValue<Int>(0)
            let woken = Port6Log<Bool>()
            let threads = (0..<3).map { _ in
                TestThread {
                    try condition.withLock {
                        waiting.withLock { $0 += 1 }
                        woken.append(try condition.wait(timeout: 30))
                    }
                }
            }
            let p = try started(Port6NotifyAllWhenReady(condition: condition, waiting: waiting, ready: 3), method)
            for t in threads { XCTAssertTrue(try t.wait(40), "\(method): a waiter was not woken") }
            XCTAssertEqual(woken.all, [true, true, true], "\(method)")
            try joinOrKill(p)
            XCTAssertEqual(p.exitCode, 0, "\(method)")
        }
    }

    /// lock_tests EventTests.test_set_and_clear (gh-57711): waiters in threads and in a child
    /// all return true when set() is followed at once by clear().
    func testEventSetThenClearWakesItsWaiters() throws {
        try forEachMethod([.fork, .spawn]) { method in
            let event = try Event()
            let report = try Queue<String>()
            let p = try started(Port6WaitEventReport(event: event, report: report), method)
            let results = Port6Log<Bool>()
            let threads = (0..<3).map { _ in TestThread { results.append(event.wait(timeout: 10)) } }
            XCTAssertTrue(eventually(within: 30) { (event.waiterCount ?? 0) >= 4 }, "\(method): waiters")
            event.set()
            event.clear()
            for t in threads { XCTAssertTrue(try t.wait(20)) }
            XCTAssertEqual(results.all, [true, true, true], "\(method)")
            XCTAssertEqual(try report.get(timeout: 20), "true", "\(method): the child's wait")
            try joinOrKill(p)
        }
    }

    /// test_task_done: task_done may come from another process than the get; join() counts
    /// tasks, not who marks them.
    func testTaskDoneFromAnotherProcessThanTheGet() throws {
        try forEachMethod([.fork, .spawn]) { method in
            let queue = try JoinableQueue<Int>()
            let report = try Queue<Int>()
            try queue.put(9)
            let getter = try started(Port6GetOne(queue: queue, done: false, report: report), method)
            XCTAssertEqual(try report.get(timeout: 30), 9)
            try joinOrKill(getter)
            XCTAssertFalse(try queue.join(timeout: 0.1))
            let marker = try started(Port6TaskDoneOnly(queue: queue), method)
            try joinOrKill(marker)
            XCTAssertEqual(marker.exitCode, 0, "\(method)")
            XCTAssertTrue(try queue.join(timeout: 5), "\(method)")
        }
    }
}

final class Port6MoreManagerPortTests: ManagerPortTestCase {
    /// shutdown() while a thread waits to put on a full manager queue: the put fails, it
    /// does not hang.
    func testShutdownEndsAThreadWaitingToPutOnAFullQueue() throws {
        let queue = try manager.queue(of: Int.self, maxSize: 1)
        try queue.put(1)
        let outcome = Port6Log<String>()
        let thread = TestThread {
            do {
                try queue.put(2)
                outcome.append("put")
            } catch {
                outcome.append("threw \(type(of: error))")
            }
        }
        usleep(300_000)
        XCTAssertTrue(outcome.all.isEmpty)
        manager.shutdown()
        XCTAssertTrue(try thread.wait(20), "put() still waits after the manager's shutdown")
        XCTAssertTrue(outcome.all.first?.hasPrefix("threw") ?? false, "\(outcome.all)")
    }
}

// MARK: third batch: several threads on one object

/// Reports how many active children it sees, then starts one of its own and reports again.
struct Port6ReportActiveChildren: ParallelFunction {
    var report: Queue<Int>
    func callAsFunction(_: Void) throws {
        try report.put(Multiprocessing.activeChildren().count)
        let child = Multiprocessing.Process(target: SleepFor(seconds: 0.2))
        try child.start()
        try report.put(Multiprocessing.activeChildren().count)
        try child.join()
        try report.put(Multiprocessing.activeChildren().count)
    }
}

/// Gets one item with a timeout; reports how long it waited (ms) and whether it got one.
struct Port6TimedGetReport: ParallelFunction {
    var queue: Queue<Int>
    var report: Queue<[Int]>
    var seconds: Double
    func callAsFunction(_: Void) throws {
        let start = monotonicNow()
        var got = -1
        do { got = try queue.get(timeout: seconds) } catch is Empty {}
        try report.put([got, Int((monotonicNow() - start) * 1000)])
    }
}

/// Echoes numbers until a negative one.
struct Port6Echo: ParallelFunction {
    var conn: Connection
    func callAsFunction(_: Void) throws {
        while true {
            let v = try conn.recv(Int.self)
            try conn.send(v)
            if v < 0 { return }
        }
    }
}

final class Port6ThreadPortTests: PortTestCase {
    /// test_get / test_timeout: a get(timeout) honours its timeout while another thread of
    /// this process waits in get() without one (Python: _rlock.acquire(block, timeout)); an
    /// item put afterwards goes to the waiting thread.
    func testTimedGetWhileAnotherThreadWaitsWithoutTimeout() throws {
        let queue = try Queue<Int>()
        let got = Port6Log<Int>()
        let waiter = TestThread { got.append(try queue.get()) }
        usleep(200_000)
        let (result, elapsed) = timed { Result { try queue.get(timeout: 0.3) } }
        XCTAssertThrowsError(try result.get()) { XCTAssertTrue($0 is Empty, "\($0)") }
        assertWaited(elapsed, 0.3, "get(timeout: 0.3) while another thread waits")
        try queue.put(5)
        XCTAssertTrue(try waiter.wait(20))
        XCTAssertEqual(got.all, [5])
    }

    /// The same across processes: a child's get(timeout) while this process waits in get().
    func testTimedGetInAChildWhileThisProcessWaitsWithoutTimeout() throws {
        try forEachMethod { method in
            let queue = try Queue<Int>()
            let report = try Queue<[Int]>()
            let got = Port6Log<Int>()
            let waiter = TestThread { got.append(try queue.get()) }
            usleep(100_000)
            let p = try started(Port6TimedGetReport(queue: queue, report: report, seconds: 0.3), method)
            let r = try report.get(timeout: 30)
            XCTAssertEqual(r[0], -1, "\(method)")
            XCTAssertGreaterThanOrEqual(r[1], 290, "\(method): the child's get returned early")
            XCTAssertLessThan(r[1], 2300, "\(method): the child's get(timeout: 0.3) took \(r[1]) ms")
            try joinOrKill(p)
            try queue.put(8)
            XCTAssertTrue(try waiter.wait(20))
            XCTAssertEqual(got.all, [8], "\(method)")
        }
    }

    /// test_put: a put(timeout) on a full queue honours its timeout while another thread
    /// waits in put() without one; a get then lets the waiting put in.
    func testTimedPutWhileAnotherThreadWaitsForRoom() throws {
        let queue = try Queue<Int>(maxSize: 1)
        try queue.put(1)
        let waiter = TestThread { try queue.put(2) }
        usleep(200_000)
        let (result, elapsed) = timed { Result { try queue.put(3, timeout: 0.3) } }
        XCTAssertThrowsError(try result.get()) { XCTAssertTrue($0 is Full, "\($0)") }
        assertWaited(elapsed, 0.3, "put(timeout: 0.3) while another thread waits")
        XCTAssertEqual(try queue.get(timeout: 5), 1)
        XCTAssertTrue(try waiter.wait(20))
        XCTAssertEqual(try queue.get(timeout: 5), 2)
        XCTAssertTrue(queue.isEmpty)
    }

    /// test_connection's poll timings while another thread waits in recv() on the same end:
    /// poll(timeout) returns false in time.
    func testPollTimeoutWhileAnotherThreadWaitsInRecv() throws {
        let (a, b) = try Pipe()
        let got = Port6Log<Int>()
        let reader = TestThread { got.append(try a.recv(Int.self)) }
        usleep(200_000)
        let (ready, elapsed) = try timed { try a.poll(timeout: 0.3) }
        XCTAssertFalse(ready)
        assertWaited(elapsed, 0.3, "poll(timeout: 0.3) while another thread waits in recv")
        try b.send(4)
        XCTAssertTrue(try reader.wait(20))
        XCTAssertEqual(got.all, [4])
    }

    /// A reader thread and a writer thread on one duplex end (a request/answer loop with a
    /// child): sends are not held up by the waiting recv.
    func testSendWhileAnotherThreadWaitsInRecv() throws {
        try forEachMethod { method in
            let (a, b) = try Pipe()
            let p = try started(Port6Echo(conn: b), method)
            b.close()
            let got = Port6Log<Int>()
            let reader = TestThread {
                while true {
                    let v = try a.recv(Int.self)
                    got.append(v)
                    if v < 0 { return }
                }
            }
            usleep(100_000)
            let (_, elapsed) = try timed {
                for i in 0..<50 { try a.send(i) }; try a.send(-1)
            }
            XCTAssertLessThan(elapsed, 10, "\(method)")
            XCTAssertTrue(try reader.wait(30), "\(method): the reader did not get every echo")
            XCTAssertEqual(got.all, Array(0..<50) + [-1], "\(method)")
            try joinOrKill(p)
        }
    }

    /// test_imap's IMapIterator.next(timeout) while another thread waits in next() without
    /// one: the timed one honours its timeout.
    func testTimedImapNextWhileAnotherThreadWaits() throws {
        try Pool.with(processes: 1, startMethod: .fork) { pool in
            let stream = try pool.imap(SlowSqr(seconds: 1.5), [2, 3])
            let got = Port6Log<Int>()
            let waiter = TestThread {
                if case .success(let v)? = stream.next() { got.append(v) }
            }
            usleep(100_000)
            let (result, elapsed) = timed { Result { try stream.next(timeout: 0.3) } }
            XCTAssertThrowsError(try result.get()) { XCTAssertTrue($0 is TimeoutError, "\($0)") }
            assertWaited(elapsed, 0.3, "next(timeout: 0.3) while another thread waits in next()")
            XCTAssertTrue(try waiter.wait(30))
            XCTAssertEqual(got.all, [4])
            XCTAssertEqual(try stream.next(timeout: 30)?.get(), 9)
        }
    }

    /// An RLock held by one thread: another thread's acquire(timeout) returns false in time.
    func testRLockTimeoutFromAnotherThread() throws {
        let rlock = try RLock()
        XCTAssertTrue(try rlock.acquire())
        XCTAssertTrue(try rlock.acquire())
        let outcome = Port6Log<String>()
        let other = TestThread {
            let (got, elapsed) = try timed { try rlock.acquire(timeout: 0.3) }
            outcome.append("\(got) \(elapsed >= 0.29 && elapsed < 2.3)")
        }
        XCTAssertTrue(try other.wait(20))
        XCTAssertEqual(outcome.all, ["false true"])
        try rlock.release()
        try rlock.release()
        XCTAssertFalse(rlock.isLocked)
    }

    /// test_active_children in a child: a forked child's active_children() are its own
    /// (none at first, not its parent's others), then the one it starts.
    func testActiveChildrenInAChildAreItsOwn() throws {
        let sibling = try started(SleepFor(seconds: 5), .fork)
        defer {
            try? sibling.kill()
            _ = try? sibling.join(timeout: 10)
        }
        try forEachMethod { method in
            let report = try Queue<Int>()
            let p = try started(Port6ReportActiveChildren(report: report), method)
            XCTAssertEqual(try report.get(timeout: 30), 0, "\(method): the child sees its parent's children")
            XCTAssertEqual(try report.get(timeout: 30), 1, "\(method)")
            XCTAssertEqual(try report.get(timeout: 30), 0, "\(method)")
            try joinOrKill(p)
        }
    }
}

final class Port6ThreadManagerPortTests: ManagerPortTestCase {
    /// BaseProxy keeps a connection per thread: while one thread waits in a queue proxy's
    /// get(), other threads' calls are answered at once and their timeouts hold.
    func testProxyCallsWhileAnotherThreadWaitsInGet() throws {
        let queue = try manager.queue(of: Int.self)
        let other = try manager.queue(of: Int.self)
        let dict = try manager.dict(String.self, Int.self)
        let got = Port6Log<Int>()
        let waiter = TestThread { got.append(try queue.get()) }
        usleep(200_000)
        let (_, quick) = try timed {
            try dict.set("a", 1)
            XCTAssertEqual(try dict.get("a"), 1)
        }
        assertQuick(quick, "dict calls while another thread waits in get()")
        let (result, elapsed) = timed { Result { try other.get(timeout: 0.3) } }
        XCTAssertThrowsError(try result.get()) { XCTAssertTrue($0 is Empty, "\($0)") }
        assertWaited(elapsed, 0.3, "get(timeout: 0.3) of another queue")
        try queue.put(3)
        XCTAssertTrue(try waiter.wait(20))
        XCTAssertEqual(got.all, [3])
    }
}

// MARK: fourth batch: under stress

/// Puts `n` items of `size` bytes (tagged, numbered), each retried with a 3 ms timeout
/// until it goes in: many puts are abandoned in the middle of an item.
struct Port6ImpatientProducer: ParallelFunction {
    var queue: Queue<[UInt8]>
    var tag: UInt8
    var n: Int
    var size: Int
    var report: Queue<Int>
    func callAsFunction(_: Void) throws {
        var timeouts = 0
        for i in 0..<n {
            var item = [UInt8](repeating: tag &+ UInt8(i & 0x7f), count: size)
            item[0] = tag
            item[1] = UInt8(i)
            while true {
                do { try queue.put(item, timeout: 0.003); break } catch is Full { timeouts += 1 }
            }
        }
        try report.put(timeouts)
    }
}

/// Puts its pid.
struct Port6PutPID: ParallelFunction {
    var queue: Queue<Int32>
    func callAsFunction(_: Void) throws { try queue.put(getpid()) }
}

final class Port6StressPortTests: PortTestCase {
    /// TestForkAwareThreadLock / _TestProcess with threads: 40 `.fork` children started one
    /// after another while another thread keeps a pool busy; each runs and ends at once.
    func testForkedChildrenWhileAPoolMapsOnAnotherThread() throws {
        try Pool.with(processes: 2, startMethod: .forkserver) { pool in
            let stop = Port6Log<Bool>()
            let mapper = TestThread {
                while stop.all.isEmpty { _ = try pool.map(Sqr(), Array(0..<2000), chunkSize: 1) }
            }
            defer { stop.append(true) }
            let queue = try Queue<Int32>()
            for i in 0..<40 {
                let p = Multiprocessing.Process(target: Port6PutPID(queue: queue), startMethod: .fork)
                let (_, elapsed) = try timed {
                    try p.start()
                    XCTAssertEqual(try queue.get(timeout: 20), p.pid, "child \(i)")
                    try joinOrKill(p, 20, "child \(i)")
                }
                XCTAssertEqual(p.exitCode, 0, "child \(i)")
                XCTAssertLessThan(elapsed, 10, "child \(i)")
            }
            stop.append(true)
            XCTAssertTrue(try mapper.wait(30))
        }
    }

    /// _TestQueue.test_put / test_get (no item lost, doubled or torn): two children put 40
    /// items of 10 kB each through a 4 kB buffer with 3 ms timeouts, retrying each until it
    /// goes in (so many are abandoned half-written); a slow consumer gets each producer's
    /// items whole, once, in order, and nothing else.
    func testItemsOfImpatientProducersArriveWholeAndOnce() throws {
        try forEachMethod([.fork, .spawn]) { method in
            let queue = try Queue<[UInt8]>(bufferSize: 4096)
            let report = try Queue<Int>()
            let n = 40
            let ps = try (0..<2).map { t in
                try started(
                    Port6ImpatientProducer(queue: queue, tag: UInt8(t * 100), n: n, size: 10_000, report: report), method)
            }
            var next: [UInt8: Int] = [0: 0, 100: 0]
            for _ in 0..<(2 * n) {
                usleep(2_000)
                let item = try queue.get(timeout: 30)
                let (tag, i) = (item[0], Int(item[1]))
                XCTAssertEqual(item.count, 10_000, "\(method)")
                XCTAssertTrue(item.dropFirst(2).allSatisfy { $0 == tag &+ UInt8(i & 0x7f) }, "\(method): item \(tag)/\(i) torn")
                XCTAssertEqual(next[tag], i, "\(method): producer \(tag) out of order or doubled")
                next[tag] = i + 1
            }
            let abandoned = try report.get(timeout: 30) + report.get(timeout: 30)
            for p in ps { try joinOrKill(p) }
            XCTAssertGreaterThan(abandoned, 0, "\(method): no put timed out: the case tested nothing")
            XCTAssertThrowsError(try queue.get(timeout: 0.3), "\(method): an item too many") { XCTAssertTrue($0 is Empty) }
            XCTAssertTrue(queue.isEmpty)
        }
    }
}
