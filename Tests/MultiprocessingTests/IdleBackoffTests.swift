import CSystemShims
import XCTest

@testable import Multiprocessing

#if canImport(Glibc)
import Glibc
#endif

/// The pacing of loops that poll MPI (`IdleBackoff`): spin, then yield, then sleeps that
/// double up to the longest, each one short in fact (timer slack).
final class IdleBackoffTests: XCTestCase {
    /// Past the spin and yield windows the backoff sleeps 20 µs, doubling up to `longest`,
    /// and a new activity starts over.
    func testSleepsDoubleUpToTheLongestAndActivityStartsOver() {
        var backoff = IdleBackoff()
        usleep(1_000) // past the spin and yield windows (300 µs)
        var asked: [Int64] = []
        for _ in 0..<6 { backoff.pause(longest: 100_000) { asked.append($0) } }
        XCTAssertEqual(asked, [20_000, 40_000, 80_000, 100_000, 100_000, 100_000])
        backoff.noteActivity()
        asked.removeAll()
        backoff.pause(longest: 100_000) { asked.append($0) }
        XCTAssertEqual(asked, [], "right after activity it spins, it does not sleep")
    }

    /// The thread that sleeps in a backoff has a 1 µs timer slack: MPI cannot wake a poller,
    /// so a sleep's real length is its latency (the default 50 µs slack made 20 µs sleeps
    /// last 70–120 µs). Checked on a thread of its own, set to the default slack first.
    func testTheSleepingThreadGetsATightTimerSlack() throws {
        let result = Completion<Int>()
        try spawnThread(named: "slack-test") {
            guard CSystemShims_set_timer_slack(50_000) == 0, CSystemShims_timer_slack() == 50_000 else {
                return result.complete(.success(-1))
            }
            var backoff = IdleBackoff()
            usleep(1_000)
            backoff.pause(longest: 1_000) { _ in }
            result.complete(.success(CSystemShims_timer_slack()))
        }
        XCTAssertTrue(result.wait(until: monotonicNanoseconds() + 10_000_000_000), "the thread did not report")
        guard case .success(let slack)? = result.outcome else { return XCTFail("no outcome") }
        XCTAssertEqual(slack, Int(IdleBackoff.timerSlackNanoseconds))
    }
}
