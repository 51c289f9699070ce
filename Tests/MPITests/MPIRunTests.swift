#if MPI
import Foundation
import TestSupport
import XCTest

/// `mpi-selftest` under real `mpirun`, at 1–4 ranks, and a job whose rank fails.
final class MPIRunTests: XCTestCase {
    private func selfTest(ranks: Int) throws {
        let outcome = try Launcher.mpirun(ranks: ranks)
        XCTAssertEqual(outcome.status, 0, outcome.output)
        XCTAssertTrue(outcome.output.contains("ALL OK size=\(ranks)\n"), outcome.output)
        XCTAssertFalse(outcome.output.contains("FAILED"), outcome.output)
        for rank in 0..<ranks {
            XCTAssertTrue(outcome.output.contains("rank \(rank) host "), outcome.output)
        }
    }

    func testSelfTestOneRank() throws { try selfTest(ranks: 1) }
    func testSelfTestTwoRanks() throws { try selfTest(ranks: 2) }
    func testSelfTestThreeRanks() throws { try selfTest(ranks: 3) }
    func testSelfTestFourRanks() throws { try selfTest(ranks: 4) }

    /// A rank that exits early ends the whole job with a non-zero status, well within the
    /// timeout (the other ranks are blocked in a collective with it).
    func testFailingRankEndsJob() throws {
        let outcome = try Launcher.mpirun(ranks: 3, arguments: ["--fail-on-rank", "1"], timeout: 60)
        XCTAssertNotEqual(outcome.status, 0, outcome.output)
        XCTAssertLessThan(outcome.seconds, 30, outcome.output)
        XCTAssertTrue(outcome.output.contains("failing on purpose"), outcome.output)
        XCTAssertFalse(outcome.output.contains("ALL OK"), outcome.output)
    }

    /// Ping-pong runs and prints its two JSON lines.
    func testPingPongPrintsJSON() throws {
        let outcome = try Launcher.mpirun(ranks: 2, arguments: ["--pingpong"])
        XCTAssertEqual(outcome.status, 0, outcome.output)
        XCTAssertTrue(outcome.output.contains(#"{"name":"swift.pingpong.latency_8B","value":"#), outcome.output)
        XCTAssertTrue(outcome.output.contains(#""unit":"MB/s"}"#), outcome.output)
    }
}
#endif
