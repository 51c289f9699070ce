import Foundation
import TestSupport
import XCTest

/// A program started as several Slurm tasks without a working MPI launch (`srun -n 3` with
/// `--mpi=none` or `--mpi=pmi2`: each task is an MPI world of 1) refuses to start instead of
/// running the whole program once per task. Here Slurm's variables are set by hand; SlurmTests
/// does the same under a real Slurm.
final class SlurmLaunchTests: XCTestCase {
    /// What `srun -n 3 --mpi=none` gives task `rank`.
    private func stepVariables(rank: Int, tasks: Int = 3) -> [String: String] {
        [
            "SLURM_JOB_ID": "42", "SLURM_STEP_ID": "0", "SLURM_STEPID": "0", "SLURM_STEP_NUM_TASKS": String(tasks),
            "SLURM_NTASKS": String(tasks), "SLURM_PROCID": String(rank), "SLURM_LOCALID": String(rank),
        ]
    }

    private func run(_ environment: [String: String]) throws -> Launcher.Outcome {
        var full = Launcher.cleanEnvironment.filter { !$0.key.hasPrefix("SLURM_") }
        for (key, value) in environment { full[key] = value }
        return try Launcher.run(
            try Launcher.executable("swiftmp"), ["pi", "--samples", "100000"], environment: full,
            mergingStreams: false, deadline: 60)
    }

    func testTaskZeroRefusesAndSaysHowToLaunch() throws {
        let outcome = try run(stepVariables(rank: 0))
        XCTAssertNotEqual(outcome.status, 0)
        XCTAssertEqual(outcome.output, "", "nothing of the program ran")
        XCTAssertTrue(outcome.errors.contains("3 Slurm tasks"), outcome.errors)
        XCTAssertTrue(outcome.errors.contains("srun --mpi=pmix"), outcome.errors)
        XCTAssertTrue(outcome.errors.contains("mpirun"), outcome.errors)
    }

    func testOtherTasksRefuseQuietly() throws {
        let outcome = try run(stepVariables(rank: 2))
        XCTAssertNotEqual(outcome.status, 0)
        XCTAssertEqual(outcome.output, "")
        XCTAssertEqual(outcome.errors, "", "only task 0 explains, so that the job log has the message once")
    }

    func testPMI2IsNotAnMPILaunchForOpenMPI() throws {
        var variables = stepVariables(rank: 0)
        variables["PMI_RANK"] = "0"
        variables["PMI_SIZE"] = "3"
        let outcome = try run(variables)
        XCTAssertNotEqual(outcome.status, 0)
        XCTAssertTrue(outcome.errors.contains("srun --mpi=pmix"), outcome.errors)
    }

    func testOneTaskAndTheBatchScriptAndOptOutRun() throws {
        // A one-task step, the batch script itself (SLURM_NTASKS but no step), and an explicit
        // opt-out run the program normally.
        var batch = stepVariables(rank: 0)
        batch["SLURM_STEP_ID"] = nil
        batch["SLURM_STEPID"] = nil
        batch["SLURM_STEP_NUM_TASKS"] = nil
        var optOut = stepVariables(rank: 1)
        optOut["SWIFTMP_INDEPENDENT_TASKS"] = "1"
        for variables in [stepVariables(rank: 0, tasks: 1), batch, optOut] {
            let outcome = try run(variables)
            XCTAssertEqual(outcome.status, 0, "\(variables): \(outcome.errors)")
            XCTAssertTrue(outcome.output.hasPrefix("pi ≈ "), outcome.output)
        }
    }
}
