// Ports of CPython's pool tests (Lib/test/_test_multiprocessing.py: _TestPool,
// _TestPoolWorkerErrors, _TestPoolWorkerLifetime, TestInitializers.test_pool_initializer,
// MiscTestCase.test_large_pool), on every start method. CPython shares one Pool(4) per class;
// here each case makes its pools (one per start method).
//
// CPython test                                        → Swift test (PoolPortTests)
// _TestPool.test_apply                                → testApplyMapStarmap
// _TestPool.test_map                                  → testApplyMapStarmap
// _TestPool.test_starmap / test_starmap_async         → testApplyMapStarmap
// _TestPool.test_map_async                            → testApplyMapStarmap
// _TestPool.test_map_async_callbacks                  → testMapAsyncCallbacks
// _TestPool.test_map_chunksize                        → testEmptyInputs
// _TestPool.test_empty_iterable                       → testEmptyInputs
// _TestPool.test_async                                → testApplyAsyncGetWaits
// _TestPool.test_async_timeout                        → testApplyAsyncGetTimesOut
// _TestPool.test_imap                                 → testImap
// _TestPool.test_imap_unordered                       → testImapUnordered
// _TestPool.test_make_pool                            → testMakePool
// _TestPool.test_terminate                            → testTerminateWithManyLongTasks
// _TestPool.test_context                              → testWithClosesThePool
// _TestPool.test_traceback / test_wrapped_exception   → testErrorsKeepTheirTypeAndMessage
// _TestPool.test_map_no_failfast                      → testFailedMapWithALargeErrorThenCloseAndJoin
// _TestPoolWorkerErrors.test_async_error_callback     → testAsyncErrorCallback
// _TestPoolWorkerErrors.test_unpickleable_result      → testUnencodableResultsDoNotCostWorkers
// _TestPoolWorkerLifetime.test_pool_worker_lifetime   → testWorkerLifetime
// _TestPoolWorkerLifetime.test_pool_worker_lifetime_early_close → testWorkerLifetimeEarlyClose
// _TestPoolWorkerLifetime.test_pool_maxtasksperchild_invalid     → testMakePool
// TestInitializers.test_pool_initializer              → testInitializerRunsOncePerWorker
// MiscTestCase.test_large_pool                        → testLargePool (fork, 100 workers)
// (join without close)                                → testJoinWithoutCloseThrows
// _TestPool.test_release_task_refs                    → testACallsInputsAndFunctionAreReleased (class
//                                                       instances watched by weak references)
//
// Not applicable: test_map_handle_iterable_exception, test_imap_handle_iterable_exception,
// test_imap_unordered_handle_iterable_exception (a Swift Sequence cannot throw),
// test_resource_warning, test_enter (no garbage collector / no
// re-entering `Pool.with`), test_map_unplicklable (PoolEncodingTests has it),
// test_worker_finalization_via_atexit_handler_of_multiprocessing.
//
// Differences from Python, checked as documented:
// - `Pool.with` closes and joins at the end of its body (Python's `with` terminates).
// - An error keeps its type's name and description (`RemoteError.typeName`, `.message`);
//   there is no remote traceback.
// - A result that cannot be encoded is `PoolError(.encoding)` (Python's MaybeEncodingError).

import Multiprocessing
import XCTest

#if canImport(Glibc)
import Glibc
#endif

/// CPython's `mul`.
struct Mul: ParallelFunction {
    func callAsFunction(_ args: Arguments<Int, Int>) -> Int {
        let (x, y) = args.values
        return x * y
    }
}

/// CPython's `int` applied to a string: throws for what is not a number.
struct ParseInt: ParallelFunction {
    struct ValueError: Error, CustomStringConvertible {
        var text: String
        var description: String { "invalid literal for int(): '\(text)'" }
    }
    func callAsFunction(_ text: String) throws -> Int {
        guard let value = Int(text) else { throw ValueError(text: text) }
        return value
    }
}

/// CPython's `_test_traceback`: raise RuntimeError(123).
struct RaiseRuntimeError: ParallelFunction {
    struct RuntimeError: Error, CustomStringConvertible {
        var value: Int
        var description: String { "\(value)" }
    }
    func callAsFunction(_ x: Int) throws -> Int { throw RuntimeError(value: x) }
}

/// CPython's `raising`: raise KeyError("key").
struct RaiseKeyError: ParallelFunction {
    struct KeyError: Error, CustomStringConvertible { var description: String { "'key'" } }
    func callAsFunction(_: Int) throws -> Int { throw KeyError() }
}

/// CPython's `raise_large_valuerror`: sleeps, then throws an error whose description is 1 MiB.
struct RaiseLargeError: ParallelFunction {
    struct ValueError: Error, CustomStringConvertible { var description: String { String(repeating: "x", count: 1 << 20) } }
    func callAsFunction(_ seconds: Double) throws -> Int {
        usleep(UInt32(seconds * 1e6))
        throw ValueError()
    }
}

/// CPython's `unpickleable_result`: returns a value that cannot be encoded.
struct ReturnNotEncodable: ParallelFunction {
    func callAsFunction(_: Int) -> NotEncodable { NotEncodable() }
}

/// The worker's pid.
struct WorkerPid: ParallelFunction {
    func callAsFunction(_: Int) -> Int32 { getpid() }
}

/// CPython's `initializer(ns)`: ns.test += 1 (under a manager lock: several workers).
struct CountInitializer: ParallelFunction {
    var namespace: NamespaceProxy
    var lock: LockProxy
    func callAsFunction(_: Void) throws {
        try lock.withLock { try namespace.set("test", (try namespace.get("test", as: Int.self) ?? 0) + 1) }
    }
}

final class PoolPortTests: PortTestCase {
    /// A pool of `processes` per start method, closed and joined after `body`.
    private func withPools(processes: Int = 4, _ body: (Pool, StartMethod) throws -> Void) throws {
        try forEachMethod { method in
            try Pool.with(processes: processes, startMethod: method) { try body($0, method) }
        }
    }

    /// test_apply, test_map, test_starmap, test_starmap_async, test_map_async.
    func testApplyMapStarmap() throws {
        try withPools { pool, method in
            XCTAssertEqual(try pool.apply(Sqr(), 5), 25)
            XCTAssertEqual(try pool.map(Sqr(), Array(0..<10)), (0..<10).map { $0 * $0 }, "\(method)")
            XCTAssertEqual(try pool.map(Sqr(), Array(0..<100), chunkSize: 20), (0..<100).map { $0 * $0 })
            let tuples = Array(zip(0..<10, (0..<10).reversed()))
            XCTAssertEqual(try pool.starmap(Mul(), tuples), tuples.map { $0 * $1 })
            let hundred = Array(zip(0..<100, (0..<100).reversed()))
            XCTAssertEqual(try pool.starmap(Mul(), hundred, chunkSize: 20), hundred.map { $0 * $1 })
            XCTAssertEqual(try pool.starmapAsync(Mul(), hundred).get(timeout: 30), hundred.map { $0 * $1 })
            XCTAssertEqual(try pool.mapAsync(Sqr(), Array(0..<10)).get(timeout: 30), (0..<10).map { $0 * $0 })
        }
    }

    /// test_map_async_callbacks: exactly one of the callbacks runs, before wait returns.
    func testMapAsyncCallbacks() throws {
        try withPools(processes: 2) { pool, method in
            let calls = NSLockish()
            nonisolated(unsafe) var results: [[Int]] = [], errors: [any Error] = []
            XCTAssertTrue(
                try pool.mapAsync(
                    ParseInt(), ["1"], callback: { r in calls.withLock { results.append(r) } },
                    errorCallback: { e in calls.withLock { errors.append(e) } }
                ).wait(timeout: 30))
            calls.withLock {
                XCTAssertEqual(results, [[1]], "\(method)")
                XCTAssertTrue(errors.isEmpty)
            }
            XCTAssertTrue(
                try pool.mapAsync(
                    ParseInt(), ["a"], callback: { r in calls.withLock { results.append(r) } },
                    errorCallback: { e in calls.withLock { errors.append(e) } }
                ).wait(timeout: 30))
            calls.withLock {
                XCTAssertEqual(results.count + errors.count, 2, "\(method)")
                XCTAssertEqual(errors.count, 1)
                let remote = errors.first as? RemoteError
                XCTAssertTrue(remote?.typeName.hasSuffix("ValueError") ?? false, "\(String(describing: errors.first))")
            }
        }
    }

    /// test_map_chunksize and test_empty_iterable: empty inputs end at once, with every call.
    func testEmptyInputs() throws {
        try withPools(processes: 1) { pool, method in
            XCTAssertEqual(try pool.mapAsync(Sqr(), [Int](), chunkSize: 1).get(timeout: 1), [], "\(method)")
            XCTAssertEqual(try pool.map(Sqr(), [Int]()), [])
            XCTAssertEqual(Array(try pool.imap(Sqr(), [Int]())).count, 0)
            XCTAssertEqual(Array(try pool.imapUnordered(Sqr(), [Int]())).count, 0)
            XCTAssertEqual(try pool.mapAsync(Sqr(), [Int]()).get(timeout: 1), [])
            XCTAssertEqual(try pool.starmap(Mul(), [(Int, Int)]()), [])
        }
    }

    /// test_async: get waits for the task (about its 0.1 s).
    func testApplyAsyncGetWaits() throws {
        try withPools(processes: 2) { pool, method in
            _ = try pool.map(Sqr(), [1, 2], chunkSize: 1) // the workers are up
            let result = try pool.applyAsync(SlowSqr(seconds: 0.1), 7)
            let (value, elapsed) = try timed { try result.get(timeout: 30) }
            XCTAssertEqual(value, 49, "\(method)")
            XCTAssertLessThan(elapsed, 2.1)
        }
    }

    /// test_async_timeout: get(timeout:) of a longer task throws TimeoutError after about the
    /// timeout; the pool is then terminated.
    func testApplyAsyncGetTimesOut() throws {
        try forEachMethod { method in
            let pool = try Pool(processes: 3, startMethod: method)
            let result = try pool.applyAsync(SlowSqr(seconds: 10), 6)
            let (outcome, elapsed) = timed { Result { try result.get(timeout: 0.2) } }
            XCTAssertThrowsError(try outcome.get()) { XCTAssertTrue($0 is TimeoutError, "\($0)") }
            assertWaited(elapsed, 0.2, "get(timeout: 0.2)")
            pool.terminate()
            let (_, joined) = try timed { try pool.join() }
            assertQuick(joined, "join after terminate")
        }
    }

    /// test_imap: in order, element by element, then the end (StopIteration); and with
    /// chunks of 100.
    func testImap() throws {
        try withPools { pool, method in
            XCTAssertEqual(try Array(pool.imap(Sqr(), Array(0..<10))).map { try $0.get() }, (0..<10).map { $0 * $0 })
            let stream = try pool.imap(Sqr(), Array(0..<10))
            for i in 0..<10 { XCTAssertEqual(try stream.nextValue(), i * i, "\(method)") }
            XCTAssertNil(try stream.nextValue())
            XCTAssertNil(try stream.nextValue(), "the end stays the end")
            let chunked = try pool.imap(Sqr(), Array(0..<1000), chunkSize: 100)
            for i in 0..<1000 { XCTAssertEqual(try chunked.nextValue(), i * i) }
            XCTAssertNil(try chunked.nextValue())
        }
    }

    /// IMapIterator.next(timeout): a result not there in time raises TimeoutError and the
    /// iterator goes on — the next call with a longer timeout gets it; then the end. The same
    /// for an unordered stream and a checkpointed one; a negative timeout is refused.
    func testImapNextWithATimeout() throws {
        var template = Array("/tmp/swiftmp-port-XXXXXX".utf8CString)
        let directory = template.withUnsafeMutableBufferPointer { String(cString: mkdtemp($0.baseAddress!)) }
        defer { _ = try? FileManager.default.removeItem(atPath: directory) }
        try forEachMethod { method in
            let pool = try Pool(processes: 1, startMethod: method)
            defer { pool.terminate() }
            let streams = [
                try pool.imap(SlowSqr(seconds: 0.3), [1, 2]),
                try pool.imapUnordered(SlowSqr(seconds: 0.3), [1, 2]),
                try pool.imap(SlowSqr(seconds: 0.3), [1, 2], checkpoint: directory + "/\(method).journal"),
            ]
            for (which, stream) in streams.enumerated() {
                let (early, waited) = timed { Result { try stream.next(timeout: 0.01) } }
                XCTAssertThrowsError(try early.get(), "\(method) stream \(which)") { XCTAssertTrue($0 is TimeoutError, "\($0)") }
                assertQuick(waited, "next(timeout: 0.01)")
                var got: [Int] = []
                for _ in 0..<2 { got.append(try XCTUnwrap(try stream.next(timeout: 30)).get()) }
                XCTAssertEqual(got.sorted(), [1, 4], "\(method) stream \(which)")
                XCTAssertNil(try stream.next(timeout: 30), "the end")
            }
            // A negative timeout does not wait (Python's Condition.wait(-1)): TimeoutError.
            XCTAssertThrowsError(try pool.imap(SlowSqr(seconds: 0.3), [1]).next(timeout: -1)) {
                XCTAssertTrue($0 is TimeoutError, "\($0)")
            }
        }
    }

    /// test_imap_unordered.
    func testImapUnordered() throws {
        try withPools { pool, method in
            XCTAssertEqual(try pool.imapUnordered(Sqr(), Array(0..<10)).map { try $0.get() }.sorted(), (0..<10).map { $0 * $0 })
            XCTAssertEqual(
                try pool.imapUnordered(Sqr(), Array(0..<1000), chunkSize: 100).map { try $0.get() }.sorted(),
                (0..<1000).map { $0 * $0 }, "\(method)")
        }
    }

    /// test_make_pool and test_pool_maxtasksperchild_invalid.
    func testMakePool() throws {
        for processes in [-1, 0] {
            XCTAssertThrowsError(try Pool(processes: processes)) { XCTAssertEqual(($0 as? PoolError)?.code, .invalidArgument) }
        }
        for limit in [0, -1] {
            XCTAssertThrowsError(try Pool(processes: 3, maxTasksPerChild: limit)) {
                XCTAssertEqual(($0 as? PoolError)?.code, .invalidArgument)
            }
        }
        try forEachMethod { method in
            let pool = try Pool(processes: 3, startMethod: method)
            XCTAssertEqual(pool.processes, 3)
            XCTAssertEqual(Set(try pool.map(WorkerPid(), 0..<60, chunkSize: 1)).count <= 3, true)
            pool.close()
            try pool.join()
        }
    }

    /// test_terminate: 10 000 long tasks, some started; terminate and join return at once.
    func testTerminateWithManyLongTasks() throws {
        try forEachMethod { method in
            let pool = try Pool(processes: 3, startMethod: method)
            let result = try pool.mapAsync(SlowSqr(seconds: 30), Array(0..<10_000), chunkSize: 1)
            usleep(200_000)
            let (_, elapsed) = try timed {
                pool.terminate()
                try pool.join()
            }
            assertQuick(elapsed, "terminate + join (\(method))")
            XCTAssertThrowsError(try result.get(timeout: 5)) { XCTAssertEqual(($0 as? PoolError)?.code, .terminated, "\($0)") }
        }
    }

    /// test_context: after `Pool.with` the pool is closed (and joined); new work is refused.
    func testWithClosesThePool() throws {
        try forEachMethod { method in
            nonisolated(unsafe) var kept: Pool?
            let squares = try Pool.with(processes: 2, startMethod: method) { pool in
                kept = pool
                return try pool.mapAsync(Sqr(), Array(0..<10)).get(timeout: 30)
            }
            XCTAssertEqual(squares, (0..<10).map { $0 * $0 })
            XCTAssertThrowsError(try kept?.mapAsync(Sqr(), Array(0..<10))) { XCTAssertEqual(($0 as? PoolError)?.code, .closed) }
            XCTAssertNoThrow(try kept?.join(), "join again is fine")
        }
    }

    /// test_traceback / test_wrapped_exception: the error that reaches apply keeps its type
    /// and value (and says where it ran).
    func testErrorsKeepTheirTypeAndMessage() throws {
        try withPools(processes: 1) { pool, method in
            XCTAssertThrowsError(try pool.apply(RaiseRuntimeError(), 123)) { error in
                guard let remote = error as? RemoteError else { return XCTFail("\(method): \(error)") }
                XCTAssertTrue(remote.typeName.hasSuffix("RuntimeError"), remote.typeName)
                XCTAssertEqual(remote.message, "123")
                XCTAssertNotNil(remote.pid)
                XCTAssertNotEqual(remote.pid, getpid())
            }
        }
    }

    /// test_map_no_failfast: a map whose tasks throw an error with a 1 MiB description fails
    /// with it whole; close and join then do not deadlock.
    func testFailedMapWithALargeErrorThenCloseAndJoin() throws {
        try forEachMethod { method in
            let pool = try Pool(processes: 2, startMethod: method)
            XCTAssertThrowsError(try pool.map(RaiseLargeError(), [0, 0.5], chunkSize: 1)) { error in
                guard let remote = error as? RemoteError else { return XCTFail("\(method): \(error)") }
                XCTAssertEqual(remote.message.count, 1 << 20, "\(method)")
            }
            usleep(100_000)
            pool.close()
            let (_, elapsed) = try timed { try pool.join() }
            XCTAssertLessThan(elapsed, 10, "\(method): join after a failed map")
        }
    }

    /// _TestPoolWorkerErrors.test_async_error_callback.
    func testAsyncErrorCallback() throws {
        try withPools(processes: 2) { pool, method in
            let box = NSLockish()
            nonisolated(unsafe) var seen: (any Error)?
            let result = try pool.applyAsync(RaiseKeyError(), 0, errorCallback: { error in box.withLock { seen = error } })
            XCTAssertThrowsError(try result.get(timeout: 30)) { error in
                XCTAssertTrue((error as? RemoteError)?.typeName.hasSuffix("KeyError") ?? false, "\(error)")
            }
            box.withLock {
                XCTAssertTrue((seen as? RemoteError)?.typeName.hasSuffix("KeyError") ?? false, "\(method): \(String(describing: seen))")
            }
            XCTAssertFalse(result.isSuccessful)
        }
    }

    /// _TestPoolWorkerErrors.test_unpickleable_result: 20 results that cannot be encoded each
    /// fail their call (error callback included) and cost no worker.
    func testUnencodableResultsDoNotCostWorkers() throws {
        try withPools(processes: 2) { pool, method in
            let before = Set(try pool.map(WorkerPid(), 0..<20, chunkSize: 1))
            for _ in 0..<20 {
                let box = NSLockish()
                nonisolated(unsafe) var seen: (any Error)?
                let result = try pool.applyAsync(ReturnNotEncodable(), 1, errorCallback: { e in box.withLock { seen = e } })
                XCTAssertThrowsError(try result.get(timeout: 30)) { XCTAssertEqual(($0 as? PoolError)?.code, .encoding, "\($0)") }
                box.withLock { XCTAssertEqual((seen as? PoolError)?.code, .encoding, "\(method)") }
            }
            let after = Set(try pool.map(WorkerPid(), 0..<20, chunkSize: 1))
            XCTAssertTrue(after.isSubset(of: before), "\(method): workers were replaced: \(before) → \(after)")
        }
    }

    /// _TestPoolWorkerLifetime.test_pool_worker_lifetime: with maxTasksPerChild 10, 100
    /// separate applies all succeed and the workers are replaced.
    func testWorkerLifetime() throws {
        try forEachMethod { method in
            try Pool.with(processes: 3, startMethod: method, maxTasksPerChild: 10) { pool in
                let results = try (0..<100).map { try pool.applyAsync(WorkerPid(), $0) }
                let pids = try results.map { try $0.get(timeout: 60) }
                XCTAssertGreaterThan(Set(pids).count, 3, "\(method): workers were not replaced")
                XCTAssertEqual(
                    try (0..<100).map { try pool.applyAsync(Sqr(), $0) }.map { try $0.get(timeout: 60) },
                    (0..<100).map { $0 * $0 }, "\(method)")
            }
        }
    }

    /// _TestPoolWorkerLifetime.test_pool_worker_lifetime_early_close: closing a pool whose
    /// workers live for one task each, before its tasks ran, must not make join hang.
    func testWorkerLifetimeEarlyClose() throws {
        try forEachMethod { method in
            let pool = try Pool(processes: 3, startMethod: method, maxTasksPerChild: 1)
            let results = try (0..<6).map { try pool.applyAsync(SlowSqr(seconds: 0.3), $0) }
            pool.close()
            let (_, elapsed) = try timed { try pool.join() }
            XCTAssertLessThan(elapsed, 20, "\(method)")
            XCTAssertEqual(try results.map { try $0.get(timeout: 0) }, (0..<6).map { $0 * $0 }, "\(method)")
        }
    }

    /// TestInitializers.test_pool_initializer: the initializer runs once in the one worker.
    func testInitializerRunsOncePerWorker() throws {
        let manager = try Manager()
        defer { manager.shutdown() }
        try forEachMethod { method in
            let namespace = try manager.namespace()
            try namespace.set("test", 0)
            let pool = try Pool(
                processes: 1, startMethod: method,
                initializer: CountInitializer(namespace: namespace, lock: try manager.lock()))
            _ = try pool.map(Sqr(), [1, 2, 3])
            pool.close()
            try pool.join()
            XCTAssertEqual(try namespace.get("test", as: Int.self), 1, "\(method)")
        }
    }

    /// MiscTestCase.test_large_pool (gh-89240): a pool of 100 workers maps and ends cleanly
    /// (fork only: 100 spawned test binaries would take the whole time budget here).
    func testLargePool() throws {
        let total = try Pool.with(processes: 100, startMethod: .fork) { pool in
            try pool.map(Sqr(), 0..<1000).reduce(0, +)
        }
        XCTAssertEqual(total, 332_833_500)
    }

    /// Python's `join()` before `close()` raises ValueError: PoolError(.stillRunning), and
    /// the pool is still usable.
    func testJoinWithoutCloseThrows() throws {
        try withPools(processes: 1) { pool, method in
            XCTAssertThrowsError(try pool.join()) { XCTAssertEqual(($0 as? PoolError)?.code, .stillRunning, "\(method)") }
            XCTAssertEqual(try pool.apply(Sqr(), 3), 9)
        }
    }
}

/// An input that is a class instance, so that a weak reference can watch it.
final class CountedInput: Codable, @unchecked Sendable {
    let value: Int
    init(_ value: Int) { self.value = value }
}

/// A function value that is a class instance: doubles its input's value.
final class DoubleCounted: ParallelFunction, @unchecked Sendable {
    func callAsFunction(_ input: CountedInput) -> Int { input.value * 2 }
}

extension PoolPortTests {
    /// test_release_task_refs: once a call returned, the pool holds none of its inputs nor its
    /// function value — for every kind of call, a cancelled one too.
    func testACallsInputsAndFunctionAreReleased() throws {
        try withPools(processes: 2) { pool, method in
            var watched: [WeakReference] = []
            do {
                let inputs = (0..<30).map { CountedInput($0) }
                let function = DoubleCounted()
                watched = inputs.map(WeakReference.init) + [WeakReference(function)]
                let doubled = (0..<30).map { $0 * 2 }
                XCTAssertEqual(try pool.map(function, inputs, chunkSize: 3), doubled, "\(method)")
                XCTAssertEqual(try pool.mapAsync(function, inputs).get(timeout: 30), doubled, "\(method)")
                XCTAssertEqual(try pool.applyAsync(function, inputs[1]).get(timeout: 30), 2, "\(method)")
                XCTAssertEqual(try pool.imap(function, inputs).map { try $0.get() }, doubled, "\(method)")
                XCTAssertEqual(try pool.imapUnordered(function, inputs).map { try $0.get() }.sorted(), doubled)
                let cancelled = try pool.mapAsync(function, inputs, chunkSize: 1)
                cancelled.cancel()
                _ = try? cancelled.get(timeout: 30)
            }
            // Callbacks and the engine's last steps run on the pool's thread after a call returns.
            XCTAssertTrue(eventually(within: 5) { watched.allSatisfy { $0.object == nil } }, "\(method): still held")
        }
    }
}
