// More ports of CPython's pool tests (Lib/test/_test_multiprocessing.py: _TestPool,
// _TestPoolWorkerErrors, _TestPoolWorkerLifetime, TestPoolNotLeakOnFailure), about the
// pool's life — close, join, terminate, callbacks, failures — beyond PoolPortTests and
// MorePoolPortTests; on every start method.
//
// CPython test                                         → Swift test (PoolLifecyclePortTests)
// TestPoolNotLeakOnFailure.test_release_unused_processes → testAPoolWhoseWorkersCannotStartLeavesNoProcess
//                                                        (workers that fail in their initializer:
//                                                        no Process class to mock here)
// _TestPoolWorkerErrors.test_unpickleable_result (map,
//   imap and their error callbacks)                    → testUnencodableResultsInMapAndImap (with chunks
//                                                        of 3 the failing input's chunk-mates may fail
//                                                        with it, as Python's chunk does)
// _TestPoolWorkerErrors.test_async_error_callback
//   (the call ended by terminate)                      → testErrorCallbackOfACallEndedByTerminate
// _TestPool.test_map_async_callbacks (before join
//   returns; the result handler thread is joined)      → testCallbacksHaveRunWhenJoinReturns
// _TestPool.test_async_timeout (map_async, get again)  → testGetThatTimedOutCanBeCalledAgain
// _TestPoolWorkerLifetime.test_pool_worker_lifetime
//   (imap and imap_unordered)                          → testWorkerLifetimeWithImap
// _TestPoolWorkerLifetime.test_pool_worker_lifetime_early_close
//   (with imap results not read yet)                   → Port3DifferenceTests (fixed)
//
// Differences from Python, checked as documented: a pool whose workers die before their
// first task three times in a row (here: an initializer that throws) fails every call with
// `PoolError(.startFailed)` (Python's pool starts new workers for ever); a result that cannot
// be encoded is `PoolError(.encoding)` (MaybeEncodingError); in imap a failed input is one
// failed `Result` and the stream goes on, and its chunk-mates keep their results (Python fails
// the whole chunk: here a failure costs only its own input).

import Dispatch
import Foundation
import Multiprocessing
import XCTest

#if canImport(Glibc)
import Glibc
#endif

/// An initializer that always throws (a worker that cannot start).
struct Port3FailingInitializer: ParallelFunction {
    struct Refused: Error, CustomStringConvertible { var description: String { "the initializer refuses" } }
    func callAsFunction(_: Void) throws { throw Refused() }
}

/// CPython's `unpickleable_result` for map: a result that cannot be encoded for one input.
struct Port3NotEncodableAt: ParallelFunction {
    var failing: Int
    func callAsFunction(_ x: Int) -> FlagOrBroken { x == failing ? .broken : .flag(x % 2 == 0) }
}

/// A process of the machine, from /proc.
struct Port3ProcessEntry {
    var pid: pid_t
    var parent: pid_t
    var command: String
    var state: String
}

/// Every process of the machine.
func port3AllProcesses() -> [Port3ProcessEntry] {
    guard let entries = try? FileManager.default.contentsOfDirectory(atPath: "/proc") else { return [] }
    return entries.compactMap { entry -> Port3ProcessEntry? in
        guard let pid = pid_t(entry), let stat = readTextFile("/proc/\(entry)/stat"),
            let open = stat.firstIndex(of: "("), let close = stat.lastIndex(of: ")")
        else { return nil }
        let fields = stat[stat.index(close, offsetBy: 2)...].split(separator: " ")
        guard fields.count > 1, let parent = pid_t(fields[1]) else { return nil }
        return Port3ProcessEntry(
            pid: pid, parent: parent, command: String(stat[stat.index(after: open)..<close]), state: String(fields[0]))
    }
}

/// The live processes below this one (children, grandchildren…), but not the fork server.
func port3Descendants() -> Set<pid_t> {
    let all = port3AllProcesses()
    var found = Set<pid_t>()
    var frontier: Set<pid_t> = [getpid()]
    while !frontier.isEmpty {
        let next = all.filter { frontier.contains($0.parent) && $0.state != "Z" && $0.state != "X" }
        frontier = Set(next.map(\.pid)).subtracting(found)
        found.formUnion(frontier)
    }
    let servers = Set(all.filter { $0.command == "swiftmp-forksrv" }.map(\.pid))
    return found.subtracting(servers)
}

final class PoolLifecyclePortTests: PortTestCase {
    /// TestPoolNotLeakOnFailure: a pool whose workers cannot start fails its calls (here
    /// `PoolError(.startFailed)`, documented), and once terminated and joined no process it
    /// started is left.
    func testAPoolWhoseWorkersCannotStartLeavesNoProcess() throws {
        try forEachMethod { method in
            let before = port3Descendants()
            let pool = try Pool(processes: 3, startMethod: method, initializer: Port3FailingInitializer())
            let outcome = TestThread {
                XCTAssertThrowsError(try pool.map(Sqr(), Array(0..<10))) {
                    XCTAssertEqual(($0 as? PoolError)?.code, .startFailed, "\(method): \($0)")
                }
            }
            XCTAssertTrue(try outcome.wait(60), "\(method): a map on a pool whose workers cannot start hung")
            pool.terminate()
            try pool.join()
            let leaked = eventually(within: 10) { port3Descendants().subtracting(before).isEmpty }
            XCTAssertTrue(leaked, "\(method): processes left: \(port3Descendants().subtracting(before))")
        }
    }

    /// _TestPoolWorkerErrors.test_unpickleable_result through map and imap: the map fails
    /// with `PoolError(.encoding)` and its error callback runs once; in imap only that input
    /// fails, its chunk-mates too keep their results; the workers are kept.
    func testUnencodableResultsInMapAndImap() throws {
        try forEachMethod { method in
            try Pool.with(processes: 2, startMethod: method) { pool in
                let before = Set(try pool.map(WorkerPid(), 0..<20, chunkSize: 1))
                let box = NSLockish()
                nonisolated(unsafe) var errors: [any Error] = [], successes = 0
                let result = try pool.mapAsync(
                    Port3NotEncodableAt(failing: 3), Array(0..<8), chunkSize: 2,
                    callback: { _ in box.withLock { successes += 1 } }, errorCallback: { e in box.withLock { errors.append(e) } })
                XCTAssertThrowsError(try result.get(timeout: 30)) { XCTAssertEqual(($0 as? PoolError)?.code, .encoding, "\(method): \($0)") }
                XCTAssertTrue(eventually(within: 5) { box.withLock { errors.count == 1 } }, "\(method): the error callback")
                box.withLock {
                    XCTAssertEqual(successes, 0)
                    XCTAssertEqual((errors.first as? PoolError)?.code, .encoding, "\(method)")
                }
                for chunkSize in [1, 3] {
                    let results = Array(try pool.imap(Port3NotEncodableAt(failing: 3), Array(0..<8), chunkSize: chunkSize))
                    XCTAssertEqual(results.count, 8, "\(method) chunk \(chunkSize)")
                    for (i, r) in results.enumerated() {
                        if i == 3 {
                            XCTAssertThrowsError(try r.get()) { XCTAssertEqual(($0 as? PoolError)?.code, .encoding, "\($0)") }
                        } else {
                            XCTAssertEqual(try r.get(), .flag(i % 2 == 0), "\(method) chunk \(chunkSize) input \(i)")
                        }
                    }
                }
                let after = Set(try pool.map(WorkerPid(), 0..<20, chunkSize: 1))
                XCTAssertTrue(after.isSubset(of: before), "\(method): workers were replaced: \(before) → \(after)")
            }
        }
    }

    /// test_terminate with callbacks: calls still waiting when the pool is terminated run
    /// their error callback once, with `PoolError(.terminated)`, and never their callback.
    func testErrorCallbackOfACallEndedByTerminate() throws {
        try forEachMethod { method in
            let pool = try Pool(processes: 2, startMethod: method)
            let box = NSLockish()
            nonisolated(unsafe) var errors: [String: [any Error]] = [:], successes = 0
            let mapped = try pool.mapAsync(
                SlowSqr(seconds: 30), Array(0..<20), chunkSize: 1, callback: { _ in box.withLock { successes += 1 } },
                errorCallback: { e in box.withLock { errors["map", default: []].append(e) } })
            let applied = try pool.applyAsync(
                SlowSqr(seconds: 30), 3, callback: { _ in box.withLock { successes += 1 } },
                errorCallback: { e in box.withLock { errors["apply", default: []].append(e) } })
            usleep(200_000)
            pool.terminate()
            try pool.join()
            XCTAssertTrue(mapped.wait(timeout: 5), "\(method)")
            XCTAssertTrue(applied.wait(timeout: 5), "\(method)")
            XCTAssertTrue(eventually(within: 5) { box.withLock { errors.values.map(\.count) == [1, 1] } }, "\(method)")
            usleep(100_000) // a second callback would come now
            box.withLock {
                XCTAssertEqual(successes, 0, "\(method)")
                for (name, list) in errors {
                    XCTAssertEqual(list.count, 1, "\(method) \(name)")
                    XCTAssertEqual((list.first as? PoolError)?.code, .terminated, "\(method) \(name): \(String(describing: list.first))")
                }
                XCTAssertEqual(Set(errors.keys), ["map", "apply"], "\(method)")
            }
        }
    }

    /// test_map_async_callbacks with close and join: Python's join waits for the result
    /// handler, so every callback of the submitted work has run when join returns.
    func testCallbacksHaveRunWhenJoinReturns() throws {
        try forEachMethod { method in
            let pool = try Pool(processes: 2, startMethod: method)
            let box = NSLockish()
            nonisolated(unsafe) var calls = 0
            for i in 0..<20 {
                _ = try pool.applyAsync(SlowSqr(seconds: 0.01), i, callback: { _ in box.withLock { calls += 1 } })
            }
            _ = try pool.mapAsync(Sqr(), Array(0..<50), chunkSize: 5, callback: { _ in box.withLock { calls += 1 } })
            _ = try pool.mapAsync(
                SqrFailingAt(failing: 2), Array(0..<5), errorCallback: { _ in box.withLock { calls += 1 } })
            pool.close()
            try pool.join()
            box.withLock { XCTAssertEqual(calls, 22, "\(method): callbacks still to run after join") }
        }
    }

    /// test_async_timeout with map_async: a get that times out (TimeoutError, after about its
    /// timeout) leaves the result usable: a later get returns the values, and wait is true.
    func testGetThatTimedOutCanBeCalledAgain() throws {
        try forEachMethod { method in
            try Pool.with(processes: 2, startMethod: method) { pool in
                let result = try pool.mapAsync(SlowSqr(seconds: 0.5), Array(0..<4), chunkSize: 1)
                let (early, elapsed) = timed { Result { try result.get(timeout: 0.1) } }
                XCTAssertThrowsError(try early.get()) { XCTAssertTrue($0 is TimeoutError, "\(method): \($0)") }
                assertWaited(elapsed, 0.1, "get(timeout: 0.1)")
                XCTAssertFalse(result.isReady)
                XCTAssertFalse(result.wait(timeout: 0.01))
                XCTAssertEqual(try result.get(timeout: 30), [0, 1, 4, 9], "\(method)")
                XCTAssertTrue(result.wait(timeout: 0))
                XCTAssertTrue(result.isSuccessful)
                let starred = try pool.starmapAsync(Mul(), [(2, 3), (4, 5)])
                XCTAssertEqual(try starred.get(timeout: 30), [6, 20], "\(method)")
            }
        }
    }

    /// _TestPoolWorkerLifetime.test_pool_worker_lifetime through imap and imapUnordered: with
    /// maxTasksPerChild 2 every result is right and the workers are replaced.
    func testWorkerLifetimeWithImap() throws {
        try forEachMethod { method in
            try Pool.with(processes: 2, startMethod: method, maxTasksPerChild: 2) { pool in
                let pids = try pool.imap(WorkerPid(), Array(0..<24)).map { try $0.get() }
                XCTAssertEqual(pids.count, 24)
                XCTAssertGreaterThan(Set(pids).count, 2, "\(method): workers were not replaced")
                XCTAssertEqual(try pool.imap(Sqr(), Array(0..<30), chunkSize: 3).map { try $0.get() }, (0..<30).map { $0 * $0 })
                XCTAssertEqual(
                    try pool.imapUnordered(Sqr(), Array(0..<30), chunkSize: 2).map { try $0.get() }.sorted(),
                    (0..<30).map { $0 * $0 }, "\(method)")
            }
        }
    }
}
