import Foundation
import Synchronization
import XCTest

@testable import Multiprocessing

#if canImport(Glibc)
import Glibc
#endif

/// Runs `body` on its own thread and waits at most `seconds` for it: a hang fails the test
/// instead of the suite (the stuck thread is left behind).
func bounded<T: Sendable>(
    _ seconds: Double, _ what: String, file: StaticString = #filePath, line: UInt = #line,
    _ body: @escaping @Sendable () throws -> T
) throws -> T {
    let done = ConditionLock()
    nonisolated(unsafe) var outcome: Result<T, any Error>?
    try spawnThread(named: "test-bounded") {
        let result = Result { try body() }
        done.withLock {
            outcome = result
            done.broadcast()
        }
    }
    let end = monotonicNanoseconds() + UInt64(seconds * 1e9)
    let result = done.withLock { () -> Result<T, any Error>? in
        while outcome == nil && monotonicNanoseconds() < end { done.wait(until: end) }
        return outcome
    }
    guard let result else {
        XCTFail("\(what) did not finish within \(seconds) s (hang)", file: file, line: line)
        throw XCTSkip("hung: \(what)")
    }
    return try result.get()
}

/// The pids of this process's live (not zombie) children whose name (comm) is `name`.
func children(named name: String) -> [pid_t] {
    guard let entries = try? FileManager.default.contentsOfDirectory(atPath: "/proc") else { return [] }
    return entries.compactMap { entry -> pid_t? in
        guard let pid = pid_t(entry),
            let stat = try? String(contentsOfFile: "/proc/\(entry)/stat", encoding: .utf8),
            let open = stat.firstIndex(of: "("), let close = stat.lastIndex(of: ")")
        else { return nil }
        let comm = stat[stat.index(after: open)..<close]
        let fields = stat[stat.index(close, offsetBy: 2)...].split(separator: " ")
        guard comm == name, fields.count > 1, fields[0] != "Z", pid_t(fields[1]) == getpid() else { return nil }
        return pid
    }
}

final class ProcessLifecycleTests: XCTestCase {
    static let methods: [StartMethod] = [.fork, .forkserver, .spawn]

    /// Joins `p` within `seconds`; kills it (and fails) if it does not end.
    private func joinOrKill(
        _ p: Multiprocessing.Process, _ seconds: Double, _ what: String,
        file: StaticString = #filePath, line: UInt = #line
    ) throws {
        if try !p.join(timeout: seconds) {
            XCTFail("\(what): did not end within \(seconds) s", file: file, line: line)
            try p.kill()
            _ = try p.join(timeout: 20)
        }
    }

    /// A Process started inside a Process child, for every pair of start methods (CPython's
    /// test_recursion / test_nested_startmethod): a forked child used to inherit ForkGuard's
    /// lock write-locked and hang in its first fork.
    func testNestedProcessOnEveryPairOfStartMethods() throws {
        for outer in Self.methods {
            for inner in Self.methods {
                let p = Process(target: StartNested(method: inner, status: 9), startMethod: outer)
                try p.start()
                try joinOrKill(p, 40, "\(outer) → \(inner)")
                XCTAssertEqual(p.exitCode, 9, "\(outer) child starting a \(inner) grandchild")
            }
        }
    }

    /// A queue given to a child reaches the child's own children, for every pair of start
    /// methods (a forked child used to pass on descriptor numbers it had closed).
    func testQueuePassesFromAChildToItsChildren() throws {
        let queue = try Queue<Int>()
        for outer in Self.methods {
            for inner in Self.methods {
                let p = Process(target: PassQueueOn(queue: queue, method: inner), startMethod: outer)
                try p.start()
                try joinOrKill(p, 40, "\(outer) → \(inner)")
                XCTAssertEqual(p.exitCode, 0, "a \(outer) child passing the queue to a \(inner) grandchild")
                if p.exitCode == 0 {
                    XCTAssertEqual(try (0..<3).map { _ in try queue.get(timeout: 20) }, [10, 11, 12])
                }
            }
        }
    }

    /// A child's unjoined children at its end: non-daemon ones are waited for, daemon ones
    /// terminated (Python's exit function runs in its children too; ours ended with _exit,
    /// which killed every grandchild through PR_SET_PDEATHSIG).
    func testAChildWaitsForItsNonDaemonChildrenAtItsEnd() throws {
        let queue = try Queue<Int>()
        for outer in Self.methods {
            let p = Process(target: LeaveChildrenRunning(queue: queue, method: outer), startMethod: outer)
            try p.start()
            try joinOrKill(p, 40, "\(outer)")
            XCTAssertEqual(p.exitCode, 0, "\(outer)")
            XCTAssertEqual(try? queue.getNowait(), 1, "the non-daemon grandchild finished before its parent ended (\(outer))")
            XCTAssertNil(try? queue.get(timeout: 0.5), "the daemon grandchild was terminated (\(outer))")
        }
    }

    /// A Pool made inside a Process target (CPython's test_pool_in_process).
    func testPoolInsideAProcessOnEveryStartMethod() throws {
        for outer in Self.methods {
            for inner in Self.methods {
                let p = Process(target: PoolInTarget(method: inner), startMethod: outer)
                try p.start()
                try joinOrKill(p, 60, "\(outer) → pool \(inner)")
                XCTAssertEqual(p.exitCode, 0, "a \(inner) pool inside a \(outer) child")
            }
        }
    }

    /// A lock that another thread held at the fork is new and unlocked in the child (the
    /// library's process-wide locks — the supervisor's, the process registry's, the fork
    /// server's… — are such locks).
    func testLocksHeldByOtherThreadsAreUnlockedInAForkedChild() throws {
        let held = ConditionLock()
        nonisolated(unsafe) var state = 0 // 1: the helper holds the lock; 2: let it go
        try spawnThread(named: "test-holder") {
            heldAcrossFork.lock()
            held.withLock {
                state = 1
                held.broadcast()
                while state != 2 { held.wait(until: monotonicNanoseconds() + 30_000_000_000) }
            }
            heldAcrossFork.unlock()
        }
        held.withLock { while state != 1 { held.wait(until: monotonicNanoseconds() + 30_000_000_000) } }
        defer {
            held.withLock {
                state = 2; held.broadcast()
            }
        }
        let p = Process(target: TakeLockHeldAcrossFork(), startMethod: .fork)
        try p.start()
        try joinOrKill(p, 30, "child taking the lock")
        XCTAssertEqual(p.exitCode, 0, "the lock is unlocked in the child")
    }

    /// A child forked while another thread of the parent holds the supervisor's lock (it is
    /// starting a child there) can still start children of its own.
    func testForkWhileAnotherThreadStartsChildren() throws {
        let stop = Atomic<Bool>(false)
        try spawnThread(named: "test-starter") {
            while !stop.load(ordering: .relaxed) {
                let p = Process(target: EndWith(way: .success), startMethod: .spawn)
                if (try? p.start()) != nil { _ = try? p.join(timeout: 20) }
            }
        }
        defer { stop.store(true, ordering: .relaxed) }
        for round in 0..<10 {
            let p = Process(target: StartNested(method: .fork, status: 5), startMethod: .fork)
            try p.start()
            try joinOrKill(p, 40, "round \(round)")
            XCTAssertEqual(p.exitCode, 5, "round \(round)")
        }
    }
}
