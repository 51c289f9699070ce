import XCTest

@testable import Multiprocessing

#if canImport(Glibc)
import Glibc
#endif

/// Crashes the worker the first time it sees an input in `victims` (a marker file in
/// `directory` remembers it across processes); succeeds on the next attempt.
struct CrashOnceOn: ParallelFunction {
    var directory: String
    var victims: Set<Int>
    func callAsFunction(_ x: Int) -> Int {
        if victims.contains(x) {
            let fd = open("\(directory)/\(x)", O_CREAT | O_EXCL | O_WRONLY, 0o600)
            if fd >= 0 {
                close(fd)
                kill(getpid(), SIGKILL)
            }
        }
        return x * 10
    }
}

/// Throws for inputs in `victims`.
struct ThrowOn: ParallelFunction {
    var victims: Set<Int>
    func callAsFunction(_ x: Int) throws -> Int {
        if victims.contains(x) { throw Boom(value: x) }
        return x
    }
}

/// Uses a pool inside a pool task.
struct NestedPool: ParallelFunction {
    func callAsFunction(_ x: Int) throws -> Int {
        let inner = try Pool(processes: 1)
        return try inner.apply(Square(), x)
    }
}

private func temporaryDirectory() -> String {
    var template = Array("/tmp/swiftmp-retry-XXXXXX".utf8CString)
    return template.withUnsafeMutableBufferPointer { String(cString: mkdtemp($0.baseAddress!)) }
}

private func seconds(since start: UInt64) -> Double { Double(monotonicNanoseconds() - start) / 1e9 }

/// Time limits, retries, cancellation and the async forms, on every start method.
final class PoolPolicyTests: TimeLimitedTestCase {
    let methods: [StartMethod] = [.fork, .forkserver, .spawn]

    func testTimeoutKillsTheTaskAndThePoolGoesOn() throws {
        for method in methods {
            try Pool.with(processes: 2, startMethod: method) { pool in
                try everyWorkerRuns(pool) // the bound below is not for a worker's start
                let start = monotonicNanoseconds()
                XCTAssertThrowsError(try pool.apply(Sleep(seconds: 10), 1, timeout: 0.5)) { error in
                    guard let timedOut = error as? TaskTimedOut else { return XCTFail("\(method): \(error)") }
                    XCTAssertEqual(timedOut.inputIndex, 0)
                    XCTAssertEqual(timedOut.seconds, 0.5)
                    XCTAssertNotNil(timedOut.pid)
                }
                XCTAssertLessThan(seconds(since: start), 1.5, "\(method)")
                XCTAssertEqual(try pool.map(Square(), 0..<10), (0..<10).map { $0 * $0 }, "\(method)")
            }
        }
    }

    func testTimeoutInImapIsOneFailedResultAndTheStreamGoesOn() throws {
        try Pool.with(processes: 2, taskTimeout: 0.4) { pool in
            let results = Array(try pool.imap(SleepMilliseconds(), [5, 3000, 5, 5, 5]))
            XCTAssertEqual(results.count, 5)
            XCTAssertEqual(results.compactMap { try? $0.get() }, [5, 5, 5, 5])
            guard case .failure(let error) = results[1] else { return XCTFail("input 1 should time out") }
            XCTAssertEqual((error as? TaskTimedOut)?.inputIndex, 1, "\(error)")
        }
    }

    func testTimeoutInsideAChunkNamesTheInputAndRunsTheOthers() throws {
        try Pool.with(processes: 2) { pool in
            let results = Array(try pool.imap(SleepMilliseconds(), [1, 2, 3000, 4, 5, 6], chunkSize: 3, timeout: 0.4))
            XCTAssertEqual(results.compactMap { try? $0.get() }, [1, 2, 4, 5, 6])
            guard case .failure(let error) = results[2] else { return XCTFail("input 2 should time out") }
            XCTAssertEqual((error as? TaskTimedOut)?.inputIndex, 2, "\(error)")
        }
    }

    func testRetryRunsACrashedInputAgain() throws {
        for method in methods {
            let directory = temporaryDirectory()
            try Pool.with(processes: 2, startMethod: method) { pool in
                let results = try pool.map(
                    CrashOnceOn(directory: directory, victims: [3, 7]), 0..<10, chunkSize: 2,
                    retry: RetryPolicy(attempts: 2))
                XCTAssertEqual(results, (0..<10).map { $0 * 10 }, "\(method)")
            }
        }
    }

    func testRetriesExhaustedSaysWhatEachAttemptEndedWith() throws {
        try Pool.with(processes: 2, retry: RetryPolicy(attempts: 3, on: [.threw, .workerDied])) { pool in
            XCTAssertThrowsError(try pool.map(ThrowOn(victims: [4]), 0..<8)) { error in
                guard let exhausted = error as? RetriesExhausted else { return XCTFail("\(error)") }
                XCTAssertEqual(exhausted.inputIndex, 4)
                XCTAssertEqual(exhausted.attempts, 3)
                XCTAssertTrue(exhausted.failures.allSatisfy { $0.contains("boom at 4") }, "\(exhausted)")
                guard let remote = exhausted.lastError as? RemoteError else { return XCTFail("\(exhausted.lastError)") }
                // Where it ran, for a scientist to act on.
                XCTAssertNotNil(remote.pid)
                XCTAssertNotNil(remote.host)
                XCTAssertTrue("\(remote)".contains("worker process \(remote.pid!) on \(remote.host!)"), "\(remote)")
            }
            // A predicate that refuses: no retry, the plain error.
            let never = RetryPolicy(attempts: 3, on: [.threw], when: { _ in false })
            XCTAssertThrowsError(try pool.map(ThrowOn(victims: [1]), 0..<3, retry: never)) {
                XCTAssertTrue($0 is RemoteError, "\($0)")
            }
        }
    }

    func testRetryBackoffWaits() throws {
        let directory = temporaryDirectory()
        try Pool.with(processes: 1) { pool in
            let start = monotonicNanoseconds()
            XCTAssertEqual(
                try pool.apply(
                    CrashOnceOn(directory: directory, victims: [1]), 1,
                    retry: RetryPolicy(attempts: 2, backoff: 0.3)), 10)
            XCTAssertGreaterThanOrEqual(seconds(since: start), 0.3)
        }
    }

    func testCancelKillsTheRunningTaskAndCallbacksRunOnce() throws {
        for method in methods {
            let ledger = CallbackLedger()
            try Pool.with(processes: 2, startMethod: method) { pool in
                let pids = Set(try pool.map(WorkerPID(), Array(0..<20)))
                let long = try pool.applyAsync(
                    Sleep(seconds: 10), 1, callback: { _ in ledger.record("ok") },
                    errorCallback: { _ in ledger.record("error") })
                usleep(100_000)
                let start = monotonicNanoseconds()
                long.cancel()
                XCTAssertThrowsError(try long.get(timeout: 5)) {
                    XCTAssertEqual(($0 as? PoolError)?.code, .cancelled, "\(method): \($0)")
                }
                XCTAssertLessThan(seconds(since: start), 1, "\(method)")
                long.cancel() // again: nothing happens
                // Both workers free again within a second: the sleeping one was replaced.
                let after = Set(try pool.map(WorkerPID(), Array(0..<20)))
                XCTAssertEqual(try pool.map(Square(), 0..<10, timeout: 2), (0..<10).map { $0 * $0 }, "\(method)")
                XCTAssertNotEqual(after, pids, "\(method): a worker should have been replaced")
            }
            XCTAssertEqual(ledger.snapshot, ["error": 1], "\(method)")
        }
    }

    func testDroppingAnImapStreamCancelsItsWork() throws {
        try Pool.with(processes: 2) { pool in
            do {
                let stream = try pool.imap(Sleep(seconds: 10), Array(0..<6))
                _ = stream // dropped unconsumed
            }
            let start = monotonicNanoseconds()
            XCTAssertEqual(try pool.map(Square(), 0..<4), [0, 1, 4, 9])
            XCTAssertLessThan(seconds(since: start), 2)
        }
    }

    func testAsyncFormsAndTaskCancellation() async throws {
        let pool = try Pool(processes: 2)
        defer { pool.terminate() }
        let squares = try await pool.asyncMap(Square(), 0..<5)
        XCTAssertEqual(squares, [0, 1, 4, 9, 16])
        let sum = try await pool.asyncStarmap(Add(), [(1, 2), (3, 4)])
        XCTAssertEqual(sum, [3, 7])
        let one = try await pool.asyncApply(Square(), 9)
        XCTAssertEqual(one, 81)
        let task = Task { try await pool.asyncApply(Sleep(seconds: 10), 1) }
        try await Task.sleep(nanoseconds: 100_000_000)
        let start = monotonicNanoseconds()
        task.cancel()
        do {
            _ = try await task.value
            XCTFail("cancelled task returned")
        } catch {
            XCTAssertEqual((error as? PoolError)?.code, .cancelled, "\(error)")
        }
        XCTAssertLessThan(seconds(since: start), 2)
        let again = try await pool.asyncMap(Square(), [3])
        XCTAssertEqual(again, [9])
    }

    func testEveryCallbackRunsExactlyOnceUnderCrashes() throws {
        let ledger = CallbackLedger()
        try Pool.with(processes: 2) { pool in
            var results: [AsyncResult<Int>] = []
            for input in 0..<60 {
                results.append(
                    try pool.applyAsync(
                        CrashOn(victims: Set(stride(from: 0, to: 60, by: 7))), input,
                        callback: { ledger.record("ok \($0)") },
                        errorCallback: { _ in ledger.record("error \(input)") }))
            }
            for result in results { _ = result.wait(timeout: 30) }
        }
        let expected = Dictionary(uniqueKeysWithValues: (0..<60).map { ($0 % 7 == 0 ? "error \($0)" : "ok \($0)", 1) })
        XCTAssertEqual(ledger.snapshot, expected)
    }

    func testJoinWithoutCloseThrowsAndNestedPoolFailsAtOnce() throws {
        let pool = try Pool(processes: 1)
        XCTAssertThrowsError(try pool.join()) { XCTAssertEqual(($0 as? PoolError)?.code, .stillRunning) }
        XCTAssertThrowsError(try pool.apply(NestedPool(), 3)) { error in
            guard let remote = error as? RemoteError else { return XCTFail("\(error)") }
            XCTAssertTrue(remote.message.contains("inside a pool task"), remote.message)
        }
        pool.close()
        try pool.join()
    }

    /// `on` reads back what was set, through the initializer and the property, and decides
    /// which failures are retried.
    func testRetryPolicyOnReadsBackAndDecides() {
        var policy = RetryPolicy(attempts: 3, on: [.threw])
        XCTAssertEqual(policy.on, [.threw])
        XCTAssertTrue(policy.retries(.threw, error: PoolError(.closed, "x"), after: 1))
        XCTAssertFalse(policy.retries(.workerDied, error: PoolError(.closed, "x"), after: 1))
        policy.on = [.workerDied, .timedOut]
        XCTAssertEqual(policy.on, [.workerDied, .timedOut])
        XCTAssertTrue(policy.retries(.timedOut, error: PoolError(.closed, "x"), after: 2))
        XCTAssertFalse(policy.retries(.timedOut, error: PoolError(.closed, "x"), after: 3), "attempts used up")
        XCTAssertFalse(policy.retries(.threw, error: PoolError(.closed, "x"), after: 1))
        XCTAssertEqual(RetryPolicy(attempts: 2).on, [.workerDied, .timedOut])
        XCTAssertEqual(RetryPolicy.none.on, [])
        XCTAssertEqual(RetryPolicy.none.attempts, 1)
        policy.on = []
        XCTAssertEqual(policy.on, [])
    }

    func testBadPolicyArgumentsAreClearErrors() throws {
        XCTAssertThrowsError(try Pool(processes: 1, taskTimeout: 0)) {
            XCTAssertEqual(($0 as? PoolError)?.code, .invalidArgument)
        }
        try Pool.with(processes: 1) { pool in
            XCTAssertThrowsError(try pool.map(Square(), [1], retry: RetryPolicy(attempts: 0))) {
                XCTAssertEqual(($0 as? PoolError)?.code, .invalidArgument)
            }
            XCTAssertThrowsError(try pool.map(Square(), [1], timeout: -1)) {
                XCTAssertEqual(($0 as? PoolError)?.code, .invalidArgument)
            }
        }
    }
}

extension PoolPolicyTests {
    /// `RetriesExhausted` reads as one line per attempt, then the last attempt's crash report
    /// once — not every attempt's report in one run-on line (several KB); each attempt's
    /// whole description stays in `failures`, the last error in `lastError`.
    func testRetriesExhaustedReadsAsOneLinePerAttemptAndTheLastReportOnce() throws {
        try Pool.with(processes: 1, startMethod: .fork) { pool in
            XCTAssertThrowsError(try pool.apply(DieOn(victim: 1, way: .segfault), 1, retry: RetryPolicy(attempts: 3))) { error in
                guard let exhausted = error as? RetriesExhausted else { return XCTFail("\(error)") }
                let text = "\(exhausted)"
                let last = "\(exhausted.lastError)"
                func count(_ part: String, in whole: String) -> Int { whole.components(separatedBy: part).count - 1 }
                let frame = "DieOn.callAsFunction"
                XCTAssertGreaterThan(count(frame, in: last), 0, "the last attempt's report: \(last)")
                XCTAssertEqual(count(frame, in: text), count(frame, in: last), "the report once: \(text)")
                XCTAssertTrue(exhausted.failures.allSatisfy { $0.contains(frame) }, "every report kept: \(exhausted.failures)")
                let lines = text.split(separator: "\n")
                XCTAssertEqual(lines.first, "input 0 failed 3 times:", text)
                for attempt in 1...3 {
                    XCTAssertTrue(
                        lines[attempt].hasPrefix("  attempt \(attempt): worker process ")
                            && lines[attempt].hasSuffix("was killed by signal 11 (SIGSEGV) while running input 0"),
                        text)
                }
            }
        }
    }
}
