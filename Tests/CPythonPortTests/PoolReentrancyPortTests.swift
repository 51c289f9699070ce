// Ports of CPython's pool cases about callbacks, threads and the pool's end
// (Lib/test/_test_multiprocessing.py: _TestPool, _TestPoolWorkerErrors; Lib/test/
// test_concurrent_futures: test_shutdown, test_future), beyond PoolPortTests, MorePoolPortTests
// and PoolLifecyclePortTests: the pool used from its own callbacks (terminate, close, new
// calls), by several threads at once, dropped with work pending, and left running when the
// program exits. On every start method where it matters.
//
// CPython test                                          → Swift test (PoolReentrancyPortTests)
// _TestPool.test_terminate (from a callback: CPython's
//   _terminate_pool does not join the result handler
//   from itself)                                         → testTerminateInACallback
// _TestPool.test_context / close() (from a callback)    → testCloseInACallbackThenJoin
// _TestPool.test_map_async_callbacks (a callback that
//   submits more work)                                   → testCallbacksThatSubmitWork
// test_shutdown test_del_shutdown (a pool dropped with
//   a call pending; the error callback, once)            → testADroppedPoolFailsItsPendingCallsOnce
// test_future test_done_callback_with_cancel (cancel()
//   racing completion, 200 calls)                        → testCancelRacingCompletionRunsOneCallbackEach
// _TestPool.test_empty_iterable (map_async's callbacks)  → testEmptyMapAsyncRunsItsCallbackOnce (difference below)
// _TestPool.test_map from several threads; close() while
//   another thread maps; join() from two threads         → testThreadsSharingOnePool
// test_shutdown test_hang_issue39205 /
//   test_interpreter_shutdown (the program exits with
//   work running)                                        → testAProgramThatExitsWithABusyPoolEndsAtOnce
//
// Differences from Python, checked as documented (README: "Every callback runs exactly
// once"): `mapAsync` and `starmapAsync` of no inputs call their callback with [] (Python's
// MapResult of an empty iterable sets itself ready without calling the callback).

import Dispatch
import Foundation
import Multiprocessing
import XCTest

#if canImport(Glibc)
import Glibc
#endif

/// A child that starts a pool, gives it two 30 s tasks, reports the workers' pids and calls
/// `exit(0)` (CPython's test_hang_issue39205 script).
struct Port4ExitWithABusyPool: ParallelFunction {
    var report: Queue<[Int32]>
    var method: StartMethod
    func callAsFunction(_: Void) throws {
        let pool = try Pool(processes: 2, startMethod: method)
        _ = try pool.applyAsync(SlowSqr(seconds: 30), 1)
        _ = try pool.applyAsync(SlowSqr(seconds: 30), 2)
        usleep(200_000)
        try report.put(pool.workerPlacement.compactMap(\.pid))
        exit(0)
    }
}

final class PoolReentrancyPortTests: PortTestCase {
    /// test_terminate from the pool's own thread: `terminate()` in a callback returns (no
    /// join of the thread it runs on), the pending call fails with `PoolError(.terminated)`,
    /// join() from the test returns at once, and new calls are refused.
    func testTerminateInACallback() throws {
        try forEachMethod([.fork, .spawn]) { method in
            let pool = try Pool(processes: 2, startMethod: method)
            let slow = try pool.applyAsync(SlowSqr(seconds: 30), 3)
            let returned = DispatchSemaphore(value: 0)
            _ = try pool.applyAsync(
                Sqr(), 2,
                callback: { _ in
                    pool.terminate()
                    returned.signal()
                })
            XCTAssertEqual(returned.wait(timeout: .now() + 10), .success, "\(method): terminate() in a callback did not return")
            XCTAssertThrowsError(try slow.get(timeout: 10)) {
                XCTAssertEqual(($0 as? PoolError)?.code, .terminated, "\(method): \($0)")
            }
            let joiner = TestThread { try pool.join() }
            XCTAssertTrue(try joiner.wait(10), "\(method): join after a terminate in a callback")
            XCTAssertThrowsError(try pool.apply(Sqr(), 2), "\(method): a terminated pool took work")
        }
    }

    /// close() in a callback: the call still running completes, and join() returns once it did.
    func testCloseInACallbackThenJoin() throws {
        try forEachMethod([.fork, .spawn]) { method in
            let pool = try Pool(processes: 2, startMethod: method)
            let slow = try pool.applyAsync(SlowSqr(seconds: 0.5), 3)
            let returned = DispatchSemaphore(value: 0)
            _ = try pool.applyAsync(
                Sqr(), 2,
                callback: { _ in
                    pool.close()
                    returned.signal()
                })
            XCTAssertEqual(returned.wait(timeout: .now() + 10), .success, "\(method): close() in a callback did not return")
            let joiner = TestThread { try pool.join() }
            XCTAssertTrue(try joiner.wait(10), "\(method): join after a close in a callback")
            XCTAssertEqual(try slow.get(timeout: 0), 9, "\(method): the running call")
        }
    }

    /// A callback that submits more work (applyAsync, mapAsync) to its own pool: the new
    /// calls complete and run their own callbacks; an imap consumed meanwhile completes too.
    func testCallbacksThatSubmitWork() throws {
        try forEachMethod([.fork, .spawn]) { method in
            try Pool.with(processes: 2, startMethod: method) { pool in
                let box = NSLockish()
                nonisolated(unsafe) var inner: [String] = []
                let done = try Multiprocessing.Semaphore(value: 0)
                _ = try pool.applyAsync(
                    Sqr(), 2,
                    callback: { _ in
                        do {
                            _ = try pool.applyAsync(
                                Sqr(), 7,
                                callback: { y in
                                    box.withLock { inner.append("apply \(y)") }
                                    try? done.release()
                                })
                            _ = try pool.mapAsync(
                                Sqr(), Array(0..<10),
                                callback: { ys in
                                    box.withLock { inner.append("map \(ys.reduce(0, +))") }
                                    try? done.release()
                                })
                        } catch {
                            box.withLock { inner.append("submit failed: \(error)") }
                            try? done.release(2)
                        }
                    })
                XCTAssertEqual(Array(try pool.imap(Sqr(), Array(0..<20))).compactMap { try? $0.get() }, (0..<20).map { $0 * $0 })
                XCTAssertTrue(done.acquire(timeout: 10) && done.acquire(timeout: 10), "\(method): the inner calls' callbacks")
                XCTAssertEqual(box.withLock { inner.sorted() }, ["apply 49", "map 285"], "\(method)")
            }
        }
    }

    /// test_del_shutdown: a pool dropped (never closed or terminated) with a call pending —
    /// the call fails with `PoolError(.terminated)` and its error callback runs once (its
    /// callback never), no worker is left.
    func testADroppedPoolFailsItsPendingCallsOnce() throws {
        try forEachMethod([.fork, .spawn]) { method in
            let box = NSLockish()
            nonisolated(unsafe) var calls: [String] = []
            var result: AsyncResult<Int>?
            let before = port3Descendants()
            do {
                let pool = try Pool(processes: 2, startMethod: method)
                result = try pool.applyAsync(
                    SlowSqr(seconds: 30), 3, callback: { _ in box.withLock { calls.append("ok") } },
                    errorCallback: { e in box.withLock { calls.append("error \((e as? PoolError)?.code == .terminated)") } })
            }
            XCTAssertThrowsError(try XCTUnwrap(result).get(timeout: 10)) {
                XCTAssertEqual(($0 as? PoolError)?.code, .terminated, "\(method): \($0)")
            }
            usleep(100_000)
            XCTAssertEqual(box.withLock { calls }, ["error true"], "\(method)")
            XCTAssertTrue(eventually(within: 10) { port3Descendants().subtracting(before).isEmpty }, "\(method): workers left")
        }
    }

    /// test_done_callback_with_cancel, many times: 200 calls, every other one cancelled as it
    /// may be finishing; each runs exactly one callback, once, and every call is ready.
    func testCancelRacingCompletionRunsOneCallbackEach() throws {
        try forEachMethod([.fork, .spawn]) { method in
            try Pool.with(processes: 2, startMethod: method) { pool in
                let box = NSLockish()
                nonisolated(unsafe) var counts: [Int: Int] = [:]
                var results: [AsyncResult<Int>] = []
                for i in 0..<200 {
                    results.append(
                        try pool.applyAsync(
                            Sqr(), i, callback: { _ in box.withLock { counts[i, default: 0] += 1 } },
                            errorCallback: { _ in box.withLock { counts[i, default: 0] += 1 } }))
                }
                for (i, result) in results.enumerated() where i % 2 == 0 { result.cancel() }
                for result in results { XCTAssertTrue(result.wait(timeout: 30), "\(method)") }
                usleep(200_000) // a second callback would come now
                let wrong = box.withLock { (0..<200).filter { counts[$0] != 1 }.map { "\($0): \(counts[$0] ?? 0)" } }
                XCTAssertEqual(wrong, [], "\(method): inputs whose callbacks did not run exactly once")
                for (i, result) in results.enumerated() where result.isSuccessful {
                    XCTAssertEqual(try result.get(timeout: 0), i * i)
                }
            }
        }
    }

    /// test_empty_iterable with callbacks: mapAsync and starmapAsync of no inputs are ready
    /// with [] and call their callback once with it (documented difference: Python calls none).
    func testEmptyMapAsyncRunsItsCallbackOnce() throws {
        try Pool.with(processes: 1, startMethod: .fork) { pool in
            let box = NSLockish()
            nonisolated(unsafe) var calls: [String] = []
            let mapped = try pool.mapAsync(
                Sqr(), [Int](), callback: { ys in box.withLock { calls.append("map \(ys)") } },
                errorCallback: { e in box.withLock { calls.append("map error \(e)") } })
            let starmapped = try pool.starmapAsync(
                Mul(), [(Int, Int)](), callback: { ys in box.withLock { calls.append("starmap \(ys)") } },
                errorCallback: { e in box.withLock { calls.append("starmap error \(e)") } })
            XCTAssertEqual(try mapped.get(timeout: 5), [])
            XCTAssertEqual(try starmapped.get(timeout: 5), [])
            usleep(100_000)
            XCTAssertEqual(box.withLock { calls.sorted() }, ["map []", "starmap []"])
        }
    }

    /// Python's Pool takes calls from any thread: four threads each map 20 times at once and
    /// get their own results; close() while another thread's map runs lets it finish; join()
    /// from two threads at once returns in both.
    func testThreadsSharingOnePool() throws {
        try forEachMethod([.fork, .spawn]) { method in
            let pool = try Pool(processes: 2, startMethod: method)
            defer { pool.terminate() }
            let mappers = (0..<4).map { k in
                TestThread {
                    for round in 0..<20 {
                        let inputs = Array((k * 100)..<(k * 100 + 50))
                        let squares = try pool.map(Sqr(), inputs, chunkSize: round % 3 + 1)
                        try require(squares == inputs.map { $0 * $0 }, "thread \(k) round \(round): \(squares)")
                    }
                }
            }
            for mapper in mappers { XCTAssertTrue(try mapper.wait(60), "\(method): a mapping thread did not end") }
            let mapper = TestThread {
                let squares = try pool.map(SlowSqr(seconds: 0.05), Array(0..<20), chunkSize: 1)
                try require(squares == (0..<20).map { $0 * $0 }, "the map during close: \(squares)")
            }
            usleep(100_000)
            pool.close()
            XCTAssertTrue(try mapper.wait(20), "\(method): the map running at close() did not end")
            let joiners = [TestThread { try pool.join() }, TestThread { try pool.join() }]
            for joiner in joiners { XCTAssertTrue(try joiner.wait(10), "\(method): a join did not return") }
        }
    }

    /// test_hang_issue39205 / test_interpreter_shutdown: a program that calls exit() while
    /// its pool runs 30 s tasks ends at once, and its workers with it.
    func testAProgramThatExitsWithABusyPoolEndsAtOnce() throws {
        try forEachMethod { method in
            let report = try Queue<[Int32]>()
            let p = try started(Port4ExitWithABusyPool(report: report, method: method), .spawn)
            let workers = try report.get(timeout: 30)
            XCTAssertEqual(workers.count, 2, "\(method)")
            let (ended, seconds) = try timed { try p.join(timeout: 10) }
            XCTAssertTrue(ended, "\(method): the program did not end")
            XCTAssertLessThan(seconds, 5, "\(method): the program waited for its pool's tasks")
            XCTAssertEqual(p.exitCode, 0, "\(method)")
            XCTAssertTrue(eventually(within: 5) { workers.allSatisfy { !isRunning($0) } }, "\(method): workers outlived the program")
            if !ended { try p.kill() }
        }
    }
}
