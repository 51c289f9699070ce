#if MPI
import Foundation
import TestSupport
import XCTest

/// `swiftmp pi` under a real Slurm (Scripts/slurm/setup.sh: munged, slurmctld, slurmd on this
/// machine): submitted with `sbatch --wait` in both launch styles of Scripts/slurm/, and with
/// `srun -n 3 --mpi=pmix`. Each run must print the same estimate as a local run, computed by
/// worker ranks (not by a singleton falling back to local workers), and exit 0.
final class SlurmTests: XCTestCase {
    static let samples = ["--samples", "2000000", "--seed", "7"]

    override class func tearDown() {
        SlurmCluster.stop()
        super.tearDown()
    }

    private func swiftmp() throws -> String { try Launcher.executable("swiftmp").path }

    /// The first line (`pi ≈ … (… hits in … samples, seed …)`) of a local run.
    private func localEstimate() throws -> String {
        let outcome = try Launcher.run(
            try Launcher.executable("swiftmp"), ["pi", "--backend", "local"] + Self.samples,
            mergingStreams: false, deadline: 120)
        XCTAssertEqual(outcome.status, 0, outcome.errors)
        let line = outcome.output.split(separator: "\n").first.map(String.init) ?? ""
        XCTAssertTrue(line.hasPrefix("pi ≈ 3.14"), outcome.output)
        return line
    }

    private func checkMPIRun(_ output: String, workers: Int, expected: String, _ what: String) {
        let lines = output.split(separator: "\n").map(String.init)
        XCTAssertEqual(lines.filter { $0.hasPrefix("pi ≈") }, [expected], "\(what): one estimate, as locally:\n\(output)")
        let plural = workers == 1 ? "worker" : "workers"
        let ranks = workers == 1 ? "rank" : "ranks"
        XCTAssertTrue(
            output.contains("\(workers) \(plural) (mpi, \(workers) \(plural) on \(workers) worker \(ranks)"),
            "\(what): run by worker ranks:\n\(output)")
    }

    func testSbatchBothLaunchStylesAndSrun() throws {
        try SlurmCluster.start()
        let program = try swiftmp()
        let expected = try localEstimate()
        // Both jobs at once, one CPU each (--overcommit: two tasks on it), so that the test
        // waits for sbatch --wait's polling once.
        let viaMPIRun = try SlurmCluster.submit(["--ntasks=2", "--overcommit"], template: "mpirun.sbatch", [program, "pi"] + Self.samples)
        let viaSrun = try SlurmCluster.submit(["--ntasks=2", "--overcommit"], template: "srun.sbatch", [program, "pi"] + Self.samples)
        let first = viaMPIRun.finish()
        XCTAssertEqual(first.status, 0, "sbatch --wait mpirun.sbatch: \(first.sbatch)\n\(first.output)")
        checkMPIRun(first.output, workers: 1, expected: expected, "mpirun inside the allocation")
        let second = viaSrun.finish()
        XCTAssertEqual(second.status, 0, "sbatch --wait srun.sbatch: \(second.sbatch)\n\(second.output)")
        checkMPIRun(second.output, workers: 1, expected: expected, "srun --mpi=pmix in a batch job")

        let direct = try SlurmCluster.srun(["-n", "3", "--overcommit", "--mpi=pmix", program, "pi"] + Self.samples)
        XCTAssertEqual(direct.status, 0, direct.errors)
        checkMPIRun(direct.output, workers: 2, expected: expected, "srun -n 3 --mpi=pmix")
    }

    func testFailingJobReportsItsStatus() throws {
        try SlurmCluster.start()
        let job = try SlurmCluster.submit(
            ["--ntasks=2", "--overcommit"], template: "srun.sbatch",
            [try swiftmp(), "pi", "--samples", "0"])
        let result = job.finish()
        XCTAssertNotEqual(result.status, 0, "a job whose program fails makes sbatch --wait fail: \(result.output)")
        XCTAssertTrue(result.output.contains("swiftmp:"), result.output)
    }

    /// `srun -n 2` without PMIx (the default `--mpi=none`, or `--mpi=pmi2`, which Open MPI
    /// does not use): every task is an MPI world of 1; the program refuses at once and says
    /// how to launch it instead of computing π twice. With SWIFTMP_INDEPENDENT_TASKS=1 the
    /// two copies run on purpose.
    func testSrunWithoutPMIxRefusesToRunCopies() throws {
        try SlurmCluster.start()
        let program = try swiftmp()
        for mpi in ["--mpi=none", "--mpi=pmi2"] {
            let outcome = try SlurmCluster.srun(["-n", "2", "--overcommit", mpi, program, "pi"] + Self.samples)
            XCTAssertNotEqual(outcome.status, 0, "\(mpi): \(outcome.output)")
            XCTAssertFalse(outcome.output.contains("pi ≈"), "\(mpi): the program did not run: \(outcome.output)")
            XCTAssertTrue(
                outcome.errors.contains("2 Slurm tasks") && outcome.errors.contains("srun --mpi=pmix")
                    && outcome.errors.contains("mpirun"), "\(mpi): \(outcome.errors)")
            XCTAssertLessThan(outcome.seconds, 30, "refuses at once")
        }
        let copies = try SlurmCluster.srun(
            ["-n", "2", "--overcommit", "--mpi=none", program, "pi"] + Self.samples,
            environment: ["SWIFTMP_INDEPENDENT_TASKS": "1"])
        XCTAssertEqual(copies.status, 0, copies.errors)
        XCTAssertEqual(copies.output.split(separator: "\n").filter { $0.hasPrefix("pi ≈") }.count, 2, copies.output)
    }

    /// A task's CPUs (and its default local pool) are its share of the allocation: with
    /// binding off (`--cpu-bind=none`, so the mask is the whole machine) `--cpus-per-task=1`
    /// still gives one worker; `--cpus-per-task=2` gives two.
    func testTaskUsesItsCPUsPerTask() throws {
        try SlurmCluster.start()
        let program = try swiftmp()
        guard ProcessInfo.processInfo.activeProcessorCount >= 2 else { throw XCTSkip("needs 2 CPUs") }
        for (cpus, binding) in [(1, "--cpu-bind=none"), (2, "--cpu-bind=cores")] {
            let outcome = try SlurmCluster.srun(["-n", "1", "--cpus-per-task=\(cpus)", binding, program, "info", "--json"])
            XCTAssertEqual(outcome.status, 0, outcome.errors)
            let object = try JSONSerialization.jsonObject(with: Data(outcome.output.utf8)) as? [String: Any]
            XCTAssertEqual(object?["cpus"] as? Int, cpus, outcome.output)
            XCTAssertEqual(object?["workers"] as? Int, cpus, outcome.output)
            XCTAssertTrue((object?["cpu_limits"] as? String ?? "").contains("Slurm share \(cpus)"), outcome.output)
        }
    }

    /// Queues, locks, events, shared values and a Manager used by tasks on worker ranks are
    /// served by rank 0 under `srun --mpi=pmix` as under mpirun (the job's size comes from the
    /// step's task count, since Open MPI's variables are not set).
    func testSharedObjectsServedUnderSrun() throws {
        try SlurmCluster.start()
        let program = try Launcher.executable("mpi-object-check").path
        let outcome = try SlurmCluster.srun(["-n", "3", "--overcommit", "--mpi=pmix", program])
        XCTAssertEqual(outcome.status, 0, outcome.output + outcome.errors)
        XCTAssertTrue(outcome.output.contains("OBJECTS OK backend=mpi workers=2"), outcome.output + outcome.errors)
    }
}
#endif
