// Edge cases of CPython's tests (Lib/test/_test_multiprocessing.py and the lock_tests.py cases
// it shares) not covered by the other ports; each case names the CPython test it ports.
//
// CPython test                                          → Swift test (MoreEdgePortTests)
// _TestConnection.test_connection (recv of another type)→ testAFailedDecodeConsumesOnlyItsMessage
// _TestProcess._kill_process (terminate after the end)  → testTerminateAndKillOfAnEndedProcessDoNothing
// _TestConnection.test_connection (EOF, same process)   → testEndOfFileWhenTheOtherEndIsClosedHere
// lock_tests BoundedSemaphoreTests (release(n))         → testBoundedReleaseOfManyIsAllOrNothing
// _TestContainers.test_list (negative indexes)          → testListProxyNegativeIndexes
// _TestPool.test_imap (next after cancel)               → testACancelledStreamEnds
// _TestProcess.test_process (join from threads)         → testTwoThreadsJoinTheSameChild
// _TestPool.test_async_timeout (ready result)           → testGetOfAReadyResultWithNoTime
// _TestPool.test_imap (endless inputs, abandoned)       → testAbandonedEndlessImap
// _TestCondition.test_timeout (lock held again)         → testTimedOutConditionWaitHoldsTheLock
// _TestProcess.test_process (is_alive while joined)     → testStateReadWhileJoining
// _TestProcess._kill_process (join(0) at once), tagged
//   output held open by a grandchild                     → testJoinWithATimeoutOfAnEndedTaggedProcessIsQuick

import Dispatch
import Multiprocessing
import XCTest

#if canImport(Glibc)
import Glibc
#endif

final class MoreEdgePortTests: PortTestCase {
    /// message only: the next recv reads the next one.
    func testAFailedDecodeConsumesOnlyItsMessage() throws {
        let (a, b) = try Pipe()
        try a.send(1)
        try a.send("two")
        try a.send(3)
        XCTAssertThrowsError(try b.recv(String.self), "an Int read as a String")
        XCTAssertEqual(try b.recv(String.self), "two")
        XCTAssertEqual(try b.recv(Int.self), 3)
        XCTAssertFalse(try b.poll())
    }

    /// no error, the exit code stays.
    func testTerminateAndKillOfAnEndedProcessDoNothing() throws {
        try forEachMethod { method in
            let p = try started(SleepFor(seconds: 0), method)
            try joinOrKill(p)
            XCTAssertEqual(p.exitCode, 0)
            XCTAssertNoThrow(try p.terminate(), "\(method)")
            XCTAssertNoThrow(try p.kill(), "\(method)")
            XCTAssertTrue(try p.join(timeout: 1))
            XCTAssertEqual(p.exitCode, 0, "\(method)")
            XCTAssertFalse(p.isAlive)
        }
    }

    /// The other end closed in this same process: poll is true, recv throws end of file.
    func testEndOfFileWhenTheOtherEndIsClosedHere() throws {
        for duplex in [true, false] {
            let (reader, writer) = try Pipe(duplex: duplex)
            try writer.send(5)
            writer.close()
            XCTAssertTrue(try reader.poll(timeout: 1))
            XCTAssertEqual(try reader.recv(Int.self), 5)
            XCTAssertTrue(try reader.poll(timeout: 1), "poll at end of file (duplex \(duplex))")
            XCTAssertThrowsError(try reader.recv(Int.self)) {
                XCTAssertEqual(($0 as? ConnectionError)?.code, .endOfFile, "\($0)")
            }
        }
    }

    /// value raises ValueError and changes nothing.
    func testBoundedReleaseOfManyIsAllOrNothing() throws {
        let semaphore = try BoundedSemaphore(value: 2)
        XCTAssertTrue(semaphore.acquire())
        XCTAssertEqual(semaphore.value, 1)
        XCTAssertThrowsError(try semaphore.release(2)) {
            XCTAssertEqual(($0 as? SynchronizationError)?.code, .releasedTooManyTimes, "\($0)")
        }
        XCTAssertEqual(semaphore.value, 1, "a refused release(2) changed the value")
        try semaphore.release()
        XCTAssertEqual(semaphore.value, 2)
    }

    /// list does (a[-1] is the last element; insert(-1, x) goes before the last).
    func testListProxyNegativeIndexes() throws {
        let manager = try Manager()
        defer { manager.shutdown() }
        let list = try manager.list(of: Int.self)
        try list.extend([1, 2, 3])
        XCTAssertEqual(try list.get(-1), 3)
        XCTAssertEqual(try list.get(-3), 1)
        try list.set(-1, 30)
        XCTAssertEqual(try list.items(), [1, 2, 30])
        try list.insert(25, at: -1)
        XCTAssertEqual(try list.items(), [1, 2, 25, 30])
        XCTAssertEqual(try list.remove(at: -1), 30)
        XCTAssertEqual(try list.items(), [1, 2, 25])
    }

    /// After cancel(), an imap stream ends: next() is nil, at once.
    func testACancelledStreamEnds() throws {
        try Pool.with(processes: 2, startMethod: .fork) { pool in
            let stream = try pool.imap(SlowSqr(seconds: 0.05), Array(0..<100))
            XCTAssertEqual(try stream.nextValue(), 0)
            stream.cancel()
            let (next, elapsed) = timed { stream.next() }
            XCTAssertNil(next.map { _ in 1 })
            assertQuick(elapsed, "next() after cancel")
            XCTAssertNil(try stream.next(timeout: 1).map { _ in 1 })
        }
    }

    /// _TestProcess.test_process (join from several threads): two threads join the same child at once; both see it end.
    func testTwoThreadsJoinTheSameChild() throws {
        try forEachMethod { method in
            let p = try started(SleepFor(seconds: 0.3), method)
            let box = NSLockish()
            nonisolated(unsafe) var joined: [Bool] = []
            let threads = (0..<3).map { _ in
                TestThread {
                    let j = try p.join(timeout: 10)
                    box.withLock { joined.append(j) }
                }
            }
            for t in threads { XCTAssertTrue(try t.wait(15), "\(method): a join hung") }
            box.withLock { XCTAssertEqual(joined, [true, true, true], "\(method)") }
            XCTAssertEqual(p.exitCode, 0, "\(method)")
            XCTAssertFalse(p.isAlive)
        }
    }

    /// _TestPool.test_async_timeout (ready result): get with a zero or negative timeout on a ready result returns it.
    func testGetOfAReadyResultWithNoTime() throws {
        try Pool.with(processes: 1, startMethod: .fork) { pool in
            let r = try pool.applyAsync(Sqr(), 4)
            XCTAssertTrue(r.wait(timeout: 30))
            XCTAssertEqual(try r.get(timeout: -1), 16)
            XCTAssertEqual(try r.get(timeout: 0), 16)
            XCTAssertTrue(r.wait(timeout: -1))
        }
    }

    /// return promptly.
    /// _TestPool.test_imap over an endless sequence (a range, a stride), abandoned after five
    /// results: close and join return promptly.
    func testAbandonedEndlessImap() throws {
        for (label, kind) in [("range", 0), ("stride", 2)] {
            let pool = try Pool(processes: 2, startMethod: .fork)
            let stage = NSLockish()
            nonisolated(unsafe) var reached = "start"
            let t = TestThread {
                do {
                    let stream: ResultStream<Sqr>
                    switch kind {
                    case 0: stream = try pool.imap(Sqr(), 0...)
                    default: stream = try pool.imap(Sqr(), stride(from: 0, to: Int.max, by: 1))
                    }
                    stage.withLock { reached = "created" }
                    for i in 0..<5 { try require(try stream.nextValue() == i * i, "value \(i)") }
                    stage.withLock { reached = "read five" }
                }
                stage.withLock { reached = "dropped" }
                pool.close()
                stage.withLock { reached = "closed" }
                try pool.join()
                stage.withLock { reached = "joined" }
            }
            let ended = try t.wait(10)
            XCTAssertTrue(ended, "\(label): hung after stage '\(stage.withLock { reached })'")
            if !ended { pool.terminate() }
        }
    }

    /// _TestCondition.test_timeout: Condition.wait(timeout:) that times out returns false holding the lock again.
    func testTimedOutConditionWaitHoldsTheLock() throws {
        let condition = try Condition()
        _ = try condition.acquire()
        let (woken, elapsed) = try timed { try condition.wait(timeout: 0.1) }
        XCTAssertFalse(woken)
        assertWaited(elapsed, 0.1, "wait(timeout: 0.1)")
        XCTAssertTrue(condition.lock.isHeldByCurrentThread)
        try condition.release()
        XCTAssertFalse(condition.lock.isLocked)
    }

    /// _TestProcess.test_process (is_alive while joined): isAlive / exitCode read from another thread while the main thread joins.
    func testStateReadWhileJoining() throws {
        try forEachMethod([.fork]) { method in
            let p = try started(SleepFor(seconds: 0.3), method)
            let t = TestThread {
                var sawAlive = false
                while p.exitCode == nil { if p.isAlive { sawAlive = true }; usleep(1000) }
                try require(sawAlive, "never alive")
            }
            XCTAssertTrue(try p.join(timeout: 10))
            XCTAssertTrue(try t.wait(10))
        }
    }

    /// `join(0)` returns at once for a process that ended (CPython's `_kill_process` times it),
    /// also with `tagOutput` while a process it left running holds its output open: before
    /// session 22 every join then waited 2 s for the output's end, whatever its time limit.
    func testJoinWithATimeoutOfAnEndedTaggedProcessIsQuick() throws {
        try forEachMethod { method in
            let p = Multiprocessing.Process(target: LeaveASleeperOnStdout(), startMethod: method, tagOutput: true)
            try p.start()
            XCTAssertTrue(eventually(within: 20) { p.exitCode != nil }, "\(method): the child did not end")
            let (joined, elapsed) = try timed { try p.join(timeout: 0) }
            XCTAssertTrue(joined, "\(method)")
            assertQuick(elapsed, "\(method): join(timeout: 0) of an ended process")
            let (joinedAgain, elapsedAgain) = try timed { try p.join(timeout: 0.1) }
            XCTAssertTrue(joinedAgain, "\(method)")
            assertQuick(elapsedAgain, "\(method): join(timeout: 0.1) of an ended process")
            // Without a limit: at most 2 s for the output, once; then at once.
            let (_, waited) = try timed { try p.join() }
            XCTAssertLessThan(waited, 3, "\(method)")
            let (_, again) = try timed { try p.join() }
            assertQuick(again, "\(method): a second join() of an ended process")
        }
    }
}

/// Starts `sleep 4` (which inherits standard output and error) and returns at once.
struct LeaveASleeperOnStdout: ParallelFunction {
    func callAsFunction(_: Void) throws {
        var pid: pid_t = 0
        let words: [String] = ["/bin/sleep", "4"]
        var argv: [UnsafeMutablePointer<CChar>?] = words.map { strdup($0) } + [nil]
        defer { for word in argv { free(word) } }
        let status = posix_spawn(&pid, "/bin/sleep", nil, nil, &argv, environ)
        guard status == 0 else { throw SystemError("posix_spawn", errno: status) }
    }
}
