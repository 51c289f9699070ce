#if canImport(Glibc)
import Glibc
#endif

// Outside `#if MPI`: read from the environment only, so that a build without the `MPI` trait
// still knows it runs under mpirun (and says that it cannot serve it, `WithoutMPI`).

/// What the environment says about how the process was launched.
enum MPILaunch {
    private static func variable(_ name: String) -> String? {
        getenv(name).map { String(cString: $0) }
    }

    /// Whether `mpirun` (Open MPI or PMIx) started this process.
    static var isUnderMPIRun: Bool {
        variable("OMPI_COMM_WORLD_SIZE") != nil || variable("OMPI_COMM_WORLD_RANK") != nil
            || variable("PMIX_RANK") != nil
    }

    /// `SWIFTMP_MPI_MODE=spmd`: every rank runs `main`; no rank is captured as a worker.
    static var isSPMD: Bool { variable("SWIFTMP_MPI_MODE") == "spmd" }

    /// The number of ranks, from the environment (without initialising MPI) when it says:
    /// mpirun's `OMPI_COMM_WORLD_SIZE`, or under `srun --mpi=pmix` (PMIx's variables only) the
    /// srun step's task count, which is the world's size for a direct launch.
    static var worldSizeFromEnvironment: Int? {
        if let size = variable("OMPI_COMM_WORLD_SIZE").flatMap({ Int($0) }) { return size }
        guard variable("PMIX_RANK") != nil, variable("SLURM_STEP_ID") != nil || variable("SLURM_STEPID") != nil else {
            return nil
        }
        return (variable("SLURM_STEP_NUM_TASKS") ?? variable("SLURM_NTASKS")).flatMap { Int($0) }
    }

    static var rank: Int? {
        (variable("OMPI_COMM_WORLD_RANK") ?? variable("PMIX_RANK")).flatMap { Int($0) }
    }
}
