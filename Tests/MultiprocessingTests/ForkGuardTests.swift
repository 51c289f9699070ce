import CSystemShims
import Synchronization
import XCTest

@testable import Multiprocessing

/// `ForkGuard`: a library thread runs its code inside the guard's activity and leaves it only
/// while it sleeps, so a `fork()` never catches it inside the Swift runtime (a child forked
/// while another thread held a runtime lock hangs at that lock for ever) and never waits for
/// a sleeper.
final class ForkGuardTests: XCTestCase {
    private final class Waits: @unchecked Sendable {
        private let lock = Mutex<(forWork: Int, idle: Int, outside: Int)>((0, 0, 0))
        func add(idle: Bool, active: Bool) -> (forWork: Int, idle: Int) {
            lock.withLock {
                if idle { $0.idle += 1 } else { $0.forWork += 1 }
                if !active { $0.outside += 1 }
                return ($0.forWork, $0.idle)
            }
        }
        var counts: (forWork: Int, idle: Int, outside: Int) { lock.withLock { $0 } }
    }

    /// The pool's thread runs an idle round's bookkeeping and the checks it hands the backend's
    /// wait (with a call in flight, and with none) inside the activity. (Before: it left the
    /// activity after each round's step, and ran that code — `jobs.filter`, the wait's closure,
    /// `pace` — where a fork could catch it: a `.fork` child under ThreadSanitizer hung in
    /// `swift_once` at its first message.)
    func testThePoolThreadRunsItsWaitsChecksInsideTheActivity() throws {
        let backend = ScriptedBackend(workers: 1)
        let waits = Waits()
        backend.onWait = { idle in
            let counts = waits.add(idle: idle, active: CSystemShims_fork_activity() != 0)
            if !idle, counts.forWork == 20, let chunk = backend.chunks[0].last {
                backend.take(0)
                backend.reply(0, task: chunk.task, outputs: chunk.inputs)
            }
        }
        let engine = PoolEngine(backend: backend, maxTasksPerChild: nil, initializer: nil)
        let outcome = Outcome()
        let job = BatchJob<Identity>(
            function: try FunctionDefinition.make(Identity()), options: .none, inputs: [3], chunkSize: 1
        ) { outcome.result = $0 }
        try engine.submit(job)
        try engine.startThread()
        let deadline = monotonicNanoseconds() &+ 10_000_000_000
        while waits.counts.idle < 20 && monotonicNanoseconds() < deadline { usleep(1_000) }
        engine.close()
        XCTAssertTrue(engine.join(timeout: 10))
        XCTAssertEqual(try outcome.result?.get(), [3])
        let counts = waits.counts
        XCTAssertGreaterThanOrEqual(counts.forWork, 20)
        XCTAssertGreaterThanOrEqual(counts.idle, 20)
        XCTAssertEqual(counts.outside, 0, "waits asked for outside ForkGuard activity")
    }

    /// Each sleep of the pool's thread (in the local or MPI backend, on the baton) leaves the
    /// activity while it sleeps: a fork does not wait for it.
    func testAForkDoesNotWaitForALibraryThreadAsleepInsideTheActivity() throws {
        let word = WakeWord()
        let baton = EngineBaton()
        let cells = UnsafeMutablePointer<UInt32>.allocate(capacity: 3)
        cells.initialize(repeating: 0, count: 3)
        defer { cells.deallocate() }
        let doorbell = Doorbell(sequence: cells, sleeping: cells + 1, rung: cells + 2)
        let sleeps: [(name: String, sleep: @Sendable () -> Void, wake: @Sendable () -> Void)] = [
            (
                "WakeWord.sleep",
                {
                    word.arm(); word.sleep(nanoseconds: 3_000_000_000)
                }, { word.wake() }
            ),
            (
                "Doorbell.wait", { doorbell.wait(spinning: false, timeoutNanoseconds: 3_000_000_000) { false } },
                { doorbell.ringAlways() }
            ),
            (
                "EngineBaton.sleepWhileDriven", { baton.sleepWhileDriven(timeoutNanoseconds: 3_000_000_000) { false } },
                { baton.wakeThread() }
            ),
        ]
        for (name, sleep, wake) in sleeps {
            let asleep = DispatchSemaphore(value: 0), done = DispatchSemaphore(value: 0)
            try spawnThread(named: "sleeper") {
                ForkGuard.enterActivity()
                asleep.signal()
                sleep()
                ForkGuard.leaveActivity()
                done.signal()
            }
            asleep.wait()
            usleep(100_000)
            let start = monotonicNanoseconds()
            let result = ForkGuard.forking { (pid: 1, errno: 0) }
            let waited = Double(monotonicNanoseconds() &- start) / 1e9
            XCTAssertEqual(result.pid, 1)
            XCTAssertLessThan(waited, 0.5, "a fork waited \(waited) s for a thread asleep in \(name)")
            wake()
            XCTAssertEqual(done.wait(timeout: .now() + 10), .success, name)
        }
    }
}
