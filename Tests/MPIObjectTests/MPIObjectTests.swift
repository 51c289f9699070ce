#if MPI
import Foundation
import TestSupport
import XCTest

/// `mpi-object-check`: the same lines locally and under mpirun -np 2, 3 and 4 (queues, Pipe,
/// locks, semaphores, Condition, Event, Barrier, SharedValue, SharedArray and a Manager's dict,
/// list and namespace served by rank 0; Process targets on worker ranks; pipes between rank 0
/// and workers and between workers), and the primitives not offered across ranks refused at
/// creation.
final class MPIObjectTests: XCTestCase {
    private func resultLines(_ outcome: Launcher.Outcome) -> [String] {
        outcome.output.split(separator: "\n").map(String.init)
            .filter {
                $0.contains(": ") && !$0.hasPrefix("OBJECTS") && !$0.hasPrefix("[") && !$0.hasPrefix(" ")
                    && !$0.hasPrefix("unavailable") && !$0.hasPrefix("Process ") && !$0.hasPrefix("swiftmp:")
            }
    }

    func testSameLinesLocallyAndUnderMPIRun() throws {
        let program = try Launcher.objectCheck()
        let local = try Launcher.run(program, [], deadline: 60)
        XCTAssertEqual(local.status, 0, local.output)
        XCTAssertTrue(local.output.contains("OBJECTS OK backend=local"), local.output)
        let reference = resultLines(local)
        XCTAssertEqual(reference.count, 84, local.output)
        for ranks in [2, 3, 4] {
            // One local worker per rank, so that the per-worker lines below are per rank.
            // Standard output alone: the ranks' crash reports (of the processes the program
            // crashes on purpose) go to standard error, and could cut a line in two here.
            let outcome = try Launcher.mpirun(
                ["-np", String(ranks), program.path], timeout: 60,
                environment: ["SWIFTMP_PROCESSES_PER_RANK": "1"], mergingStreams: false)
            XCTAssertEqual(outcome.status, 0, "np \(ranks): \(outcome.transcript)")
            XCTAssertTrue(outcome.output.contains("OBJECTS OK backend=mpi workers=\(ranks - 1)\n"), "np \(ranks): \(outcome.transcript)")
            XCTAssertEqual(resultLines(outcome), reference, "np \(ranks): \(outcome.transcript)")
            let refused = outcome.output.split(separator: "\n").filter { $0.hasPrefix("unavailable ") }
            XCTAssertEqual(refused.count, 2, outcome.transcript)
            XCTAssertTrue(refused.allSatisfy { $0.hasSuffix(": refused") }, outcome.transcript)
            XCTAssertTrue(outcome.output.contains("RawSharedValue is not available across MPI ranks"), outcome.transcript)
            // A Manager is served by rank 0 in process: its dict, list and namespace were
            // filled by tasks on every worker rank (the lines above match the local run's);
            // its proxies cannot reach a local worker process.
            XCTAssertTrue(outcome.output.contains("[manager filled by \(ranks - 1) distinct workers]\n"), outcome.transcript)
            XCTAssertTrue(outcome.output.contains("manager after shutdown on a worker: unavailable\n"), outcome.transcript)
            XCTAssertTrue(outcome.output.contains("[mpi] served manager proxy in a local pool: refused\n"), outcome.transcript)
            // Served pipes: to a pool function (its copy closes when the pool ends), and
            // between two worker ranks (needs two of them).
            XCTAssertTrue(
                outcome.output.contains("[mpi] pipe to a pool function: poll=false waited=true [0, 1, 2, 3] then=endOfFile\n"),
                outcome.transcript)
            XCTAssertTrue(outcome.output.contains("[mpi] pipe end through a queue: sent 42 then=endOfFile\n"), outcome.transcript)
            // An end held by a pool task killed with its worker: closed for its peer.
            XCTAssertTrue(
                outcome.output.contains("[mpi] pipe end of a killed pool task: WorkerDied=true got 9 then=endOfFile\n"),
                outcome.transcript)
            XCTAssertEqual(
                outcome.output.contains("[mpi] pipe between worker ranks: sum=1055 answered=10 distinct=true\n"), ranks >= 3,
                outcome.transcript)
            // Process targets ran on the ranks' local workers, one per worker; terminate() cannot interrupt one.
            XCTAssertTrue(outcome.output.contains("[mpi] processes on distinct workers: true\n"), outcome.transcript)
            XCTAssertTrue(outcome.output.contains("[mpi] process beyond the workers: refused\n"), outcome.transcript)
            XCTAssertTrue(outcome.output.contains("[mpi] terminate ends the target: false -15\n"), outcome.transcript)
            XCTAssertTrue(outcome.output.contains("[mpi] served queue in a local pool: refused\n"), outcome.transcript)
            XCTAssertFalse(outcome.output.contains("MISMATCH"), outcome.transcript)
            XCTAssertLessThan(outcome.seconds, 30, outcome.transcript)
        }
    }

    /// The same program on three "hosts" (network namespaces, TCP between ranks): the
    /// objects rank 0 serves reach worker ranks on other nodes.
    func testSameLinesOnThreeHosts() throws {
        let program = try Launcher.objectCheck()
        let local = try Launcher.run(program, [], deadline: 60)
        XCTAssertEqual(local.status, 0, local.output)
        let outcome = try Launcher.netnsCluster(hosts: 3, program.path, mergingStreams: false)
        XCTAssertEqual(outcome.status, 0, outcome.transcript)
        // One worker rank alone on each of two hosts: each hosts a worker per CPU.
        let cpus = Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))
        XCTAssertTrue(outcome.output.contains("OBJECTS OK backend=mpi workers=\(2 * cpus)\n"), outcome.transcript)
        XCTAssertEqual(resultLines(outcome), resultLines(local), outcome.transcript)
        XCTAssertTrue(
            outcome.output.contains("[mpi] pipe between worker ranks: sum=1055 answered=10 distinct=true\n"),
            outcome.transcript)
    }

    /// Two local workers on each worker rank: shared objects keep working from both, and the
    /// two are distinct owners (a lock held by one excludes the other on the same rank) —
    /// with the rank scheduling them itself (`-np 2`) and with rank 0 scheduling them (`-np 3`).
    func testTwoLocalWorkersPerRankShareObjectsCorrectly() throws {
        let program = try Launcher.objectCheck()
        let reference = resultLines(try Launcher.run(program, [], deadline: 60))
        for ranks in [2, 3] {
            let outcome = try Launcher.mpirun(
                ["-np", String(ranks), program.path], timeout: 60,
                environment: ["SWIFTMP_PROCESSES_PER_RANK": "2", "SWIFTMP_RANK_SCHEDULING": ranks == 2 ? "node" : "relay"],
                mergingStreams: false)
            XCTAssertEqual(outcome.status, 0, "np \(ranks): \(outcome.transcript)")
            XCTAssertTrue(outcome.output.contains("OBJECTS OK backend=mpi workers=\(2 * (ranks - 1))\n"), outcome.transcript)
            XCTAssertEqual(resultLines(outcome), reference, "np \(ranks): \(outcome.transcript)")
            XCTAssertTrue(outcome.output.contains("lock sections never overlap: true\n"), outcome.transcript)
        }
    }

    /// A task waiting on a queue when its pool is terminated: its parked request is refused
    /// and its local worker killed by its rank (a terminated pool's workers never outlive it);
    /// the job ends cleanly and quickly, and a task that still asked after the pool ended
    /// would be refused, not left waiting.
    func testOrphanedRequestsAreRefusedNotLeftWaiting() throws {
        let outcome = try Launcher.mpirun(["-np", "2", try Launcher.objectCheck().path], ["--orphan"], timeout: 30)
        XCTAssertEqual(outcome.status, 0, outcome.transcript)
        XCTAssertTrue(outcome.output.contains("ORPHAN DONE"), outcome.transcript)
        XCTAssertFalse(outcome.output.contains("aborting"), outcome.transcript)
        // The task would print after its second request (300 ms later): its worker was killed first.
        XCTAssertFalse(outcome.output.contains("ORPHAN TASK"), outcome.transcript)
        XCTAssertLessThan(outcome.seconds, 10, outcome.transcript)
    }

    /// A task waits for a served queue's item, a `Manager` queue's item or a semaphore's
    /// unit; its local worker is killed while its rank is stopped, and the item is put: the
    /// answer handing it over reaches the rank after the worker died. The item goes back to
    /// rank 0 (it was lost in every round before), with the rank relaying to each local worker
    /// and with the rank scheduling its own (`SWIFTMP_RANK_SCHEDULING=node`).
    func testAnItemHandedToADeadLocalWorkerGoesBack() throws {
        for (ranks, scheduling) in [(2, ""), (3, "node")] {
            let outcome = try Launcher.mpirun(
                ["-np", String(ranks), try Launcher.objectCheck().path], ["--undelivered"], timeout: 120,
                environment: ["SWIFTMP_RANK_SCHEDULING": scheduling])
            XCTAssertEqual(outcome.status, 0, "np \(ranks) \(scheduling): \(outcome.transcript)")
            XCTAssertTrue(outcome.output.contains("UNDELIVERED OK rounds=3"), "np \(ranks) \(scheduling): \(outcome.transcript)")
            XCTAssertEqual(
                outcome.output.split(separator: "\n").filter { $0.hasPrefix("round ") && $0.hasSuffix("still there: true") }.count,
                9, outcome.transcript)
        }
    }

    /// 10 000 rounds of short-lived served objects of every kind, some used by tasks on the
    /// worker ranks: rank 0 frees each once its last handle is gone — its served-object count
    /// comes back to where it was after 1 000 rounds, its resident memory stays flat (objects
    /// were never freed before: +12.5 MB over these rounds).
    func testShortLivedServedObjectsAreFreed() throws {
        let outcome = try Launcher.mpirun(["-np", "3", try Launcher.objectCheck().path], ["--churn"], timeout: 120)
        XCTAssertEqual(outcome.status, 0, outcome.transcript)
        let numbers = { (prefix: String) -> [String: Int] in
            guard let line = outcome.output.split(separator: "\n").first(where: { $0.hasPrefix(prefix) }) else { return [:] }
            return Dictionary(
                uniqueKeysWithValues: line.split(separator: " ").compactMap { field -> (String, Int)? in
                    let parts = field.split(separator: "=")
                    guard parts.count == 2, let value = Int(parts[1]) else { return nil }
                    return (String(parts[0]), value)
                })
        }
        let served = numbers("CHURN served"), memory = numbers("CHURN rss_kib")
        XCTAssertNotNil(served["end"], outcome.transcript)
        XCTAssertLessThanOrEqual(served["end"] ?? .max, served["warm"] ?? -1, outcome.transcript)
        XCTAssertLessThan(served["warm"] ?? .max, 100, outcome.transcript)
        // A pool that ended released its workers' copies (its tasks' objects are gone).
        let afterPool = numbers("CHURN served before")
        XCTAssertEqual(afterPool["after_pool"], afterPool["before"], outcome.transcript)
        XCTAssertNotNil(afterPool["before"], outcome.transcript)
        // 9 000 rounds of about 14 objects each; 4 MB is far below what keeping them costs.
        XCTAssertLessThan(memory["growth"] ?? .max, 4096, outcome.transcript)
    }

    /// A local worker that is killed holding handles (a task decoded a queue, then its worker
    /// was SIGKILLed) never releases them: rank 0 drops what a dead worker held, so 30 such
    /// queues are freed (they were kept for the job's life before).
    func testHandlesOfAKilledLocalWorkerAreDropped() throws {
        let outcome = try Launcher.mpirun(["-np", "3", try Launcher.objectCheck().path], ["--churn-killed"], timeout: 120)
        XCTAssertEqual(outcome.status, 0, outcome.transcript)
        guard let line = outcome.output.split(separator: "\n").first(where: { $0.hasPrefix("CHURN killed") }) else {
            return XCTFail(outcome.transcript)
        }
        let fields = Dictionary(
            uniqueKeysWithValues: line.split(separator: " ").compactMap { field -> (String, Int)? in
                let parts = field.split(separator: "=")
                return parts.count == 2 ? Int(parts[1]).map { (String(parts[0]), $0) } : nil
            })
        XCTAssertEqual(fields["died"], 30, outcome.transcript)
        XCTAssertNotNil(fields["before"], outcome.transcript)
        XCTAssertEqual(fields["end"], fields["before"], outcome.transcript)
    }
}
#endif
