import Foundation
import TestSupport
import XCTest

#if canImport(Glibc)
import Glibc
#endif

/// SIGINT or SIGTERM to a program while a map runs: the program exits and no worker
/// survives it — for every start method.
final class SignalTests: XCTestCase {
    /// Processes whose environment carries `token`.
    func processes(with token: String) -> [Int32] {
        var found: [Int32] = []
        for entry in (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? [] {
            guard let pid = Int32(entry),
                let environ = FileManager.default.contents(atPath: "/proc/\(entry)/environ")
            else { continue }
            if environ.split(separator: 0).contains(where: { String(decoding: $0, as: UTF8.self) == "SWIFTMP_TEST_TOKEN=\(token)" }) {
                found.append(pid)
            }
        }
        return found
    }

    func testSignalledParentLeavesNoWorkers() throws {
        for (method, signal) in [("fork", SIGINT), ("spawn", SIGTERM), ("forkserver", SIGINT), ("fork", SIGKILL)] {
            let token = UUID().uuidString
            let running = try CLIRunner.start(
                ["pi", "--samples", String(1 << 44), "--processes", "2", "--start-method", method],
                environment: ["SWIFTMP_TEST_TOKEN": token])
            let process = running.process
            defer { _ = running.finish(deadline: 10) }
            // Wait until the workers run (parent + 2 workers, + the fork server).
            let started = Date()
            while processes(with: token).count < 3 && Date().timeIntervalSince(started) < 20 { usleep(20_000) }
            XCTAssertGreaterThanOrEqual(processes(with: token).count, 3, "\(method): workers did not start")
            usleep(200_000)
            kill(process.processIdentifier, signal)
            process.waitUntilExit()
            let gone = Date()
            while !processes(with: token).isEmpty && Date().timeIntervalSince(gone) < 2 { usleep(20_000) }
            XCTAssertEqual(processes(with: token), [], "\(method) \(signal): workers survived their parent")
        }
    }
}
