/// Where a `Pool`'s workers run.
///
/// - `local`: worker processes on this machine, started by the pool (`StartMethod`).
/// - `mpi`: the other ranks of the mpirun job that started this program: rank 0 runs the
///   program, ranks 1…N−1 serve tasks (they were captured by the library's start-up hook
///   before `main`, so they never run the program themselves). A pool uses every worker
///   rank, or only the first `processes` ranks if that is smaller. With `mpirun -np 1` there
///   is no worker rank and the pool runs the tasks in rank 0 itself, on its own thread.
///   `startMethod` does not apply; `maxTasksPerChild` is refused (a rank cannot be
///   replaced); one MPI pool at a time per process. `SWIFTMP_MPI_MODE=spmd` in the
///   environment turns the capture off: every rank runs `main` and the MPI backend is
///   unavailable (use `MPI` directly). In a build without the package's `MPI` trait there is
///   no MPI backend: `.mpi` throws `PoolError(.backendUnavailable)` saying to enable it.
/// - `automatic`: `mpi` when the program was started by mpirun (`OMPI_COMM_WORLD_SIZE`,
///   `OMPI_COMM_WORLD_RANK` or `PMIX_RANK` is set, and not in SPMD mode), else `local`.
public enum Backend: Sendable, Hashable, CustomStringConvertible {
    case automatic
    case local
    case mpi

    /// `.local` or `.mpi`: what `.automatic` means in this process.
    public var resolved: Backend {
        switch self {
        case .local, .mpi: self
        case .automatic: MPILaunch.isUnderMPIRun && !MPILaunch.isSPMD ? .mpi : .local
        }
    }

    public var description: String {
        switch self {
        case .automatic: "automatic"
        case .local: "local"
        case .mpi: "mpi"
        }
    }

    /// The backend for a new pool of at most `processes` workers (nil: all worker ranks).
    static func makeMPI(processes: Int?) throws -> any PoolBackend {
        #if !MPI
        throw PoolError(.backendUnavailable, WithoutMPI.message)
        #else
        guard MPILaunch.isUnderMPIRun else {
            throw PoolError(.backendUnavailable, "the MPI backend needs the program to be started by mpirun: "
                + "launch with mpirun -np <1 + workers> <program> (or use backend: .local)")
        }
        guard !MPILaunch.isSPMD else {
            throw PoolError(.backendUnavailable, "SWIFTMP_MPI_MODE=spmd: every rank runs main and none serves as a worker; "
                + "unset SWIFTMP_MPI_MODE to use the MPI backend, or use backend: .local")
        }
        if MPILaunch.worldSizeFromEnvironment == 1 {
            return InProcessBackend(summary: "mpi, 1 rank (mpirun -np 1): no worker ranks, rank 0 runs the tasks itself")
        }
        return try MPIBackend(limit: processes)
        #endif
    }
}

/// How this process was launched, as far as the MPI backend is concerned.
public enum MPILaunchInfo {
    /// Whether mpirun (Open MPI or a PMIx launcher) started this process.
    public static var isUnderMPIRun: Bool { MPILaunch.isUnderMPIRun }
    /// `SWIFTMP_MPI_MODE=spmd`: every rank runs `main`, none serves pools.
    public static var isSPMD: Bool { MPILaunch.isSPMD }
    /// This process's rank, from the launcher's environment.
    public static var rank: Int? { MPILaunch.rank }
}
