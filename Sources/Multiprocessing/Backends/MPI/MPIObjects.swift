#if canImport(Glibc)
import Glibc
#endif
#if MPI

/// When the shared objects (queues, pipes, locks, semaphores, conditions, events, barriers,
/// shared values and arrays, a `Manager`'s dicts, lists and namespaces) are served by rank 0
/// over MPI instead of living in shared memory (or, for a `Manager`, in a server process), and
/// the refusal of the primitives that are not offered across ranks.
///
/// Served: in rank 0 of an mpirun job with at least one worker rank (`OMPI_COMM_WORLD_SIZE`
/// > 1), unless `SWIFTMP_MPI_MODE=spmd` or `SWIFTMP_MPI_OBJECTS=local` (for a program under
/// mpirun that passes its objects only to local worker processes). Decided once per process,
/// from the environment, without initialising MPI. Everywhere else — no mpirun, `-np 1`,
/// inside worker ranks — objects are local, as before.
///
/// Requests from worker ranks are answered by rank 0's MPI service (`MPIService`) whether or
/// not a pool is live; rank 0's own operations work at any time.
enum MPIObjects {
    /// Whether this process serves its objects. Only the process that decided it: a child
    /// forked from rank 0 (a local worker) inherits the decision but not the MPI, so it says no
    /// there, and a served object that reaches it fails to decode with a clear error.
    static var isServing: Bool {
        decision.serving && decision.pid == getpid()
    }

    private static let decision: (serving: Bool, pid: pid_t) = {
        guard MPILaunch.isUnderMPIRun, !MPILaunch.isSPMD, (MPILaunch.rank ?? 0) == 0,
            (MPILaunch.worldSizeFromEnvironment ?? 1) > 1
        else { return (false, getpid()) }
        if let choice = getenv("SWIFTMP_MPI_OBJECTS"), String(cString: choice) == "local" { return (false, getpid()) }
        return (true, getpid())
    }()

    /// Throws `MPIObjectError(.unavailable)` naming `alternative` when objects are served.
    static func refuseIfServing(_ primitive: String, use alternative: String) throws(MPIObjectError) {
        if isServing { throw MPIObjectError.unavailable(primitive, use: alternative) }
    }
}

/// What rank 0's object service holds now, for checks and diagnostics (`mpi-object-check
/// --churn`): not a stable API.
@_spi(Diagnostics)
public enum MPIObjectDiagnostics {
    /// The objects rank 0 serves now (0 in a process that serves none).
    public static var servedObjectCount: Int { MPIObjectRegistry.shared.count }
}
#endif
