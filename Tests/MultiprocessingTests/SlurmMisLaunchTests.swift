import XCTest

@testable import Multiprocessing

/// Which Slurm environments are refused at start-up (`SlurmMisLaunch`); the refusal itself is
/// tested on the built CLI (SwiftMPTests.SlurmLaunchTests) and under a real Slurm (SlurmTests).
final class SlurmMisLaunchTests: XCTestCase {
    private let step = [
        "SLURM_JOB_ID": "42", "SLURM_STEP_ID": "0", "SLURM_STEP_NUM_TASKS": "4", "SLURM_NTASKS": "4",
        "SLURM_PROCID": "3",
    ]

    private func detect(_ changes: [String: String?]) -> SlurmMisLaunch? {
        var variables = step
        for (key, value) in changes { variables[key] = value }
        return SlurmMisLaunch.detect { variables[$0] }
    }

    func testSeveralTasksWithoutMPIAreRefused() {
        XCTAssertEqual(detect([:]), SlurmMisLaunch(tasks: 4, task: 3))
        XCTAssertEqual(detect(["PMI_RANK": "3", "PMI_SIZE": "4"]), SlurmMisLaunch(tasks: 4, task: 3), "srun --mpi=pmi2")
        XCTAssertEqual(detect(["SLURM_STEP_NUM_TASKS": nil]), SlurmMisLaunch(tasks: 4, task: 3), "SLURM_NTASKS is enough")
    }

    func testMPILaunchesOneTaskTheBatchScriptAndTheOptOutAreNot() {
        XCTAssertNil(detect(["PMIX_RANK": "3"]), "srun --mpi=pmix")
        XCTAssertNil(detect(["OMPI_COMM_WORLD_SIZE": "4", "OMPI_COMM_WORLD_RANK": "3"]), "mpirun inside the allocation")
        XCTAssertNil(detect(["SLURM_STEP_NUM_TASKS": "1", "SLURM_NTASKS": "1"]), "one task")
        XCTAssertNil(detect(["SLURM_STEP_ID": nil]), "the batch script")
        XCTAssertNil(detect(["SWIFTMP_INDEPENDENT_TASKS": "1"]), "copies on purpose")
        XCTAssertNil(SlurmMisLaunch.detect { _ in nil }, "not under Slurm")
    }

    func testMessageSaysHowToLaunch() {
        let message = SlurmMisLaunch(tasks: 4, task: 0).message(program: "sweep")
        XCTAssertTrue(message.hasPrefix("sweep: started as 4 Slurm tasks"), message)
        XCTAssertTrue(message.contains("srun --mpi=pmix sweep"), message)
        XCTAssertTrue(message.contains("mpirun sweep"), message)
    }
}
