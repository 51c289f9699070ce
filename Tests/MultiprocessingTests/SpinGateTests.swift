import XCTest

@testable import Multiprocessing

/// `SpinGate`: waiters for a Pipe, a Manager reply or a child's end stay awake only while the
/// machine has a CPU free for the peer.
final class SpinGateTests: TimeLimitedTestCase {
    func testRunnableCountIsReadFromLoadavgText() {
        XCTAssertEqual(SpinGate.parseRunnable(Array("0.52 0.58 0.59 3/1024 12345\n".utf8)), 3)
        XCTAssertEqual(SpinGate.parseRunnable(Array("12.04 10.75 9.16 16/259 4242\n".utf8)), 16)
        XCTAssertNil(SpinGate.parseRunnable(Array("0.52 0.58 0.59\n".utf8)))
        XCTAssertNil(SpinGate.parseRunnable(Array("".utf8)))
        XCTAssertNil(SpinGate.parseRunnable(Array("0.1 0.2 0.3 /7 1".utf8)))
    }

    func testSpinningPaysOnlyWhileTheRunnableThreadsFitTheCPUs() {
        XCTAssertTrue(SpinGate.pays(runnable: 2, cpus: 2))
        XCTAssertTrue(SpinGate.pays(runnable: 1, cpus: 4))
        XCTAssertFalse(SpinGate.pays(runnable: 3, cpus: 2))
        XCTAssertFalse(SpinGate.pays(runnable: 16, cpus: 2))
        XCTAssertTrue(SpinGate.pays(runnable: nil, cpus: 2), "unknown: stay awake, as before")
    }

    /// The answer is kept `refreshNanoseconds` by the gate's clock, and a stamp stored by
    /// another thread after this one read the clock counts as fresh (not as 584 years old,
    /// which would read /proc/loadavg again).
    func testAnAnswerStaysFreshForTheRefreshInterval() {
        let stamp: UInt64 = 10_000_000
        XCTAssertTrue(SpinGate.isFresh(stamp: stamp, now: stamp))
        XCTAssertTrue(SpinGate.isFresh(stamp: stamp, now: stamp + SpinGate.refreshNanoseconds - 1))
        XCTAssertFalse(SpinGate.isFresh(stamp: stamp, now: stamp + SpinGate.refreshNanoseconds))
        XCTAssertTrue(SpinGate.isFresh(stamp: stamp, now: stamp - 1), "a stamp after this thread's clock reading")
        XCTAssertTrue(SpinGate.isFresh(stamp: stamp, now: 0))
    }

    func testThisMachinesLoadavgIsReadable() throws {
        let runnable = try XCTUnwrap(SpinGate.runnableThreads(), "/proc/loadavg could not be read")
        XCTAssertGreaterThanOrEqual(runnable, 1, "the reading thread itself runs")
        _ = SpinGate.spinningPays()
    }
}
