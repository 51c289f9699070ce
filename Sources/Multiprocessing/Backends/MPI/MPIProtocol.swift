#if MPI
import MPI
#if canImport(Glibc)
import Glibc
#endif

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
            throw PoolError(.backendUnavailable, "MPI provides thread level \(level) but the MPI pool needs \(threadLevel): "
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
