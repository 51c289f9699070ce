import Foundation
import TestSupport
import XCTest

#if canImport(Glibc)
import Glibc
#endif

/// `mpi-selftest` on three "hosts" made of network and UTS namespaces
/// (`Scripts/netns-cluster.sh`): one rank per host, talking TCP on a private bridge.
final class NetnsClusterTests: XCTestCase {
    private var script: URL { Launcher.packageRoot.appendingPathComponent("Scripts/netns-cluster.sh") }

    func testSelfTestOnThreeHosts() throws {
        guard getuid() == 0 else { throw XCTSkip("netns cluster needs root (ip netns, unshare, nsenter)") }
        let probe = try Launcher.run(URL(fileURLWithPath: "/usr/sbin/ip"), ["netns", "list"], deadline: 10)
        guard probe.status == 0 else { throw XCTSkip("`ip netns` does not work here: \(probe.output)") }
        for tool in ["/usr/bin/unshare", "/usr/bin/nsenter"] where !FileManager.default.isExecutableFile(atPath: tool) {
            throw XCTSkip("\(tool) is missing")
        }
        let selfTest = try Launcher.selfTest()
        // The script tears down on exit; this makes sure of it even if the script is killed.
        defer { _ = try? Launcher.run(script, ["down"], deadline: 30) }

        var environment = ProcessInfo.processInfo.environment
        environment["NETNS_TIMEOUT"] = "60"
        let outcome = try Launcher.run(script, ["run", "3", selfTest.path], environment: environment, deadline: 100)
        XCTAssertEqual(outcome.status, 0, outcome.output)
        XCTAssertTrue(outcome.output.contains("ALL OK size=3\n"), outcome.output)
        for (rank, host) in ["node1", "node2", "node3"].enumerated() {
            XCTAssertTrue(outcome.output.contains("rank \(rank) host \(host)\n"), outcome.output)
        }
    }
}
