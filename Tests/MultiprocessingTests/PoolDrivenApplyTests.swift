import Foundation
import XCTest

@testable import Multiprocessing

#if canImport(Glibc)
import Glibc
#endif

/// A synchronous `apply` on an idle pool runs the engine on the caller's thread
/// (`PoolEngine.runDriven`): with other threads calling at the same time, with crashes,
/// time limits, `close` and `terminate` from another thread, every call ends once, right.
final class PoolDrivenApplyTests: TimeLimitedTestCase {
    let methods: [StartMethod] = [.fork, .forkserver, .spawn]

    /// Four threads calling `apply` in a loop while the test thread runs maps and
    /// `applyAsync` with callbacks: every result right, every callback exactly once.
    func testApplyFromManyThreadsWhileOtherCallsRun() throws {
        for method in methods {
            let pool = try Pool(processes: 2, startMethod: method)
            defer { pool.terminate() }
            let wrong = CountingBox(0)
            let group = DispatchGroup()
            for thread in 0..<4 {
                group.enter()
                Thread.detachNewThread {
                    defer { group.leave() }
                    for i in 0..<150 {
                        let x = thread * 1000 + i
                        if (try? pool.apply(Square(), x)) != x * x { wrong.add(1) }
                    }
                }
            }
            let callbacks = CountingBox(0)
            var pending: [AsyncResult<Int>] = []
            for round in 0..<20 {
                XCTAssertEqual(try pool.map(Square(), 0..<50, chunkSize: 3), (0..<50).map { $0 * $0 }, "\(method)")
                pending.append(try pool.applyAsync(Square(), round) { _ in callbacks.add(1) })
            }
            XCTAssertEqual(group.wait(timeout: .now() + 60), .success, "\(method): apply threads hung")
            for (round, result) in pending.enumerated() { XCTAssertEqual(try result.get(timeout: 10), round * round) }
            pool.close()
            XCTAssertNoThrow(try pool.join())
            XCTAssertEqual(wrong.load(), 0, "\(method)")
            XCTAssertEqual(callbacks.load(), 20, "\(method)")
        }
    }

    /// A crash under `apply` costs that call (`WorkerDied`, the input named) and the next
    /// `apply` runs on the replacement; a time limit ends a long `apply` and the pool goes on.
    func testApplyCrashesAndTimeLimitsCostOnlyThatCall() throws {
        for method in methods {
            try Pool.with(processes: 1, startMethod: method) { pool in
                XCTAssertEqual(try pool.apply(Square(), 3), 9)
                XCTAssertThrowsError(try pool.apply(DieOn(victim: 4, way: .sigkill), 4), "\(method)") { error in
                    guard let died = error as? WorkerDied else { return XCTFail("\(method): \(error)") }
                    XCTAssertEqual(died.inputIndex, 0)
                    XCTAssertEqual(died.signal, SIGKILL)
                }
                XCTAssertEqual(try pool.apply(Square(), 5), 25, "\(method)")
                let start = monotonicNanoseconds()
                XCTAssertThrowsError(try pool.apply(Sleep(seconds: 10), 1, timeout: 0.5), "\(method)") { error in
                    XCTAssertTrue(error is TaskTimedOut, "\(method): \(error)")
                }
                XCTAssertLessThan(Double(monotonicNanoseconds() - start) / 1e9, 5, "\(method)")
                XCTAssertEqual(try pool.apply(Square(), 6), 36, "\(method)")
            }
        }
    }

    /// `terminate()` from another thread ends an `apply` that runs a long task: it fails
    /// with `PoolError.terminated`, within seconds, not after the task.
    /// (terminate() waits until the task runs: on a loaded machine, 100 ms was once not
    /// enough for the other thread to call `apply`, which then found the pool stopped.)
    func testTerminateFromAnotherThreadEndsARunningApply() throws {
        let pool = try Pool(processes: 1, startMethod: .fork)
        let marker = FileManager.default.temporaryDirectory.appendingPathComponent("swiftmp-running-\(UUID().uuidString)").path
        defer { unlink(marker) }
        let outcome = try applyOnAnotherThread(pool, MarkThenSleep(seconds: 30), marker, within: 10) {
            let end = monotonicNanoseconds() + 20_000_000_000
            while access(marker, F_OK) != 0 && monotonicNanoseconds() < end { usleep(1_000) }
            XCTAssertEqual(access(marker, F_OK), 0, "the task did not start within 20 s")
            pool.terminate()
        }
        guard case .failure(let error) = outcome else { return XCTFail("\(outcome)") }
        XCTAssertEqual((error as? PoolError)?.code, .terminated, "\(error)")
    }

    /// `close()` while an `apply` runs: the call completes, then the pool stops.
    func testCloseWhileAnApplyRunsLetsItFinish() throws {
        let pool = try Pool(processes: 1, startMethod: .fork)
        let outcome = try applyOnAnotherThread(pool, Sleep(seconds: 0.5), 7, within: 20) { pool.close() }
        XCTAssertEqual(try outcome.get(), 7)
        XCTAssertNoThrow(try pool.join())
    }

    /// Runs `pool.apply(function, input)` on a new thread, `meanwhile` 0.1 s later on this one,
    /// and returns the call's outcome (failing the test if it takes more than `within` s).
    private func applyOnAnotherThread<F: ParallelFunction>(
        _ pool: Pool, _ function: F, _ input: F.Input, within seconds: Double, meanwhile: () -> Void
    ) throws -> Result<F.Output, any Error> where F.Output: Sendable, F.Input: Sendable {
        let ended = DispatchSemaphore(value: 0)
        let outcome = LockedBox<Result<F.Output, any Error>?>(nil)
        Thread.detachNewThread {
            outcome.set(Result { try pool.apply(function, input) })
            ended.signal()
        }
        usleep(100_000)
        meanwhile()
        XCTAssertEqual(ended.wait(timeout: .now() + seconds), .success, "apply did not end")
        return try XCTUnwrap(outcome.get())
    }
}

/// Creates the file at its input, then sleeps: the caller knows the task runs.
struct MarkThenSleep: ParallelFunction {
    var seconds: Double
    func callAsFunction(_ path: String) -> Int {
        close(open(path, O_CREAT | O_WRONLY, 0o600))
        usleep(UInt32(seconds * 1e6))
        return 0
    }
}

/// A value several threads read and write.
final class LockedBox<Value>: @unchecked Sendable {
    private let lock = NSLock()
    private var value: Value
    init(_ value: Value) { self.value = value }
    func get() -> Value { lock.withLock { value } }
    func set(_ newValue: Value) { lock.withLock { value = newValue } }
}

/// An integer several threads add to.
final class CountingBox: @unchecked Sendable {
    private let lock = NSLock()
    private var value: Int
    init(_ value: Int) { self.value = value }
    func add(_ amount: Int) { lock.withLock { value += amount } }
    func load() -> Int { lock.withLock { value } }
}
