// Helpers shared by the ports of CPython's Lib/test/_test_multiprocessing.py (one file per
// CPython test class family; each file's header maps CPython test names to Swift ones).
//
// CPython runs every case class three times (test_multiprocessing_fork, _spawn, _forkserver);
// here a case loops over `PortTestCase.methods` with `forEachMethod`, which names the start
// method in every failure. Timing checks follow CPython's `assertTimingAlmostEqual` loosely:
// "about 0" is "well under a second" and "about T" is "at least T, at most T + 2 s", because
// this machine has two cores shared with other builds.

import Dispatch
import Foundation
import Multiprocessing
import XCTest

#if canImport(Glibc)
import Glibc
#endif

/// Seconds on the monotonic clock.
func monotonicNow() -> Double {
    var time = timespec()
    clock_gettime(CLOCK_MONOTONIC, &time)
    return Double(time.tv_sec) + Double(time.tv_nsec) * 1e-9
}

/// How long `body` took, with its result.
func timed<T>(_ body: () throws -> T) rethrows -> (T, Double) {
    let start = monotonicNow()
    let value = try body()
    return (value, monotonicNow() - start)
}

/// A base class: the start methods, a watchdog (a hung test kills the test process after
/// 150 s instead of CI's deadline), and the helpers CPython's `BaseTestCase` gives.
class PortTestCase: XCTestCase {
    /// Every start method the API has (`.automatic` resolves to one of them).
    static let methods: [StartMethod] = [.fork, .forkserver, .spawn]

    override func setUp() {
        super.setUp()
        alarm(150)
    }

    override func tearDown() {
        alarm(0)
        super.tearDown()
    }

    /// Runs `body` once per start method; a failure names the method.
    func forEachMethod(
        _ methods: [StartMethod] = PortTestCase.methods,
        _ body: (StartMethod) throws -> Void
    ) throws {
        for method in methods {
            do {
                try body(method)
            } catch {
                XCTFail("\(method): \(error)")
            }
        }
    }

    /// Creates and starts a process.
    @discardableResult
    func started(
        _ target: some ParallelFunction<Void, Void>, name: String? = nil, daemon: Bool = false,
        _ method: StartMethod
    ) throws -> Multiprocessing.Process {
        let p = Multiprocessing.Process(target: target, name: name, daemon: daemon, startMethod: method)
        try p.start()
        return p
    }

    /// Joins `p` within `seconds` (CPython's `join_process`); kills it and fails if it does
    /// not end.
    func joinOrKill(
        _ p: Multiprocessing.Process, _ seconds: Double = 30, _ what: String = "",
        file: StaticString = #filePath, line: UInt = #line
    ) throws {
        if try !p.join(timeout: seconds) {
            XCTFail("\(p.name) \(what): did not end within \(seconds) s", file: file, line: line)
            try p.kill()
            _ = try p.join(timeout: 20)
        }
    }

    /// Polls `condition` every 5 ms for at most `seconds` (CPython's sleeping_retry);
    /// whether it became true.
    func eventually(within seconds: Double = 20, _ condition: () throws -> Bool) rethrows -> Bool {
        let end = monotonicNow() + seconds
        while monotonicNow() < end {
            if try condition() { return true }
            usleep(5_000)
        }
        return try condition()
    }

    /// CPython's assertTimingAlmostEqual(elapsed, 0): well under a second here.
    func assertQuick(_ elapsed: Double, _ what: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertLessThan(elapsed, 1.0, "\(what) should return at once, took \(elapsed) s", file: file, line: line)
    }

    /// CPython's assertTimingAlmostEqual(elapsed, seconds) for a timed-out wait: not before
    /// the timeout (minus the clock's slack), and not much after.
    func assertWaited(
        _ elapsed: Double, _ seconds: Double, _ what: String,
        file: StaticString = #filePath, line: UInt = #line
    ) {
        XCTAssertGreaterThanOrEqual(elapsed, seconds - 0.01, "\(what) returned early", file: file, line: line)
        XCTAssertLessThan(elapsed, seconds + 2.0, "\(what) returned late", file: file, line: line)
    }
}

/// A port test case with a `Manager` made before each test and shut down after it (CPython's
/// 'manager' type cases).
class ManagerPortTestCase: PortTestCase {
    var manager: Manager!

    override func setUpWithError() throws {
        try super.setUpWithError()
        manager = try Manager()
    }

    override func tearDown() {
        manager?.shutdown()
        manager = nil
        super.tearDown()
    }
}

/// Runs `body` on a thread of its own (CPython's threading.Thread in the mixed cases); `wait`
/// joins it within a bound. A new thread each time, not a Dispatch queue's: in a `.fork` child
/// of a process that used Dispatch's thread pool, that pool has no threads and runs nothing.
final class TestThread: @unchecked Sendable {
    private let done = DispatchSemaphore(value: 0)
    private let lock = NSLockish()
    private var failure: (any Error)?

    init(_ body: @escaping @Sendable () throws -> Void) {
        Thread.detachNewThread { [self] in
            do { try body() } catch { lock.withLock { failure = error } }
            done.signal()
        }
    }

    /// Waits at most `seconds`; false if the thread is still running. Rethrows its error.
    @discardableResult
    func wait(_ seconds: Double = 30) throws -> Bool {
        guard done.wait(timeout: .now() + seconds) == .success else { return false }
        done.signal() // later waits return at once
        if let failure = lock.withLock({ failure }) { throw failure }
        return true
    }
}

/// A pthread mutex, for test bookkeeping across threads.
final class NSLockish: @unchecked Sendable {
    private var mutex = pthread_mutex_t()
    init() { pthread_mutex_init(&mutex, nil) }
    func withLock<T>(_ body: () throws -> T) rethrows -> T {
        pthread_mutex_lock(&mutex)
        defer { pthread_mutex_unlock(&mutex) }
        return try body()
    }
}

/// An error a child target throws to end with a failure (exit 1) that names what went wrong.
struct ChildCheckFailed: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// `assert` for child targets: throws (exit status 1) instead of trapping.
func require(_ condition: Bool, _ what: @autoclosure () -> String) throws {
    if !condition { throw ChildCheckFailed(what()) }
}

/// Square of an Int (CPython's `sqr`).
struct Sqr: ParallelFunction {
    func callAsFunction(_ x: Int) -> Int { x * x }
}

/// Sleeps, then squares (CPython's `sqr(x, wait)`).
struct SlowSqr: ParallelFunction {
    var seconds: Double
    func callAsFunction(_ x: Int) -> Int {
        usleep(UInt32(seconds * 1e6))
        return x * x
    }
}

/// Sleeps for `seconds`; returns nothing (CPython's time.sleep as a target).
struct SleepFor: ParallelFunction {
    var seconds: Double
    func callAsFunction(_: Void) { usleep(UInt32(seconds * 1e6)) }
}
