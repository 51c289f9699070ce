#if MPI
import MPI
#endif
#if canImport(Glibc)
import Glibc
#endif
#if MPI

/// What rank 0 and the worker ranks say to each other, on a duplicate of `MPI_COMM_WORLD`
/// made right after `MPI_Init` on every rank (so the program's own messages never mix in).
///
/// - `poolTag`: the pool's messages (`MasterMessage` / `WorkerMessage`), one per MPI message,
///   without the 8-byte frame header.
/// - `controlTag`: rank 0 → worker `hello` (build id), `terminate`; worker → rank 0
///   `helloReply` (whether the build matches, host name), `terminated`.
enum MPIProtocol {
    static let poolTag = 1
    static let controlTag = 2
    /// One thread talks to MPI at a time, but not always the same one (each pool has its own
    /// engine thread; the exit handler runs on the main thread).
    static let threadLevel = ThreadLevel.serialized

    enum Control: UInt8 {
        case hello = 1
        case helloReply = 2
        case terminate = 3
        case terminated = 4
    }

    /// The duplicated world communicator every rank makes once, right after `MPI_Init`.
    static func start() throws -> Communicator {
        let level = try MPIEnvironment.initialize(threadLevel: threadLevel)
        guard level >= threadLevel else {
            throw PoolError(
                .backendUnavailable,
                "MPI provides thread level \(level) but the MPI pool needs \(threadLevel): "
                    + "if the program initialised MPI itself, use MPIEnvironment.initialize(threadLevel: .serialized); "
                    + "otherwise use an Open MPI built with thread support")
        }
        return try Communicator.world.duplicate()
    }

    static func controlMessage(_ kind: Control, _ body: (inout WireWriter) -> Void = { _ in }) -> [UInt8] {
        var writer = WireWriter(capacity: 64)
        writer.write(kind.rawValue)
        body(&writer)
        return writer.bytes
    }
}

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

    /// This process's rank; in a worker rank's local worker (whose environment no longer says
    /// it was launched by mpirun), the rank that hosts it.
    static var rank: Int? {
        (variable("OMPI_COMM_WORLD_RANK") ?? variable("PMIX_RANK")).flatMap { Int($0) } ?? hostRank
    }

    /// Set by a worker rank before it forks its local workers (`MPIWorkerEntry`).
    nonisolated(unsafe) static var hostRank: Int?
}
