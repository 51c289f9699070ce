import Dispatch
import Foundation
import XCTest

@testable import Multiprocessing

#if canImport(Glibc)
import Glibc
#endif

/// A mutex of this test process that every worker's initializer takes and gives back.
nonisolated(unsafe) private let initializerMutex: UnsafeMutablePointer<pthread_mutex_t> = {
    let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    pthread_mutex_init(mutex, nil)
    return mutex
}()

struct TakeTheInitializerMutex: ParallelFunction {
    func callAsFunction(_: Void) {
        pthread_mutex_lock(initializerMutex)
        pthread_mutex_unlock(initializerMutex)
    }
}

/// What the program last set, read by `ReadTheTemplateProbe` in a worker.
nonisolated(unsafe) private var templateProbe = 1

struct ReadTheTemplateProbe: ParallelFunction {
    func callAsFunction(_: Int) -> Int { templateProbe }
}

/// An initializer that never returns.
struct HangInTheInitializer: ParallelFunction {
    func callAsFunction(_: Void) {
        while true { sleep(100) }
    }
}

/// This worker's pid, its `parentProcess`'s pid, and whether that parent is the main process.
struct ReportTheParent: ParallelFunction {
    func callAsFunction(_: Int) -> [Int] {
        let parent = Multiprocessing.parentProcess
        return [Int(getpid()), Int(parent?.pid ?? -1), parent?.name == "MainProcess" ? 1 : 0]
    }
}

/// This worker's pid, and whether it ignores SIGINT.
struct ReportSIGINT: ParallelFunction {
    func callAsFunction(_: Int) -> [Int] {
        var action = sigaction()
        sigaction(SIGINT, nil, &action)
        return [Int(getpid()), unsafeBitCast(action.__sigaction_handler.sa_handler, to: Int.self) == 1 ? 1 : 0]
    }
}

/// Forks counted by a `pthread_atfork` handler; the child of fork number `poisonedFork`
/// starts with `initializerMutex` locked, as if another thread held it at that fork.
nonisolated(unsafe) private var forksSeen = 0
nonisolated(unsafe) private var poisonedFork = -1
private let forkCounterInstalled: Bool = {
    pthread_atfork({ forksSeen += 1 }, nil, { if forksSeen == poisonedFork { pthread_mutex_lock(initializerMutex) } })
    return true
}()

/// A `.fork` pool forks the workers that replace dead ones from its fork template, a process
/// forked once as the pool starts (`LocalBackend`, `ForkServer.template`).
final class ForkTemplateTests: XCTestCase {
    /// A worker that replaces a dead one must not start with a lock that another thread of
    /// the program held when it was made — the way a `.fork` replacement forked while a user
    /// thread was inside the Swift runtime stalled on its conformance lock (a CI run: 31 s
    /// until the wedge watch replaced it). Here another thread holds a mutex that every
    /// worker's initializer takes; the pool started while it was free. Before, the
    /// replacement was forked from this process with the mutex held, and its initializer
    /// waited for ever, and so did the call.
    func testAReplacementWorkerDoesNotInheritALockHeldWhenItWasMade() throws {
        for method in [StartMethod.fork, .automatic] {
            let pool = try Pool(processes: 1, startMethod: method, initializer: TakeTheInitializerMutex())
            defer { pool.terminate() }
            XCTAssertEqual(try pool.map(Square(), 0..<4), [0, 1, 4, 9], "\(method)")
            let held = DispatchSemaphore(value: 0), release = DispatchSemaphore(value: 0), released = DispatchSemaphore(value: 0)
            DispatchQueue.global().async {
                pthread_mutex_lock(initializerMutex)
                held.signal()
                release.wait()
                pthread_mutex_unlock(initializerMutex)
                released.signal()
            }
            held.wait()
            defer {
                release.signal()
                released.wait()
            }
            // (Waited for with a limit: a replacement stuck in its initializer holds the call.)
            let died = try pool.mapAsync(DieOn(victim: 1, way: .exit), 0..<2, chunkSize: 1)
            XCTAssertThrowsError(try died.get(timeout: 20), "\(method)") { error in
                XCTAssertEqual((error as? WorkerDied)?.inputIndex, 1, "\(method): \(error)")
            }
            XCTAssertEqual(try pool.mapAsync(Square(), 0..<4).get(timeout: 20), [0, 1, 4, 9], "\(method)")
        }
    }

    /// The template ends with its pool: after `join`, this process has no template child left.
    func testTheTemplateEndsWithItsPool() throws {
        let before = templateChildren()
        let pool = try Pool(processes: 2, startMethod: .fork)
        // (It names itself once it runs.)
        let named = monotonicNanoseconds() + 5_000_000_000
        while templateChildren().subtracting(before).isEmpty && monotonicNanoseconds() < named { usleep(2000) }
        XCTAssertEqual(templateChildren().subtracting(before).count, 1, "a .fork pool has one template")
        XCTAssertThrowsError(try pool.map(DieOn(victim: 0, way: .sigkill), 0..<1))
        XCTAssertEqual(try pool.map(Square(), 0..<4), [0, 1, 4, 9])
        pool.close()
        try pool.join()
        XCTAssertEqual(templateChildren().subtracting(before), [], "the template outlived its pool")
        let spawned = try Pool(processes: 1, startMethod: .spawn)
        XCTAssertEqual(templateChildren().subtracting(before), [], "only .fork pools have a template")
        spawned.terminate()
    }

    /// A replacement starts from the program as the first workers did (README: "never with
    /// what the program changed since"), not as it is at the death.
    func testAReplacementSeesTheProgramAsTheFirstWorkersDid() throws {
        templateProbe = 1
        let pool = try Pool(processes: 1, startMethod: .fork)
        defer { pool.terminate() }
        XCTAssertEqual(try pool.map(ReadTheTemplateProbe(), 0..<2), [1, 1])
        templateProbe = 2
        XCTAssertThrowsError(try pool.mapAsync(DieOn(victim: 0, way: .sigkill), 0..<1).get(timeout: 30))
        XCTAssertEqual(try pool.mapAsync(ReadTheTemplateProbe(), 0..<2).get(timeout: 30), [1, 1])
    }

    /// A replacement (the template's child) that crashes gets its crash report to the pool,
    /// as a first worker's does.
    func testAReplacementsCrashReportReachesThePool() throws {
        let pool = try Pool(processes: 1, startMethod: .fork)
        defer { pool.terminate() }
        XCTAssertThrowsError(try pool.mapAsync(DieOn(victim: 0, way: .sigkill), 0..<1).get(timeout: 30))
        XCTAssertThrowsError(try pool.mapAsync(DieOn(victim: 1, way: .segfault), 0..<2, chunkSize: 1).get(timeout: 30)) { error in
            guard let died = error as? WorkerDied else { return XCTFail("\(error)") }
            XCTAssertEqual(died.inputIndex, 1)
            XCTAssertTrue(died.crashReport?.contains("DieOn.callAsFunction") ?? false, "\(died)")
        }
    }

    /// A replacement's `parentProcess` is the pool's process (the main one here), as a first
    /// worker's is — not the template (before: "unknown", the template's pid).
    func testAReplacementsParentIsThePoolsProcess() throws {
        let pool = try Pool(processes: 1, startMethod: .fork, maxTasksPerChild: 1)
        defer { pool.terminate() }
        let rows = try pool.mapAsync(ReportTheParent(), 0..<3, chunkSize: 1).get(timeout: 30)
        XCTAssertEqual(Set(rows.map { $0[0] }).count, 3, "each input on a new worker: \(rows)")
        for row in rows {
            XCTAssertEqual(row[1], Int(getpid()), "\(rows)")
            XCTAssertEqual(row[2], 1, "\(rows)")
        }
    }

    /// A program that ignores SIGINT before its pool starts has workers that ignore it —
    /// replacements too (before: they got SIGINT's default action from the template).
    func testReplacementsKeepTheProgramsSIGINTAction() throws {
        let previous = signal(SIGINT, SIG_IGN)
        defer { signal(SIGINT, previous) }
        let pool = try Pool(processes: 1, startMethod: .fork, maxTasksPerChild: 1)
        defer { pool.terminate() }
        let rows = try pool.mapAsync(ReportSIGINT(), 0..<3, chunkSize: 1).get(timeout: 30)
        XCTAssertEqual(rows.map { $0[1] }, [1, 1, 1], "\(rows)")
    }

    /// A template forked while another thread held a lock holds it for ever: the first of
    /// its children stuck before its first task (here in the initializer, past the call's
    /// time limit) retires it, and later replacements fork from the program (before: every
    /// replacement took the same lock; and a call's time limit did not cover an initializer,
    /// so the call waited for ever).
    func testATemplateWhoseChildIsStuckBeforeItsFirstTaskIsNoLongerUsed() throws {
        _ = forkCounterInstalled
        poisonedFork = forksSeen + 2 // the first worker's fork, then the template's
        let pool = try Pool(processes: 1, startMethod: .fork, initializer: TakeTheInitializerMutex())
        poisonedFork = -1
        defer { pool.terminate() }
        XCTAssertEqual(try pool.map(Square(), 0..<4), [0, 1, 4, 9])
        XCTAssertThrowsError(try pool.mapAsync(DieOn(victim: 0, way: .sigkill), 0..<1).get(timeout: 30))
        // The replacement from the template hangs in the initializer: after the call's limit
        // it is killed (no input charged), and the next one, forked from the program, runs it.
        let start = monotonicNanoseconds()
        XCTAssertEqual(try pool.mapAsync(Square(), 0..<4, timeout: 2).get(timeout: 30), [0, 1, 4, 9])
        XCTAssertGreaterThan(Double(monotonicNanoseconds() - start) / 1e9, 1.5, "the first replacement was stuck")
        XCTAssertEqual(try pool.mapAsync(Square(), 0..<4, timeout: 10).get(timeout: 30), [0, 1, 4, 9])
    }

    /// A call's time limit covers an initializer that its first task waits for: a worker
    /// stuck in it is killed and replaced, and three in a row break the pool with an error
    /// that names the initializer (before: the call waited for ever).
    func testAnInitializerThatHangsIsBoundedByTheCallsTimeLimit() throws {
        let pool = try Pool(processes: 1, startMethod: .fork, initializer: HangInTheInitializer())
        defer { pool.terminate() }
        XCTAssertThrowsError(try pool.mapAsync(Square(), 0..<2, timeout: 0.5).get(timeout: 30)) { error in
            XCTAssertEqual((error as? PoolError)?.code, .startFailed, "\(error)")
            XCTAssertTrue("\(error)".contains("initializer past the call's time limit"), "\(error)")
        }
    }

    /// A pool whose template is gone forks its replacement workers itself, and says so.
    func testAPoolWhoseTemplateDiedStillReplacesItsWorkers() throws {
        let before = templateChildren()
        let pool = try Pool(processes: 1, startMethod: .fork)
        defer { pool.terminate() }
        let named = monotonicNanoseconds() + 5_000_000_000
        while templateChildren().subtracting(before).isEmpty && monotonicNanoseconds() < named { usleep(2000) }
        let template = try XCTUnwrap(templateChildren().subtracting(before).first)
        XCTAssertEqual(kill(template, SIGKILL), 0)
        for victim in 0..<2 {
            XCTAssertThrowsError(try pool.mapAsync(DieOn(victim: victim, way: .sigkill), 0..<2, chunkSize: 1).get(timeout: 30)) {
                XCTAssertEqual(($0 as? WorkerDied)?.inputIndex, victim, "\($0)")
            }
        }
        XCTAssertEqual(try pool.mapAsync(Square(), 0..<4).get(timeout: 30), [0, 1, 4, 9])
    }

    /// This process's children named `swiftmp-forktpl` (a template).
    private func templateChildren() -> Set<pid_t> {
        var found: Set<pid_t> = []
        let tasks = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/task")) ?? []
        for task in tasks {
            guard let text = try? String(contentsOfFile: "/proc/self/task/\(task)/children", encoding: .utf8) else { continue }
            for word in text.split(separator: " ") {
                guard let pid = pid_t(word),
                    let name = try? String(contentsOfFile: "/proc/\(pid)/comm", encoding: .utf8)
                else { continue }
                if name.trimmingCharacters(in: .whitespacesAndNewlines) == "swiftmp-forktpl" { found.insert(pid) }
            }
        }
        return found
    }
}
