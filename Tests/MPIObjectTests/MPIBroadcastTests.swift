#if MPI
import Foundation
import TestSupport
import XCTest

/// `mpi-object-check --broadcast` (issue 13 item 3): `pool.broadcast` of a 40 MiB array and a
/// dictionary, read by the tasks of every worker on 1–3 ranks with 1–2 local workers per rank,
/// scheduled by rank 0 or by each rank.
final class MPIBroadcastTests: XCTestCase {
    func testBroadcastIsReadOnEveryRankFromOneCopyPerNode() throws {
        let program = try Launcher.objectCheck()
        // The last case with each rank scheduling its own workers (bundles).
        for (ranks, perRank, scheduling) in [(1, 2, ""), (2, 1, ""), (3, 2, ""), (3, 2, "node")] {
            let outcome = try Launcher.mpirun(
                ["-np", String(ranks), program.path], ["--broadcast"], timeout: 90,
                environment: ["SWIFTMP_PROCESSES_PER_RANK": String(perRank), "SWIFTMP_RANK_SCHEDULING": scheduling])
            let label = "np \(ranks), \(perRank) per rank \(scheduling)"
            XCTAssertEqual(outcome.status, 0, "\(label): \(outcome.output)")
            XCTAssertTrue(outcome.output.contains("BROADCAST OK\n"), "\(label): \(outcome.output)")
            XCTAssertFalse(outcome.output.contains("MISMATCH"), "\(label): \(outcome.output)")
            XCTAssertTrue(outcome.output.contains("broadcast checksum: 2618765760.0\n"), "\(label): \(outcome.output)")
            XCTAssertTrue(outcome.output.contains("broadcast after release: refused\n"), "\(label): \(outcome.output)")
            guard let line = outcome.output.split(separator: "\n").first(where: { $0.hasPrefix("BROADCAST workers=") }) else {
                XCTFail("\(label): \(outcome.output)")
                continue
            }
            // Every worker read it, and all of them (one node) mapped the same copy: the pool's
            // segment with -np 1, else this node's copy of rank 0's bytes.
            if ranks > 1 {
                XCTAssertTrue(
                    line.hasPrefix("BROADCAST workers=\((ranks - 1) * perRank) seen=\((ranks - 1) * perRank) copies=1 "),
                    "\(label): \(line)")
                XCTAssertTrue(line.contains("/dev/shm/swiftmp_bc_"), "\(label): \(line)")
            } else {
                XCTAssertTrue(line.contains(" copies=1 "), "\(label): \(line)")
                XCTAssertTrue(line.contains("memfd:swiftmp-shared"), "\(label): \(line)")
            }
        }
    }
}
#endif
