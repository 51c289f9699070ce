import Dispatch
import XCTest

@testable import Multiprocessing

#if canImport(Glibc)
import Glibc
#endif

/// Runs `body` on another thread and waits for it (at most 10 s).
func onOtherThread<T: Sendable>(_ body: @escaping @Sendable () throws -> T) throws -> T {
    let box = ResultBox<T>()
    let group = DispatchGroup()
    group.enter()
    DispatchQueue.global().async {
        box.result = Result { try body() }
        group.leave()
    }
    guard group.wait(timeout: .now() + 10) == .success, let result = box.result else {
        throw TimeoutError(seconds: 10)
    }
    return try result.get()
}

final class ResultBox<T>: @unchecked Sendable { var result: Result<T, any Error>? }

final class LockTests: XCTestCase {
    func testAcquireReleaseAndState() throws {
        let lock = try Lock()
        XCTAssertFalse(lock.isLocked)
        XCTAssertTrue(try lock.acquire())
        XCTAssertTrue(lock.isLocked)
        XCTAssertTrue(lock.isHeldByCurrentThread)
        // Another thread: non-blocking and timed attempts fail, in about the time asked.
        XCTAssertFalse(try onOtherThread { try lock.acquire(blocking: false) })
        let start = monotonicSeconds()
        XCTAssertEqual(try onOtherThread { try lock.acquireReportingRecovery(timeout: 0.1) }, .timedOut)
        let waited = monotonicSeconds() - start
        XCTAssertGreaterThan(waited, 0.09)
        XCTAssertLessThan(waited, 2)
        try lock.release()
        XCTAssertFalse(lock.isLocked)
        XCTAssertEqual(try lock.withLock { 42 }, 42)
        XCTAssertFalse(lock.isLocked)
    }

    /// Python's `lock.acquire(False)` (or with a timeout) by the holder returns False; only
    /// a wait without limit, which could never end, is refused.
    func testHolderTryingAgainWithoutWaitingGetsFalse() throws {
        let lock = try Lock()
        try lock.acquire()
        XCTAssertFalse(try lock.acquire(blocking: false))
        XCTAssertEqual(try lock.acquireReportingRecovery(blocking: false), .timedOut)
        XCTAssertFalse(try lock.acquire(timeout: 0.05))
        XCTAssertTrue(lock.isHeldByCurrentThread)
        try lock.release()
        XCTAssertFalse(lock.isLocked)
    }

    func testMisuseThrowsTypedErrors() throws {
        let lock = try Lock()
        XCTAssertThrowsError(try lock.release()) {
            XCTAssertEqual(($0 as? SynchronizationError)?.code, .notHeld)
        }
        try lock.acquire()
        XCTAssertThrowsError(try lock.acquire()) {
            XCTAssertEqual(($0 as? SynchronizationError)?.code, .wouldDeadlock)
        }
        // Another thread cannot release what this one holds.
        XCTAssertThrowsError(try onOtherThread { try lock.release() }) {
            XCTAssertEqual(($0 as? SynchronizationError)?.code, .notHeld)
        }
        try lock.release()
    }

    func testUncontendedLockUnlockCost() throws {
        let lock = try Lock()
        let rounds = 1_000_000
        let start = monotonicSeconds()
        for _ in 0..<rounds {
            _ = try lock.acquire()
            try lock.release()
        }
        let nanoseconds = (monotonicSeconds() - start) / Double(rounds) * 1e9
        print("Lock acquire+release, uncontended: \(Int(nanoseconds)) ns")
        XCTAssertLessThan(nanoseconds, 2_000)
    }

    func testRLockIsReentrantAndOwned() throws {
        let lock = try RLock()
        try lock.acquire()
        try lock.acquire()
        XCTAssertEqual(try lock.withLock { 7 }, 7)
        try lock.release()
        XCTAssertFalse(try onOtherThread { try lock.acquire(timeout: 0.05) })
        try lock.release()
        XCTAssertFalse(lock.isLocked)
        XCTAssertThrowsError(try lock.release()) {
            XCTAssertEqual(($0 as? SynchronizationError)?.code, .notHeld)
        }
        XCTAssertTrue(
            try onOtherThread {
                let got = try lock.acquire(timeout: 1); try lock.release(); return got
            })
    }

    /// Two processes × 100 000 locked increments end at exactly 200 000, whatever the start
    /// method; the counter is made after the workers started, so it travels by SCM_RIGHTS.
    func testTwoProcessCounterUnderLockIsExact() throws {
        for method in [StartMethod.fork, .spawn] {
            try Pool.with(processes: 2, startMethod: method) { pool in
                _ = try pool.map(Square(), [1, 2], chunkSize: 1)
                let counter = try SharedValue(0)
                let start = monotonicSeconds()
                let times = try pool.map(IncrementCounter(counter: counter), [100_000, 100_000], chunkSize: 1)
                let wall = monotonicSeconds() - start
                XCTAssertEqual(counter.value, 200_000, "\(method)")
                let rate = 200_000 / (times.max() ?? wall)
                print(
                    """
                    \(method): 2 processes × 100 000 locked increments: \
                    \(Int(rate)) incr/s inside the workers, \(Int(200_000 / wall)) incr/s with the pool round trip
                    """)
            }
        }
    }

    /// A worker SIGKILLed while holding the lock does not leave it locked: the next acquirer
    /// gets it and is told that the previous owner died.
    func testLockHeldByKilledProcessIsRecovered() throws {
        try Pool.with(processes: 1, startMethod: .spawn) { pool in
            let value = try SharedValue(0)
            XCTAssertThrowsError(try pool.apply(DieHoldingLock(value: value), 99)) {
                XCTAssertTrue($0 is WorkerDied, "\($0)")
            }
            let outcome = try value.lock.acquireReportingRecovery(timeout: 5)
            XCTAssertEqual(outcome, .acquiredFromDeadOwner)
            XCTAssertTrue(outcome.previousOwnerDied)
            XCTAssertEqual(value.value, 99) // re-entrant access while held
            try value.lock.release()
            // Usable normally afterwards, from this process and from a new worker.
            XCTAssertEqual(try value.lock.acquireReportingRecovery(timeout: 1), .acquired)
            try value.lock.release()
            _ = try pool.map(IncrementCounter(counter: value), [1000])
            XCTAssertEqual(value.value, 1099)
        }
    }

    /// Out of descriptors (each lock holds one for its segment), creating one more says what to
    /// do — drop objects or raise `ulimit -n`, with the limit — instead of only "Too many open
    /// files". Checked in a forked child whose descriptor limit is a few above those it has open.
    func testRunningOutOfDescriptorsSaysWhatToDo() throws {
        let (mine, theirs) = try Pipe()
        let child = Process(target: LocksUntilOutOfDescriptors(report: theirs), startMethod: .fork)
        try child.start()
        XCTAssertTrue(try mine.poll(timeout: 60), "the child reported nothing")
        let message = try mine.recv(String.self)
        XCTAssertTrue(try child.join(timeout: 30))
        XCTAssertTrue(message.hasPrefix("after "), message)
        XCTAssertTrue(message.contains("Too many open files"), message)
        XCTAssertTrue(message.contains("ulimit -n"), message)
        XCTAssertTrue(message.contains("Lock"), message)
    }
}

/// Lowers this process's descriptor limit to a few above its highest open descriptor, creates
/// locks until one fails, and sends "after <n> locks: <error>".
struct LocksUntilOutOfDescriptors: ParallelFunction {
    var report: Connection
    func callAsFunction(_: Void) throws {
        let highest = (try FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")).compactMap { Int32($0) }.max() ?? 2
        var limit = rlimit()
        guard getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit) == 0 else { throw SystemError("getrlimit", errno: errno) }
        limit.rlim_cur = rlim_t(highest + 8)
        guard setrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit) == 0 else { throw SystemError("setrlimit", errno: errno) }
        var locks: [Lock] = []
        do {
            while locks.count < 1000 { locks.append(try Lock()) }
            try report.send("1000 locks made: no limit reached")
        } catch {
            try report.send("after \(locks.count) locks: \(error)")
        }
    }
}
