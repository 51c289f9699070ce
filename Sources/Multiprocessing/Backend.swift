/// Where a `Pool`'s workers run.
///
/// - `local`: worker processes on this machine, started by the pool (`StartMethod`).
/// - `mpi`: the other ranks of the mpirun job that started this program: rank 0 runs the
///   program, ranks 1…N−1 serve tasks (they were captured by the library's start-up hook
///   before `main`, so they never run the program themselves). Each worker rank hosts local
///   worker processes (`processesPerRank`, forked from the rank) that run the tasks, so a
///   task that crashes costs its input and a replacement worker, never the job. A pool uses
///   every worker rank's workers, or only the first `processes` if that is smaller. With
///   `mpirun -np 1` there is no worker rank and rank 0 hosts the local workers itself.
///   `startMethod` does not apply (workers are forked from their rank); several MPI pools
///   may live at once, each with its own share of the workers. `SWIFTMP_MPI_MODE=spmd` in the
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

    /// The backend for a new pool of at most `processes` workers (nil: all that the worker
    /// ranks host), `perRank` on each worker rank (nil: each rank's default).
    static func makeMPI(
        processes: Int?, perRank: Int?, tagOutput: Bool? = nil, maxTasksPerChild: Int? = nil, relayOnly: Bool = false
    ) throws -> any PoolBackend {
        #if !MPI
        throw PoolError(.backendUnavailable, WithoutMPI.message)
        #else
        guard MPILaunch.isUnderMPIRun else {
            throw PoolError(
                .backendUnavailable,
                "the MPI backend needs the program to be started by mpirun: "
                    + "launch with mpirun -np <1 + workers> <program> (or use backend: .local)")
        }
        guard !MPILaunch.isSPMD else {
            throw PoolError(
                .backendUnavailable,
                "SWIFTMP_MPI_MODE=spmd: every rank runs main and none serves as a worker; "
                    + "unset SWIFTMP_MPI_MODE to use the MPI backend, or use backend: .local")
        }
        if MPILaunch.worldSizeFromEnvironment == 1 {
            let count = processes ?? perRank ?? Multiprocessing.cpuCount
            // The fork server: rank 0 runs the program's threads (and MPI's), and a worker
            // forked while one of them holds a runtime lock would hang (README, fork safety).
            let local = try LocalBackend(
                workers: count, method: .forkserver,
                summary: "mpi, 1 rank (mpirun -np 1): no worker ranks, rank 0 hosts \(count) local "
                    + "worker\(count == 1 ? "" : "s") (forkserver)", tagOutput: tagOutput)
            return local
        }
        return try MPIBackend(
            limit: processes, perRank: perRank, tagOutput: tagOutput, scheduling: relayOnly ? .relay : nil,
            maxTasksPerChild: maxTasksPerChild)
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
