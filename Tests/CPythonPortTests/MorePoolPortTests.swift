// More ports of CPython's pool tests (Lib/test/_test_multiprocessing.py: _TestPool,
// TestStdinBadfiledescriptor), beyond PoolPortTests.
//
// CPython test                                        → Swift test (MorePoolPortTests)
// _TestPool.test_imap (a failing input mid-stream)     → testAFailingInputInTheMiddleOfImap
// _TestPool.test_imap (StopIteration, again)           → testAnEndedStreamStaysEnded
// _TestPool.test_map_chunksize (chunksize edge cases)  → testChunkSizeEdgeCases
// _TestPool.test_map_async_callbacks (many calls)       → testEveryAsyncCallbackRunsExactlyOnce
// _TestPool.test_terminate (map waiting meanwhile)     → testTerminateEndsAMapWaitingOnAnotherThread
// _TestPool.test_enter (pool not running)              → testATerminatedPoolRefusesWork
// _TestPool.test_context (body throws: terminate)      → testWithTerminatesWhenTheBodyThrows
// _TestPool.test_async (get again, successful())       → testAFailedResultKeepsItsError
// TestStdinBadfiledescriptor.test_pool_in_process      → testPoolInAChildWithoutStandardInput
//
// Differences from Python, checked as documented:
// - In imap a failed input is one failed `Result` and the stream goes on (Python's iterator
//   raises; with chunksize > 1 the generator ends there).
// - A chunk size below 1 is `PoolError(.invalidArgument)` (Python's ValueError).

import Dispatch
import Multiprocessing
import XCTest

#if canImport(Glibc)
import Glibc
#endif

/// Squares, but throws for one input (CPython's `sqr` with an error in the middle).
struct SqrFailingAt: ParallelFunction {
    struct Failure: Error, CustomStringConvertible {
        var x: Int
        var description: String { "failed at \(x)" }
    }
    var failing: Int
    func callAsFunction(_ x: Int) throws -> Int {
        if x == failing { throw Failure(x: x) }
        return x * x
    }
}

/// A child that starts a pool of its own with its standard input closed (CPython's
/// `_test_pool_in_process`, with stdin replaced by a bad descriptor).
struct PoolWithoutStdin: ParallelFunction {
    var method: StartMethod
    var report: Queue<[Int]>
    func callAsFunction(_: Void) throws {
        close(0)
        let squares = try Pool.with(processes: 2, startMethod: method) { pool in try pool.map(Sqr(), Array(0..<5)) }
        try report.put(squares, timeout: 30)
    }
}

final class MorePoolPortTests: PortTestCase {
    /// test_imap with a function that throws for one input: that input's `Result` is the
    /// error, every other input gets its square, in order — at chunk sizes 1 and 3, and in
    /// imapUnordered.
    func testAFailingInputInTheMiddleOfImap() throws {
        try forEachMethod { method in
            try Pool.with(processes: 2, startMethod: method) { pool in
                for chunkSize in [1, 3] {
                    let results = Array(try pool.imap(SqrFailingAt(failing: 5), Array(0..<10), chunkSize: chunkSize))
                    XCTAssertEqual(results.count, 10, "\(method) chunk \(chunkSize)")
                    for (i, result) in results.enumerated() {
                        switch result {
                        case .success(let y):
                            XCTAssertNotEqual(i, 5, "\(method) chunk \(chunkSize)")
                            XCTAssertEqual(y, i * i)
                        case .failure(let error):
                            XCTAssertEqual(i, 5, "\(method) chunk \(chunkSize): input \(i) failed: \(error)")
                            XCTAssertEqual((error as? RemoteError)?.message, "failed at 5", "\(error)")
                            XCTAssertEqual((error as? RemoteError)?.inputIndex, 5, "\(error)")
                        }
                    }
                    let unordered = Array(try pool.imapUnordered(SqrFailingAt(failing: 5), Array(0..<10), chunkSize: chunkSize))
                    XCTAssertEqual(unordered.count, 10)
                    XCTAssertEqual(unordered.filter { (try? $0.get()) == nil }.count, 1, "\(method) chunk \(chunkSize)")
                    XCTAssertEqual(
                        Set(unordered.compactMap { try? $0.get() }), Set((0..<10).filter { $0 != 5 }.map { $0 * $0 }))
                }
            }
        }
    }

    /// test_imap: after the last result `next()` ends (StopIteration), and keeps ending —
    /// also with a timeout; the same with chunk size 100 over 1000 inputs.
    func testAnEndedStreamStaysEnded() throws {
        try Pool.with(processes: 2, startMethod: .fork) { pool in
            let stream = try pool.imap(Sqr(), Array(0..<10))
            for i in 0..<10 { XCTAssertEqual(try stream.nextValue(), i * i) }
            XCTAssertNil(stream.next())
            XCTAssertNil(stream.next())
            XCTAssertNil(try stream.next(timeout: 0.1))
            let big = try pool.imap(Sqr(), Array(0..<1000), chunkSize: 100)
            for i in 0..<1000 { XCTAssertEqual(try big.nextValue(), i * i) }
            XCTAssertNil(big.next())
            XCTAssertNil(try big.nextValue())
        }
    }

    /// test_map_chunksize and ValueError("Chunksize must be 1+"): a chunk size of 0 or less
    /// is refused by every call that takes one; one larger than the inputs, or enormous,
    /// works.
    func testChunkSizeEdgeCases() throws {
        try Pool.with(processes: 2, startMethod: .fork) { pool in
            for bad in [0, -1, Int.min] {
                XCTAssertThrowsError(try pool.map(Sqr(), Array(0..<4), chunkSize: bad)) {
                    XCTAssertEqual(($0 as? PoolError)?.code, .invalidArgument, "map \(bad): \($0)")
                }
                XCTAssertThrowsError(try pool.mapAsync(Sqr(), Array(0..<4), chunkSize: bad)) {
                    XCTAssertEqual(($0 as? PoolError)?.code, .invalidArgument, "mapAsync \($0)")
                }
                XCTAssertThrowsError(try pool.starmap(Mul(), [(1, 2)], chunkSize: bad)) {
                    XCTAssertEqual(($0 as? PoolError)?.code, .invalidArgument, "starmap \($0)")
                }
                XCTAssertThrowsError(try pool.imap(Sqr(), Array(0..<4), chunkSize: bad)) {
                    XCTAssertEqual(($0 as? PoolError)?.code, .invalidArgument, "imap \($0)")
                }
                XCTAssertThrowsError(try pool.imapUnordered(Sqr(), Array(0..<4), chunkSize: bad)) {
                    XCTAssertEqual(($0 as? PoolError)?.code, .invalidArgument, "imapUnordered \($0)")
                }
            }
            XCTAssertEqual(try pool.map(Sqr(), Array(0..<7), chunkSize: 100), (0..<7).map { $0 * $0 })
            XCTAssertEqual(try pool.map(Sqr(), Array(0..<7), chunkSize: Int.max), (0..<7).map { $0 * $0 })
            XCTAssertEqual(try pool.map(Sqr(), Array(0..<7), chunkSize: 7), (0..<7).map { $0 * $0 })
            XCTAssertEqual(try pool.map(Sqr(), Array(0..<7), chunkSize: 6), (0..<7).map { $0 * $0 })
            XCTAssertEqual(
                try Array(pool.imap(Sqr(), Array(0..<7), chunkSize: Int.max)).map { try $0.get() }, (0..<7).map { $0 * $0 })
        }
    }

    /// test_map_async_callbacks / test_async_error_callback over many calls: every applyAsync
    /// and mapAsync runs exactly one of its callbacks, exactly once, with its own result.
    func testEveryAsyncCallbackRunsExactlyOnce() throws {
        try forEachMethod([.fork, .forkserver]) { method in
            try Pool.with(processes: 2, startMethod: method) { pool in
                let box = NSLockish()
                nonisolated(unsafe) var successes: [Int: [Int]] = [:]
                nonisolated(unsafe) var failures: [Int: Int] = [:]
                var results: [AsyncResult<Int>] = []
                for i in 0..<40 {
                    results.append(
                        try pool.applyAsync(
                            SqrFailingAt(failing: i % 4 == 0 ? i : -1), i,
                            callback: { y in box.withLock { successes[i, default: []].append(y) } },
                            errorCallback: { _ in box.withLock { failures[i, default: 0] += 1 } }))
                }
                let mapped = try pool.mapAsync(
                    SqrFailingAt(failing: 3), Array(0..<8), chunkSize: 2,
                    callback: { _ in box.withLock { successes[1000, default: []].append(0) } },
                    errorCallback: { _ in box.withLock { failures[1000, default: 0] += 1 } })
                for r in results { XCTAssertTrue(r.wait(timeout: 30)) }
                XCTAssertTrue(mapped.wait(timeout: 30))
                usleep(200_000) // a second callback would come now
                box.withLock {
                    for i in 0..<40 {
                        if i % 4 == 0 {
                            XCTAssertEqual(failures[i], 1, "\(method) input \(i)")
                            XCTAssertNil(successes[i], "\(method) input \(i)")
                        } else {
                            XCTAssertEqual(successes[i], [i * i], "\(method) input \(i)")
                            XCTAssertNil(failures[i], "\(method) input \(i)")
                        }
                    }
                    XCTAssertEqual(failures[1000], 1, "\(method): mapAsync's error callback")
                    XCTAssertNil(successes[1000], "\(method): mapAsync's callback")
                }
            }
        }
    }

    /// test_terminate, with a blocking `map` in another thread: terminate ends it with
    /// `PoolError(.terminated)` at once (Python's map would wait for ever).
    func testTerminateEndsAMapWaitingOnAnotherThread() throws {
        try forEachMethod { method in
            let pool = try Pool(processes: 2, startMethod: method)
            let box = NSLockish()
            nonisolated(unsafe) var outcome: Result<[Int], any Error>?
            let thread = TestThread {
                let r = Result { try pool.map(SlowSqr(seconds: 30), Array(0..<20), chunkSize: 1) }
                box.withLock { outcome = r }
            }
            usleep(300_000)
            let (_, elapsed) = try timed {
                pool.terminate()
                try pool.join()
            }
            assertQuick(elapsed, "\(method): terminate + join")
            XCTAssertTrue(try thread.wait(10), "\(method): the map did not end after terminate")
            box.withLock {
                guard case .failure(let error) = outcome else {
                    return XCTFail("\(method): the map returned \(String(describing: outcome))")
                }
                XCTAssertEqual((error as? PoolError)?.code, .terminated, "\(method): \(error)")
            }
        }
    }

    /// test_enter: a terminated pool refuses every kind of call (Python: ValueError "Pool not
    /// running"), and join/terminate again are fine.
    func testATerminatedPoolRefusesWork() throws {
        let pool = try Pool(processes: 1, startMethod: .fork)
        pool.terminate()
        try pool.join()
        func refused(_ what: String, _ body: () throws -> Void) {
            XCTAssertThrowsError(try body(), what) { error in
                let code = (error as? PoolError)?.code
                XCTAssertTrue(code == .closed || code == .terminated, "\(what): \(error)")
            }
        }
        refused("apply") { _ = try pool.apply(Sqr(), 2) }
        refused("applyAsync") { _ = try pool.applyAsync(Sqr(), 2) }
        refused("map") { _ = try pool.map(Sqr(), [1, 2]) }
        refused("mapAsync") { _ = try pool.mapAsync(Sqr(), [1, 2]) }
        refused("starmap") { _ = try pool.starmap(Mul(), [(1, 2)]) }
        refused("imap") { _ = try pool.imap(Sqr(), [1, 2]) }
        refused("imapUnordered") { _ = try pool.imapUnordered(Sqr(), [1, 2]) }
        pool.terminate()
        pool.close()
        XCTAssertNoThrow(try pool.join())
    }

    /// test_context, the Python half: when the body throws, `Pool.with` terminates the pool;
    /// work still pending fails with `PoolError(.terminated)` instead of hanging.
    func testWithTerminatesWhenTheBodyThrows() throws {
        struct Stop: Error {}
        try forEachMethod([.fork, .forkserver]) { method in
            nonisolated(unsafe) var pending: AsyncResult<Int>?
            let (_, elapsed) = try timed {
                XCTAssertThrowsError(
                    try Pool.with(processes: 2, startMethod: method) { pool in
                        pending = try pool.applyAsync(SlowSqr(seconds: 30), 3)
                        usleep(100_000)
                        throw Stop()
                    }
                ) { XCTAssertTrue($0 is Stop, "\($0)") }
            }
            assertQuick(elapsed, "\(method): Pool.with after a throwing body")
            XCTAssertThrowsError(try XCTUnwrap(pending).get(timeout: 5)) {
                XCTAssertEqual(($0 as? PoolError)?.code, .terminated, "\(method): \($0)")
            }
        }
    }

    /// test_async / AsyncResult.successful(): a failed result is ready, not successful, and
    /// `get` throws the same error every time; `successful()` of a result not ready yet
    /// throws (Python: ValueError).
    func testAFailedResultKeepsItsError() throws {
        try Pool.with(processes: 1, startMethod: .fork) { pool in
            let slow = try pool.applyAsync(SleepFor(seconds: 1), ())
            XCTAssertThrowsError(try slow.successful()) {
                XCTAssertEqual(($0 as? PoolError)?.code, .stillRunning, "\($0)")
            }
            try slow.get(timeout: 30)
            XCTAssertTrue(try slow.successful())
            let result = try pool.applyAsync(SqrFailingAt(failing: 7), 7)
            XCTAssertTrue(result.wait(timeout: 30))
            XCTAssertTrue(result.isReady)
            XCTAssertFalse(result.isSuccessful)
            XCTAssertFalse(try result.successful())
            var messages: [String] = []
            for _ in 0..<3 {
                XCTAssertThrowsError(try result.get()) { messages.append(($0 as? RemoteError)?.message ?? "\($0)") }
            }
            XCTAssertEqual(messages, Array(repeating: "failed at 7", count: 3))
            let fine = try pool.applyAsync(Sqr(), 6)
            XCTAssertEqual(try fine.get(timeout: 30), 36)
            XCTAssertEqual(try fine.get(timeout: 0), 36)
            XCTAssertTrue(fine.isSuccessful)
        }
    }

    /// TestStdinBadfiledescriptor.test_pool_in_process: a child whose standard input is
    /// closed starts a pool of its own and maps with it.
    func testPoolInAChildWithoutStandardInput() throws {
        try forEachMethod { method in
            let report = try Queue<[Int]>()
            let p = try started(PoolWithoutStdin(method: method, report: report), method)
            XCTAssertEqual(try report.get(timeout: 30), [0, 1, 4, 9, 16], "\(method)")
            try joinOrKill(p)
            XCTAssertEqual(p.exitCode, 0, "\(method)")
        }
    }
}
