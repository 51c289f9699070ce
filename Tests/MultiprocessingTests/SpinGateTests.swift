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

    func testThisMachinesLoadavgIsReadable() throws {
        let runnable = try XCTUnwrap(SpinGate.runnableThreads(), "/proc/loadavg could not be read")
        XCTAssertGreaterThanOrEqual(runnable, 1, "the reading thread itself runs")
        _ = SpinGate.spinningPays()
    }
}
