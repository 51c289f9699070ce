import Foundation
import TestSupport
import XCTest

/// `SWIFTMP_TAG_OUTPUT=1`: each line a local pool worker writes on stdout or stderr reaches
/// the program's own stdout or stderr as `[pid N] line`; without it, untagged as before.
final class TagOutputTests: XCTestCase {
    func testWorkerLinesAreTaggedWithTheirPid() throws {
        var environment = Launcher.cleanEnvironment
        environment["SWIFTMP_TAG_OUTPUT"] = "1"
        let outcome = try Launcher.run(try Launcher.poolCheck(), ["--tag-output"], environment: environment,
                                       mergingStreams: false, deadline: 60)
        XCTAssertEqual(outcome.status, 0, outcome.output + outcome.errors)
        let output = outcome.output.split(separator: "\n").map(String.init)
        let errors = outcome.errors.split(separator: "\n").map(String.init)
        let workerLines = output.filter { $0.hasPrefix("WORKERS ") }
        XCTAssertEqual(workerLines.count, 3, outcome.output)
        for line in workerLines {
            let pids = line.split(separator: " ").dropFirst(2).map(String.init)
            XCTAssertFalse(pids.isEmpty, line)
            let position = output.firstIndex(of: line)!
            for x in 0..<4 {
                // Some worker of that pool printed it, tagged with its pid, on the right stream,
                // before the pool ended (a program that exits then loses no line).
                XCTAssertTrue(pids.contains { output[..<position].contains("[pid \($0)] chatter out \(x)") },
                              "\(line): \(outcome.output)")
                XCTAssertTrue(pids.contains { errors.contains("[pid \($0)] chatter err \(x) part one, part two") },
                              "\(line): \(outcome.errors)")
            }
        }
        XCTAssertFalse(outcome.output.contains("chatter err"), "stderr lines stay on stderr")
        XCTAssertEqual(output.filter { $0.contains("chatter") }.count, 12, "each line once: \(outcome.output)")
    }

    func testWithoutTheVariableLinesAreUntouched() throws {
        let outcome = try Launcher.run(try Launcher.poolCheck(), ["--tag-output"], environment: Launcher.cleanEnvironment,
                                       mergingStreams: false, deadline: 60)
        XCTAssertEqual(outcome.status, 0, outcome.output + outcome.errors)
        let output = outcome.output.split(separator: "\n").map(String.init)
        XCTAssertEqual(output.filter { $0.hasPrefix("chatter out ") }.count, 12, outcome.output)
        XCTAssertFalse(outcome.output.contains("[pid "), outcome.output)
    }
}
