#if MPI
import Foundation
@testable import Multiprocessing
import TestSupport
import XCTest

#if canImport(Glibc)
import Glibc
#endif

/// A checkpointed map killed midway and run again: what the journal holds never runs again,
/// and the results equal an uninterrupted run's — locally (the parent SIGKILLed) and under
/// mpirun -np 3 (mpirun killed); likewise a checkpointed `imap` and `imapUnordered`.
final class CheckpointResumeTests: XCTestCase {
    private func journalIndices(_ path: String) -> Set<Int> {
        guard let data = FileManager.default.contents(atPath: path), let header = CheckpointJournal.decodeHeader(Array(data))
        else { return [] }
        return Set(CheckpointJournal.decodeRecords(Array(data), from: header.length, count: header.work.count).records.flatMap(\.indices))
    }

    /// The processes whose parent is `parent` (from /proc).
    private func children(of parent: Int32) -> [Int32] {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return entries.compactMap { Int32($0) }.filter { pid in
            guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
                let close = stat.lastIndex(of: ")")
            else { return false }
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            return fields.count > 2 && Int32(fields[1]) == parent
        }
    }

    private func logged(_ path: String) -> [Int] {
        guard let data = FileManager.default.contents(atPath: path) else { return [] }
        return String(decoding: data, as: UTF8.self).split(separator: "\n").compactMap { Int($0) }
    }

    private func killMidwayAndResume(
        label: String, mode: [String] = ["--checkpoint"],
        start: ([String]) throws -> Launcher.Running,
        kill: (Launcher.Running) -> Void, rerun: ([String]) throws -> Launcher.Outcome
    ) throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent(
            "swiftmp-resume-\(getpid())-\(label.replacingOccurrences(of: " ", with: "-"))"
        ).path
        try? FileManager.default.removeItem(atPath: directory)
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        // One log for both runs (the log's path is part of the function value, so of the work).
        let journal = directory + "/journal", log = directory + "/runs.log"

        let running = try start(mode + [journal, log])
        // Wait until a good part (but not all) of the 60 inputs is in the journal.
        let deadline = Date().addingTimeInterval(30)
        while journalIndices(journal).count < 15 && Date() < deadline { usleep(20_000) }
        kill(running)
        _ = running.finish(deadline: 30)
        let done = journalIndices(journal)
        XCTAssertGreaterThanOrEqual(done.count, 15, label)
        XCTAssertLessThan(done.count, 60, "\(label): the run was not killed midway")
        let firstRun = logged(log).count

        let outcome = try rerun(mode + [journal, log])
        XCTAssertEqual(outcome.status, 0, "\(label): \(outcome.output)")
        XCTAssertTrue(outcome.output.contains("CHECKPOINT OK sum=\((0..<60).reduce(0) { $0 + $1 * $1 })"), "\(label): \(outcome.output)")
        let again = Set(logged(log).dropFirst(firstRun))
        XCTAssertEqual(again.intersection(done).sorted(), [], "\(label): finished inputs ran again")
        XCTAssertEqual(again.union(done), Set(0..<60), label)
    }

    func testLocalParentSIGKILLedThenResumed() throws {
        let program = try Launcher.poolCheck()
        try killMidwayAndResume(
            label: "local", start: { try Launcher.start(program, $0) },
            kill: { kill($0.process.processIdentifier, SIGKILL) },
            rerun: { try Launcher.run(program, $0, deadline: 60) })
    }

    func testMPIRunKilledThenResumed() throws {
        try mpirunKilledThenResumed(label: "mpirun -np 3", mode: ["--checkpoint"])
    }

    /// The same for a checkpointed `imap` (results in input order) and `imapUnordered`.
    func testLocalParentSIGKILLedThenResumedImap() throws {
        let program = try Launcher.poolCheck()
        for order in ["ordered", "unordered"] {
            try killMidwayAndResume(
                label: "local imap \(order)", mode: ["--checkpoint-stream", order],
                start: { try Launcher.start(program, $0) },
                kill: { kill($0.process.processIdentifier, SIGKILL) },
                rerun: { try Launcher.run(program, $0, deadline: 60) })
        }
    }

    func testMPIRunKilledThenResumedImap() throws {
        for order in ["ordered", "unordered"] {
            try mpirunKilledThenResumed(label: "mpirun -np 3 imap \(order)", mode: ["--checkpoint-stream", order])
        }
    }

    private func mpirunKilledThenResumed(label: String, mode: [String]) throws {
        let program = try Launcher.poolCheck().path
        let script = Launcher.packageRoot.appendingPathComponent("Scripts/mpirun.sh")
        try killMidwayAndResume(
            label: label, mode: mode,
            start: { try Launcher.start(script, ["--timeout", "60", "-np", "3", program] + $0) },
            kill: { running in
                // Scripts/mpirun.sh waits for mpirun (to clean up after it): end mpirun itself.
                for pid in self.children(of: running.process.processIdentifier) { kill(pid, SIGTERM) }
            },
            rerun: { try Launcher.mpirun(["-np", "3", program], $0) })
    }
}
#endif
