import Foundation
import TestSupport
import XCTest

/// `SWIFTMP_TAG_OUTPUT=1` or `tagOutput: true`: each line a local pool worker (or a `Process`)
/// writes on stdout or stderr reaches the program's own stdout or stderr as `[pid N] line`;
/// without either, untagged as before.
final class TagOutputTests: XCTestCase {
    func testWorkerLinesAreTaggedWithTheirPid() throws {
        var environment = Launcher.cleanEnvironment
        environment["SWIFTMP_TAG_OUTPUT"] = "1"
        let outcome = try Launcher.run(
            try Launcher.poolCheck(), ["--tag-output"], environment: environment,
            mergingStreams: false, deadline: 60)
        let output = checkWorkerLinesAreTagged(outcome).output
        XCTAssertFalse(outcome.output.contains("chatter err"), "stderr lines stay on stderr")
        XCTAssertEqual(output.filter { $0.contains("chatter") }.count, 12, "each line once: \(outcome.output)")
    }

    /// Under mpirun, `Pool(…, tagOutput: true)` reaches the worker ranks: their local workers'
    /// lines come tagged with rank and pid (the variable is not set anywhere).
    func testTheOptionTagsTheWorkerRanksLocalWorkers() throws {
        let outcome = try Launcher.mpirun(["-np", "3", try Launcher.poolCheck().path], ["--tag-output-mpi"])
        XCTAssertEqual(outcome.status, 0, outcome.output)
        let lines = outcome.output.split(separator: "\n").map(String.init)
        let pids = try XCTUnwrap(lines.first { $0.hasPrefix("WORKERS mpi ") }, outcome.output).split(separator: " ").dropFirst(2)
        XCTAssertFalse(pids.isEmpty, outcome.output)
        for x in 0..<4 {
            XCTAssertTrue(
                lines.contains { line in
                    pids.contains { line.range(of: "^\\[rank [12] pid \($0)\\] chatter out \(x)$", options: .regularExpression) != nil }
                }, "input \(x): \(outcome.output)")
        }
        XCTAssertFalse(lines.contains { $0.hasPrefix("chatter") }, "no untagged line: \(outcome.output)")
    }

    /// `Pool(…, tagOutput: true)` and `Process(…, tagOutput: true)` tag without the variable,
    /// on every start method; `tagOutput: false` wins over `SWIFTMP_TAG_OUTPUT=1`.
    func testTheOptionTagsPoolsAndProcessesOnEveryStartMethod() throws {
        let outcome = try Launcher.run(
            try Launcher.poolCheck(), ["--tag-output", "option"],
            environment: Launcher.cleanEnvironment, mergingStreams: false, deadline: 60)
        let (output, errors) = checkWorkerLinesAreTagged(outcome)
        let processLines = output.filter { $0.hasPrefix("PROCESS ") }
        XCTAssertEqual(processLines.count, 3, outcome.output)
        for line in processLines {
            let fields = line.split(separator: " ").map(String.init)
            XCTAssertEqual(fields.count, 4, line)
            guard fields.count == 4 else { continue }
            let (method, pid) = (fields[1], fields[2])
            XCTAssertEqual(fields[3], "exit=0", line)
            // Out before join() returned, so before the PROCESS line.
            let position = output.firstIndex(of: line)!
            XCTAssertTrue(output[..<position].contains("[pid \(pid)] process out \(method)"), "\(line): \(outcome.output)")
            XCTAssertTrue(errors.contains("[pid \(pid)] process err \(method)"), "\(line): \(outcome.errors)")
        }
        XCTAssertEqual(
            output.filter { $0.contains("chatter") || $0.contains("process out") }.count, 15,
            "each line once, none untagged: \(outcome.output)")
        XCTAssertFalse(output.contains { $0.hasPrefix("chatter") || $0.hasPrefix("process") }, outcome.output)

        var environment = Launcher.cleanEnvironment
        environment["SWIFTMP_TAG_OUTPUT"] = "1"
        let off = try Launcher.run(
            try Launcher.poolCheck(), ["--tag-output", "off"], environment: environment,
            mergingStreams: false, deadline: 60)
        XCTAssertEqual(off.status, 0, off.output + off.errors)
        let offLines = off.output.split(separator: "\n").map(String.init)
        XCTAssertEqual(offLines.filter { $0.hasPrefix("chatter out ") }.count, 12, off.output)
        XCTAssertEqual(offLines.filter { $0.hasPrefix("process out ") }.count, 3, off.output)
        XCTAssertFalse(off.output.contains("[pid ") || off.errors.contains("[pid "), off.output + off.errors)
    }

    func testWithoutTheVariableLinesAreUntouched() throws {
        let outcome = try Launcher.run(
            try Launcher.poolCheck(), ["--tag-output"], environment: Launcher.cleanEnvironment,
            mergingStreams: false, deadline: 60)
        XCTAssertEqual(outcome.status, 0, outcome.output + outcome.errors)
        let output = outcome.output.split(separator: "\n").map(String.init)
        XCTAssertEqual(output.filter { $0.hasPrefix("chatter out ") }.count, 12, outcome.output)
        XCTAssertFalse(outcome.output.contains("[pid "), outcome.output)
    }

    /// Checks a `--tag-output` run of pool-check that exited 0: its three `WORKERS <label> <pid>…`
    /// lines, and for each, inputs 0 to 3's chatter tagged with one of that pool's worker pids, on
    /// stdout before the pool's line and on stderr. Returns the lines of stdout and of stderr.
    private func checkWorkerLinesAreTagged(
        _ outcome: Launcher.Outcome, file: StaticString = #filePath,
        line callerLine: UInt = #line
    ) -> (output: [String], errors: [String]) {
        XCTAssertEqual(outcome.status, 0, outcome.output + outcome.errors, file: file, line: callerLine)
        let output = outcome.output.split(separator: "\n").map(String.init)
        let errors = outcome.errors.split(separator: "\n").map(String.init)
        let workerLines = output.filter { $0.hasPrefix("WORKERS ") }
        XCTAssertEqual(workerLines.count, 3, outcome.output, file: file, line: callerLine)
        for line in workerLines {
            let pids = line.split(separator: " ").dropFirst(2).map(String.init)
            XCTAssertFalse(pids.isEmpty, line, file: file, line: callerLine)
            let position = output.firstIndex(of: line)!
            for x in 0..<4 {
                // Some worker of that pool printed it, tagged with its pid, on the right stream,
                // before the pool ended (a program that exits then loses no line).
                XCTAssertTrue(
                    pids.contains { output[..<position].contains("[pid \($0)] chatter out \(x)") },
                    "\(line): \(outcome.output)", file: file, line: callerLine)
                XCTAssertTrue(
                    pids.contains { errors.contains("[pid \($0)] chatter err \(x) part one, part two") },
                    "\(line): \(outcome.errors)", file: file, line: callerLine)
            }
        }
        return (output, errors)
    }
}
