import Foundation
import TestSupport
import XCTest

/// The README's code, taken from README.md itself (not a copy that can drift): every
/// ```swift block is built in a new package that depends on this one exactly as the README's
/// `Package.swift` says, and run (`Scripts/check-readme.sh`).
final class ReadmeTests: XCTestCase {
    func testReadmeCodeBuildsAndRunsAsWritten() throws {
        let script = Launcher.packageRoot.appendingPathComponent("Scripts/check-readme.sh")
        // The first build of the libraries in the new package takes about a minute on 2 CPUs.
        let outcome = try Launcher.run(script, [], environment: Launcher.cleanEnvironment, deadline: 600)
        XCTAssertEqual(outcome.status, 0, outcome.output)
        let sections = outcome.output.components(separatedBy: "== ").dropFirst().map { section in
            let lines = section.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
            return (name: lines[0].replacingOccurrences(of: " ==", with: ""), lines: Set(lines.dropFirst()))
        }
        XCTAssertEqual(sections.map(\.name), ["readme-1", "readme-2", "readme-3", "readme-4", "readme-5", "my-tool"], outcome.output)
        guard sections.count == 6 else { return }
        // The values the README's comments promise.
        for line in ["[0, 1, 4, 9, 16, 25, 36, 49, 64, 81] [8.0, 9.0]", "got 49", "49", "328350"] {
            XCTAssertTrue(sections[0].lines.contains(line), "tour: no line \(line) in \(outcome.output)")
        }
        XCTAssertTrue(sections[1].lines.contains("2000"), "progress and checkpoint: \(outcome.output)")
        XCTAssertTrue(sections[2].lines.contains("[1.0, 4.0]"), "worker logs: \(outcome.output)")
        XCTAssertTrue(
            sections[2].lines.contains { $0.contains("T = 2.0") && $0.contains("pid=") && $0.contains("host=") },
            "a worker's record, tagged, in the program's output: \(outcome.output)")
        XCTAssertTrue(sections[3].lines.contains("499667166000 2"), outcome.output)
        XCTAssertTrue(sections[4].lines.contains("true"), "random streams: as a serial run: \(outcome.output)")
        XCTAssertTrue(sections[5].lines.contains("[1, 2, 9, 28, 65, 126, 217, 344]"), outcome.output)
    }
}
