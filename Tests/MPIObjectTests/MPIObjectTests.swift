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
            .filter { $0.contains(": ") && !$0.hasPrefix("OBJECTS") && !$0.hasPrefix("[") && !$0.hasPrefix(" ")
                && !$0.hasPrefix("unavailable") && !$0.hasPrefix("Process ") && !$0.hasPrefix("swiftmp:") }
    }

    func testSameLinesLocallyAndUnderMPIRun() throws {
        let program = try Launcher.objectCheck()
        let local = try Launcher.run(program, [], deadline: 60)
        XCTAssertEqual(local.status, 0, local.output)
        XCTAssertTrue(local.output.contains("OBJECTS OK backend=local"), local.output)
        let reference = resultLines(local)
        XCTAssertEqual(reference.count, 73, local.output)
        for ranks in [2, 3, 4] {
            let outcome = try Launcher.mpirun(["-np", String(ranks), program.path], timeout: 60)
            XCTAssertEqual(outcome.status, 0, "np \(ranks): \(outcome.output)")
            XCTAssertTrue(outcome.output.contains("OBJECTS OK backend=mpi workers=\(ranks - 1)\n"), "np \(ranks): \(outcome.output)")
            XCTAssertEqual(resultLines(outcome), reference, "np \(ranks): \(outcome.output)")
            let refused = outcome.output.split(separator: "\n").filter { $0.hasPrefix("unavailable ") }
            XCTAssertEqual(refused.count, 2, outcome.output)
            XCTAssertTrue(refused.allSatisfy { $0.hasSuffix(": refused") }, outcome.output)
            XCTAssertTrue(outcome.output.contains("RawSharedValue is not available across MPI ranks"), outcome.output)
            // A Manager is served by rank 0 in process: its dict, list and namespace were
            // filled by tasks on every worker rank (the lines above match the local run's);
            // its proxies cannot reach a local worker process.
            XCTAssertTrue(outcome.output.contains("[manager filled by \(ranks - 1) distinct workers]\n"), outcome.output)
            XCTAssertTrue(outcome.output.contains("manager after shutdown on a worker: unavailable\n"), outcome.output)
            XCTAssertTrue(outcome.output.contains("[mpi] served manager proxy in a local pool: refused\n"), outcome.output)
            // Served pipes: to a pool function (its copy closes when the pool ends), and
            // between two worker ranks (needs two of them).
            XCTAssertTrue(outcome.output.contains("[mpi] pipe to a pool function: poll=false waited=true [0, 1, 2, 3] then=endOfFile\n"),
                          outcome.output)
            XCTAssertTrue(outcome.output.contains("[mpi] pipe end through a queue: sent 42 then=endOfFile\n"), outcome.output)
            XCTAssertEqual(outcome.output.contains("[mpi] pipe between worker ranks: sum=1055 answered=10 distinct=true\n"), ranks >= 3,
                           outcome.output)
            // Process targets ran on the worker ranks, one per rank; terminate() cannot interrupt one.
            XCTAssertTrue(outcome.output.contains("[mpi] processes on distinct ranks: \(min(2, ranks - 1))\n"), outcome.output)
            XCTAssertTrue(outcome.output.contains("[mpi] process beyond the worker ranks: refused\n"), outcome.output)
            XCTAssertTrue(outcome.output.contains("[mpi] terminate leaves the target running: true\n"), outcome.output)
            XCTAssertTrue(outcome.output.contains("cannot interrupt a target on an MPI rank"), outcome.output)
            XCTAssertTrue(outcome.output.contains("[mpi] served queue in a local pool: refused\n"), outcome.output)
            XCTAssertFalse(outcome.output.contains("MISMATCH"), outcome.output)
            XCTAssertLessThan(outcome.seconds, 30, outcome.output)
        }
    }

    /// The same program on three "hosts" (network namespaces, TCP between ranks): the
    /// objects rank 0 serves reach worker ranks on other nodes.
    func testSameLinesOnThreeHosts() throws {
        let program = try Launcher.objectCheck()
        let local = try Launcher.run(program, [], deadline: 60)
        XCTAssertEqual(local.status, 0, local.output)
        let outcome = try Launcher.netnsCluster(hosts: 3, program.path)
        XCTAssertEqual(outcome.status, 0, outcome.output)
        XCTAssertTrue(outcome.output.contains("OBJECTS OK backend=mpi workers=2\n"), outcome.output)
        XCTAssertEqual(resultLines(outcome), resultLines(local), outcome.output)
        XCTAssertTrue(outcome.output.contains("[mpi] pipe between worker ranks: sum=1055 answered=10 distinct=true\n"),
                      outcome.output)
    }

    /// A task waiting on a queue when its pool is terminated, asking again after the pool
    /// ended: rank 0 refuses both requests, the task ends, the job ends cleanly and quickly.
    func testOrphanedRequestsAreRefusedNotLeftWaiting() throws {
        let outcome = try Launcher.mpirun(["-np", "2", try Launcher.objectCheck().path], ["--orphan"], timeout: 30)
        XCTAssertEqual(outcome.status, 0, outcome.output)
        XCTAssertTrue(outcome.output.contains("ORPHAN DONE"), outcome.output)
        XCTAssertFalse(outcome.output.contains("aborting"), outcome.output)
        XCTAssertTrue(outcome.output.contains("ORPHAN TASK: the MPI pool ended while this request waited"), outcome.output)
        XCTAssertTrue(outcome.output.contains("; no MPI pool is live on rank 0"), outcome.output)
        XCTAssertLessThan(outcome.seconds, 10, outcome.output)
    }
}
#endif
