#if MPI
import Foundation
import Multiprocessing
import TestSupport
import XCTest

#if canImport(Glibc)
import Glibc
#endif

/// `mpi-pool-check` gives the same result lines on the local backend (no mpirun), under
/// `mpirun -np 1…4`, and on three "hosts" (netns cluster); rank 0's failures end the job.
final class MPIPoolTests: XCTestCase {
    /// The result lines, without the final "POOL OK …" line (which names the backend).
    private func resultLines(_ outcome: Launcher.Outcome, file: StaticString = #filePath, line: UInt = #line) -> [String] {
        outcome.output.split(separator: "\n").map(String.init)
            .filter { $0.contains(": ") && !$0.hasPrefix("POOL") && !$0.hasPrefix("BACKEND") && !$0.hasPrefix("[") && !$0.hasPrefix(" ") }
    }

    private func local() throws -> Launcher.Outcome {
        let outcome = try Launcher.run(try Launcher.poolCheck(), [], deadline: 60)
        XCTAssertEqual(outcome.status, 0, outcome.output)
        XCTAssertTrue(outcome.output.contains("POOL OK backend=local workers="), outcome.output)
        XCTAssertTrue(outcome.output.contains("] info task 1 says hello"), outcome.output)
        return outcome
    }

    func testSameLinesLocallyAndUnderMPIRun() throws {
        let program = try Launcher.poolCheck().path
        let reference = resultLines(try local())
        XCTAssertGreaterThan(reference.count, 20)
        XCTAssertFalse(reference.contains { $0.hasPrefix("MISMATCH") })
        for ranks in 1...4 {
            let outcome = try Launcher.mpirun(["-np", String(ranks), program])
            XCTAssertEqual(outcome.status, 0, "np \(ranks): \(outcome.output)")
            // Each worker rank hosts its share of the CPUs (rank 0 leaves its own to them): on
            // this machine's CPUs split among the ranks, at least one each.
            let cpus = Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))
            let workers = ranks == 1 ? cpus : (ranks - 1) * max(1, cpus / (ranks - 1))
            XCTAssertTrue(outcome.output.contains("POOL OK backend=mpi workers=\(workers)\n"), "np \(ranks): \(outcome.output)")
            XCTAssertEqual(resultLines(outcome), reference, "np \(ranks): \(outcome.output)")
            if (2...3).contains(ranks) {
                // Each rank scheduling its 2 local workers itself (bundles): the same lines.
                let node = try Launcher.mpirun(
                    ["-np", String(ranks), program], [],
                    environment: ["SWIFTMP_RANK_SCHEDULING": "node", "SWIFTMP_PROCESSES_PER_RANK": "2"])
                XCTAssertEqual(node.status, 0, "np \(ranks), node: \(node.output)")
                XCTAssertTrue(node.output.contains("each rank scheduling its own"), node.output)
                XCTAssertTrue(node.output.contains("POOL OK backend=mpi workers=\(2 * (ranks - 1))\n"), node.output)
                XCTAssertEqual(resultLines(node), reference, "np \(ranks), node: \(node.output)")
            }
            if ranks >= 2 {
                // swift-log records from tasks on worker ranks, printed by rank 0, tagged with the rank.
                for input in [1, 2] {
                    XCTAssertTrue(
                        outcome.output.range(
                            of: "\\[log rank=[0-9]+ pid in [0-9]+\\] info task \(input) says hello",
                            options: .regularExpression) != nil, "np \(ranks): \(outcome.output)")
                }
            }
        }
    }

    /// Tasks that segfault, are SIGKILLed or exit on a worker rank's local worker cost exactly
    /// their input (`WorkerDied` naming it, its pid and signal or status); the rank replaces
    /// the worker, the job and the pool go on; a 0.5 s time limit kills a 10 s task; a
    /// cancelled call kills what runs for it. At 1–4 ranks with 1 and 2 local workers per rank,
    /// in both layouts (rank 0 or the rank scheduling the local workers), and locally.
    func testCrashingTasksNeverEndTheJob() throws {
        let program = try Launcher.poolCheck()
        let local = try Launcher.run(program, ["--faults"], deadline: 90)
        XCTAssertEqual(local.status, 0, local.output)
        XCTAssertTrue(local.output.contains("FAULTS OK workers="), local.output)
        for ranks in 1...4 {
            // Rank 0 scheduling every local worker (the default below 4 per rank), and each
            // rank scheduling its own (`SWIFTMP_RANK_SCHEDULING=node`, bundles).
            for (perRank, scheduling) in [(1, ""), (2, ""), (2, "node")] {
                let outcome = try Launcher.mpirun(
                    ["-np", String(ranks), program.path], ["--faults", String(perRank)], timeout: 90,
                    environment: ["SWIFTMP_RANK_SCHEDULING": scheduling])
                let label = "np \(ranks), \(perRank) per rank \(scheduling)"
                XCTAssertEqual(outcome.status, 0, "\(label): \(outcome.output)")
                let workers = ranks == 1 ? perRank : (ranks - 1) * perRank
                XCTAssertTrue(outcome.output.contains("FAULTS OK workers=\(workers)\n"), "\(label): \(outcome.output)")
                XCTAssertFalse(outcome.output.contains("MISMATCH"), "\(label): \(outcome.output)")
            }
        }
    }

    /// A worker stopped with SIGSTOP before it takes its work (as a `.fork` child stuck at its
    /// first message would be) is killed and replaced once `SWIFTMP_WEDGE_SECONDS` pass and
    /// the map completes: locally (the engine watches its workers), under mpirun with rank 0
    /// scheduling each local worker (the worker rank watches the ones it relays, and rank 0
    /// logs it naming the rank) and with each rank scheduling its own (the rank's engine).
    /// (Before: a relayed worker was watched by nobody and the map waited for ever.)
    func testAWorkerStuckBeforeItsWorkIsReplacedOnEveryLayout() throws {
        let program = try Launcher.poolCheck()
        let wedge = ["SWIFTMP_WEDGE_SECONDS": "2"]
        let local = try Launcher.run(
            program, ["--wedge"], environment: Launcher.cleanEnvironment.merging(wedge) { $1 }, deadline: 60)
        XCTAssertEqual(local.status, 0, local.output)
        XCTAssertTrue(local.output.contains("WEDGE OK workers="), local.output)
        for (ranks, perRank, scheduling) in [(2, 1, ""), (3, 1, ""), (3, 2, "node")] {
            let label = "np \(ranks), \(perRank) per rank \(scheduling)"
            let outcome = try Launcher.mpirun(
                ["-np", String(ranks), program.path], ["--wedge", String(perRank)], timeout: 60,
                environment: wedge.merging(["SWIFTMP_RANK_SCHEDULING": scheduling]) { $1 })
            XCTAssertEqual(outcome.status, 0, "\(label): \(outcome.output)")
            XCTAssertTrue(outcome.output.contains("WEDGE OK workers=\((ranks - 1) * perRank) "), "\(label): \(outcome.output)")
            XCTAssertFalse(outcome.output.contains("MISMATCH"), "\(label): \(outcome.output)")
            if scheduling.isEmpty {
                XCTAssertTrue(outcome.output.contains("killed by its rank and replaced"), "\(label): \(outcome.output)")
                XCTAssertNotNil(
                    outcome.output.range(of: "worker process [0-9]+ of rank [12] on", options: .regularExpression),
                    "\(label): \(outcome.output)")
            }
        }
    }

    /// A worker rank that can start no process for a while (rank 1 in a pids cgroup whose
    /// `pids.max` rank 0 sets to 1 for 1.5 s) while `maxTasksPerChild: 1` needs a new worker for
    /// every task: its places stay vacant, the other ranks take the inputs, the places are
    /// filled again afterwards, and every input gives its result — with rank 0 scheduling each
    /// local worker and with each rank scheduling its own. (Before session 22, with rank 0
    /// scheduling, the first replacement that failed on rank 1 broke the pool.)
    func testARankThatCannotStartWorkersForAWhileDoesNotBreakThePool() throws {
        guard let cgroup = try PidsCgroup() else {
            return XCTFail("no pids cgroup can be made here (root, and the pids controller in /sys/fs/cgroup, are needed)")
        }
        defer { cgroup.remove() }
        let program = try Launcher.poolCheck()
        // Rank 1 moves into the cgroup before it becomes the program (its local workers are
        // then its children there).
        let enter = "if [ \"$OMPI_COMM_WORLD_RANK\" = 1 ]; then echo $$ > \(cgroup.directory)/cgroup.procs; fi; exec \"$0\" \"$@\""
        for (ranks, perRank, scheduling) in [(2, 1, ""), (3, 1, ""), (3, 2, ""), (3, 2, "node")] {
            let label = "np \(ranks), \(perRank) per rank \(scheduling)"
            let outcome = try Launcher.mpirun(
                ["-np", String(ranks), "sh", "-c", enter, program.path], ["--vacancy", cgroup.directory, String(perRank)],
                timeout: 60, environment: ["SWIFTMP_RANK_SCHEDULING": scheduling])
            XCTAssertEqual(outcome.status, 0, "\(label): \(outcome.output)")
            XCTAssertTrue(outcome.output.contains("VACANCY OK workers=\((ranks - 1) * perRank)\n"), "\(label): \(outcome.output)")
            XCTAssertFalse(outcome.output.contains("MISMATCH"), "\(label): \(outcome.output)")
        }
    }

    /// The same on three hosts: one worker rank alone on each of two of them.
    func testCrashingTasksNeverEndTheJobOnThreeHosts() throws {
        let outcome = try Launcher.netnsCluster(hosts: 3, try Launcher.poolCheck().path, ["--faults", "2"], timeout: 90)
        XCTAssertEqual(outcome.status, 0, outcome.output)
        XCTAssertTrue(outcome.output.contains("FAULTS OK workers=4\n"), outcome.output)
        XCTAssertTrue(outcome.output.contains("on 3 hosts (node1, node2, node3)"), outcome.output)
    }

    /// Standard output to a file (fully buffered): lines the parent printed before a `.fork`
    /// worker, a replacement worker (forked while the main thread prints) or a `.fork` Process
    /// started appear once — a child never writes the parent's buffered bytes.
    func testForkedChildrenNeverRepeatBufferedOutput() throws {
        let outcome = try Launcher.run(try Launcher.poolCheck(), ["--stdio-once"], mergingStreams: false, deadline: 90)
        XCTAssertEqual(outcome.status, 0, outcome.errors)
        var counts: [Substring: Int] = [:]
        for line in outcome.output.split(separator: "\n") { counts[line, default: 0] += 1 }
        let repeated = counts.filter { $0.value > 1 }.keys.sorted().prefix(5)
        XCTAssertTrue(repeated.isEmpty, "printed more than once: \(Array(repeated)) (of \(counts.count) lines)")
        for line in ["LINE before-pool", "LINE during-0", "LINE before-process", "LINE from-process", "LINE end exit=0"] {
            XCTAssertEqual(counts[Substring(line)], 1, line)
        }
    }

    /// A .spawn or .forkserver worker never runs main, so a global of main.swift is
    /// uninitialised there: the task crashes, the pool reports WorkerDied, and the worker says
    /// why on standard error. A .fork worker sees the parent's initialised copy.
    func testMainGlobalInAWorkerThatNeverRanMainIsExplained() throws {
        for method in ["spawn", "forkserver"] {
            let outcome = try Launcher.run(try Launcher.poolCheck(), ["--main-global", method], deadline: 60)
            XCTAssertEqual(outcome.status, 0, outcome.output)
            XCTAssertTrue(outcome.output.contains("WORKER DIED signal=11"), "\(method): \(outcome.output)")
            XCTAssertTrue(outcome.output.contains("globals declared in main.swift are uninitialised"), "\(method): \(outcome.output)")
        }
        let forked = try Launcher.run(try Launcher.poolCheck(), ["--main-global", "fork"], deadline: 60)
        XCTAssertTrue(forked.output.contains("TASK READ [3]"), forked.output)
    }

    /// Rank 0's `main` throws with a live pool: the job ends quickly, for that reason (the
    /// error reaches the output and mpirun names rank 0), not for any other failure.
    func testRankZeroThatThrowsEndsTheJob() throws {
        let outcome = try Launcher.mpirun(["-np", "3", try Launcher.poolCheck().path], ["--fail-rank0"], timeout: 30)
        XCTAssertNotEqual(outcome.status, 0, outcome.output)
        XCTAssertTrue(
            outcome.output.contains("Error raised at top level: --fail-rank0: rank 0 throws after creating the pool"),
            outcome.output)
        XCTAssertTrue(outcome.output.contains("process rank 0 with PID"), outcome.output)
        XCTAssertFalse(outcome.output.contains("MPI_ABORT"), "the job ended for another reason: \(outcome.output)")
        XCTAssertFalse(outcome.output.contains("timeout"), "the job ended for another reason: \(outcome.output)")
        XCTAssertLessThan(outcome.seconds, 20, outcome.output)
    }

    func testProgramWithoutPoolEndsCleanly() throws {
        let outcome = try Launcher.mpirun(["-np", "3", try Launcher.poolCheck().path], ["--no-pool"], timeout: 30)
        XCTAssertEqual(outcome.status, 0, outcome.output)
        XCTAssertTrue(outcome.output.contains("NO POOL"), outcome.output)
        XCTAssertLessThan(outcome.seconds, 10, outcome.output)
    }

    /// A pool terminated (not joined) gives its workers back before a `Process` or a new pool
    /// that starts right after needs them: under mpirun they wait for its ranks to close them
    /// rather than fail with "no MPI worker is free". Locally and at -np 2 and 3.
    func testAProcessOrPoolRightAfterTerminateGetsTheWorkers() throws {
        let program = try Launcher.poolCheck()
        let expected = "AFTER TERMINATE process exit=0 pool=[1, 2, 3]"
        let local = try Launcher.run(program, ["--after-terminate"], deadline: 60)
        XCTAssertTrue(local.output.contains(expected), local.output)
        for ranks in [2, 3] {
            let outcome = try Launcher.mpirun(["-np", String(ranks), program.path], ["--after-terminate"], timeout: 60)
            XCTAssertEqual(outcome.status, 0, "np \(ranks): \(outcome.output)")
            XCTAssertTrue(outcome.output.contains(expected), "np \(ranks): \(outcome.output)")
        }
    }

    func testExitWithLivePoolKeepsTheStatus() throws {
        let outcome = try Launcher.mpirun(["-np", "3", try Launcher.poolCheck().path], ["--exit-live"], timeout: 30)
        XCTAssertEqual(outcome.status, 3, outcome.output)
        XCTAssertLessThan(outcome.seconds, 15, outcome.output)
    }

    /// A task that leaves a child running (60 s) does not hold the job: at its end the worker
    /// rank ends what is left in its process group and says so (mpirun waited 60 s before).
    func testAProcessATaskLeftRunningDoesNotHoldTheJob() throws {
        let outcome = try Launcher.mpirun(["-np", "2", try Launcher.poolCheck().path], ["--leftover"], timeout: 90)
        XCTAssertEqual(outcome.status, 0, outcome.output)
        XCTAssertLessThan(outcome.seconds, 20, outcome.output)
        guard let line = outcome.output.split(separator: "\n").first(where: { $0.hasPrefix("LEFTOVER pid=") }),
            let pid = Int32(line.dropFirst("LEFTOVER pid=".count))
        else { return XCTFail(outcome.output) }
        XCTAssertTrue(outcome.output.contains("ended 1 process(es) its tasks left running (\(pid))"), outcome.output)
        let state = (try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8))?.split(separator: ")").last?
            .split(separator: " ").first
        XCTAssertTrue(state == nil || state == "Z", "pid \(pid) still runs: \(state ?? "")")
    }

    func testDifferentExecutableOnAWorkerIsRefused() throws {
        let program = try Launcher.poolCheck()
        let other = FileManager.default.temporaryDirectory.appendingPathComponent("mpi-pool-check-other-\(getpid())")
        try? FileManager.default.removeItem(at: other)
        try FileManager.default.copyItem(at: program, to: other)
        defer { try? FileManager.default.removeItem(at: other) }
        let handle = try FileHandle(forWritingTo: other)
        try handle.seekToEnd()
        try handle.write(contentsOf: [0]) // another build: one more byte
        try handle.close()
        let outcome = try Launcher.mpirun(["-np", "1", program.path, ":", "-np", "1", other.path], timeout: 30)
        XCTAssertEqual(outcome.status, 2, outcome.output)
        XCTAssertTrue(outcome.output.contains("POOL START FAILED: worker rank 1 on "), outcome.output)
        XCTAssertTrue(
            outcome.output.contains("the executables differ: rebuild and copy the same binary to every node"),
            outcome.output)
    }

    func testMPIBackendOutsideMPIRunIsUnavailable() throws {
        guard ProcessInfo.processInfo.environment["OMPI_COMM_WORLD_SIZE"] == nil else {
            throw XCTSkip("the tests themselves run under mpirun")
        }
        XCTAssertEqual(Backend.automatic.resolved, .local)
        XCTAssertThrowsError(try Pool(processes: 1, backend: .mpi)) { error in
            XCTAssertEqual((error as? PoolError)?.code, .backendUnavailable)
            XCTAssertTrue("\(error)".contains("launch with mpirun"), "\(error)")
        }
    }

    func testSameLinesOnThreeHosts() throws {
        let reference = resultLines(try local())
        let outcome = try Launcher.netnsCluster(hosts: 3, try Launcher.poolCheck().path)
        XCTAssertEqual(outcome.status, 0, outcome.output)
        // One worker rank alone on each of two hosts: each hosts a worker per CPU.
        let cpus = Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))
        XCTAssertTrue(outcome.output.contains("POOL OK backend=mpi workers=\(2 * cpus)\n"), outcome.output)
        XCTAssertTrue(outcome.output.contains("on 3 hosts (node1, node2, node3)"), outcome.output)
        XCTAssertEqual(resultLines(outcome), reference, outcome.output)
    }

    /// `swiftmp info` under mpirun says who is where: one line per local worker, with its
    /// rank and its own pid (`Pool.workerPlacement`), `processesPerRank` on each worker rank.
    func testInfoSaysWhichRankHostsEachWorker() throws {
        let swiftmp = try Launcher.executable("swiftmp").path
        let outcome = try Launcher.mpirun(["-np", "3", swiftmp], ["info"], environment: ["SWIFTMP_PROCESSES_PER_RANK": "2"])
        XCTAssertEqual(outcome.status, 0, outcome.output)
        let workers = outcome.output.split(separator: "\n").filter { $0.hasPrefix("  worker ") }
        XCTAssertEqual(workers.count, 4, outcome.output)
        let ranks = workers.compactMap { line in
            line.split(separator: " ").firstIndex(of: "rank").map { Int(line.split(separator: " ")[$0 + 1].dropLast()) } ?? nil
        }
        XCTAssertEqual(ranks, [1, 1, 2, 2], outcome.output)
        let pids = Set(workers.compactMap { line in line.split(separator: " ").firstIndex(of: "pid").map { Int(line.split(separator: " ")[$0 + 1]) } ?? nil })
        XCTAssertEqual(pids.count, 4, "four distinct worker processes: \(outcome.output)")
        XCTAssertFalse(outcome.output.contains("scheduling its own"), "2 per rank: rank 0 schedules them: \(outcome.output)")
        // From 4 local workers per rank, the rank schedules them itself (the default,
        // `RankScheduling.nodeThreshold`); the placement still lists each worker process.
        let node = try Launcher.mpirun(["-np", "2", swiftmp], ["info"], environment: ["SWIFTMP_PROCESSES_PER_RANK": "4"])
        XCTAssertEqual(node.status, 0, node.output)
        XCTAssertTrue(node.output.contains("(ranks 1…1, 4 local workers each, each rank scheduling its own)"), node.output)
        let nodeWorkers = node.output.split(separator: "\n").filter { $0.hasPrefix("  worker ") }
        XCTAssertEqual(nodeWorkers.count, 4, node.output)
        XCTAssertTrue(nodeWorkers.allSatisfy { $0.contains("rank 1, pid ") }, node.output)
        let nodePids = Set(
            nodeWorkers.compactMap { line in
                line.split(separator: " ").firstIndex(of: "pid").map { Int(line.split(separator: " ")[$0 + 1]) } ?? nil
            })
        XCTAssertEqual(nodePids.count, 4, "four distinct worker processes: \(node.output)")
    }

    /// `swiftmp pi` prints the same result line locally, under mpirun and on three hosts.
    func testSwiftmpPiIsTheSameEverywhere() throws {
        let swiftmp = try Launcher.executable("swiftmp").path
        let arguments = ["pi", "--samples", "3000000"]
        let local = try Launcher.run(URL(fileURLWithPath: swiftmp), arguments, environment: Launcher.cleanEnvironment, deadline: 60)
        XCTAssertEqual(local.status, 0, local.output)
        // The result line (a slow run also prints progress lines: `swiftmp pi --progress`'s default).
        let expected = try XCTUnwrap(local.output.split(separator: "\n").map(String.init).first { $0.hasPrefix("pi ≈") }, local.output)
        XCTAssertTrue(expected.hasPrefix("pi ≈ 3.14"), local.output)
        for ranks in [2, 3] {
            let outcome = try Launcher.mpirun(["-np", String(ranks), swiftmp], arguments)
            XCTAssertEqual(outcome.status, 0, outcome.output)
            let lines = outcome.output.split(separator: "\n").map(String.init)
            XCTAssertEqual(lines.filter { $0.hasPrefix("pi ≈") }, [expected], "printed once, by rank 0: \(outcome.output)")
            XCTAssertTrue(outcome.output.contains("on \(ranks - 1) worker rank"), outcome.output)
        }
        let outcome = try Launcher.netnsCluster(hosts: 3, swiftmp, arguments)
        XCTAssertEqual(outcome.status, 0, outcome.output)
        XCTAssertTrue(outcome.output.contains(expected), outcome.output)
        XCTAssertTrue(outcome.output.contains("on 3 hosts"), outcome.output)
    }
}

/// A new pids cgroup below this process's own (v1 `pids` hierarchy, or v2 with the `pids`
/// controller), with no limit until a test sets `pids.max`; nil where none can be made.
private struct PidsCgroup {
    let directory: String

    init?() throws {
        guard getuid() == 0, let text = try? String(contentsOfFile: "/proc/self/cgroup", encoding: .utf8) else { return nil }
        let name = "swiftmp-test-pids-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        for line in text.split(separator: "\n") {
            let fields = line.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false)
            guard fields.count == 3 else { continue }
            let path = String(fields[2]).trimmingCharacters(in: CharacterSet(charactersIn: "/"))
            let base: String
            if fields[1].split(separator: ",").contains("pids") {
                base = "/sys/fs/cgroup/pids/" + path
            } else if fields[0] == "0" && fields[1].isEmpty,
                let controllers = try? String(contentsOfFile: "/sys/fs/cgroup/" + path + "/cgroup.subtree_control", encoding: .utf8),
                controllers.split(whereSeparator: \.isWhitespace).contains("pids")
            {
                base = "/sys/fs/cgroup/" + path
            } else {
                continue
            }
            let directory = (base + "/" + name).replacingOccurrences(of: "//", with: "/")
            guard mkdir(directory, 0o755) == 0 else { continue }
            guard FileManager.default.fileExists(atPath: directory + "/pids.max") else {
                rmdir(directory)
                continue
            }
            self.directory = directory
            return
        }
        return nil
    }

    /// Lifts the limit and removes it (once the processes that moved in ended).
    func remove() {
        try? "max".write(toFile: directory + "/pids.max", atomically: false, encoding: .utf8)
        for _ in 0..<100 where rmdir(directory) != 0 {
            usleep(50_000)
        }
    }
}
#endif
