#if MPI
import Foundation
import TestSupport
import XCTest

#if canImport(Glibc)
import Glibc
#endif

/// `mpi-selftest` on three "hosts" made of network and UTS namespaces
/// (`Scripts/netns-cluster.sh`): one rank per host, talking TCP on a private bridge.
final class NetnsClusterTests: XCTestCase {
    func testSelfTestOnThreeHosts() throws {
        let outcome = try Launcher.netnsCluster(hosts: 3, try Launcher.selfTest().path)
        XCTAssertEqual(outcome.status, 0, outcome.output)
        XCTAssertTrue(outcome.output.contains("ALL OK size=3\n"), outcome.output)
        for (rank, host) in ["node1", "node2", "node3"].enumerated() {
            XCTAssertTrue(outcome.output.contains("rank \(rank) host \(host)\n"), outcome.output)
        }
    }
}
#endif
