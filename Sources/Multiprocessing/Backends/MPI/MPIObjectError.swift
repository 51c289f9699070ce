/// A shared object that cannot be used across the ranks of an mpirun job, or an MPI object
/// service that cannot answer.
///
/// Under mpirun (rank 0 of a job with worker ranks) the queues, `Pipe`, the locks and
/// semaphores, `Condition`, `Event`, `Barrier`, `SharedValue`, `SharedArray` and a `Manager`'s
/// objects are served by rank 0 over MPI messages; the other primitives (the raw shared types,
/// a `Barrier` action) are refused when they are created (`.unavailable`), with a message
/// naming what to use instead — never a hang. (A `Manager` proxy's failures are
/// `ManagerError`s, as without mpirun.)
public struct MPIObjectError: Error, CustomStringConvertible, Sendable, Equatable {
    public enum Code: Sendable, Equatable {
        /// This primitive is not offered across MPI ranks; the message says what to use.
        case unavailable
        /// A served object reached a process that cannot talk to rank 0 (a local child
        /// process started inside an mpirun job).
        case wrongProcess
        /// Rank 0 could not answer: no MPI pool was live, the pool ended while the request
        /// waited, or the object is unknown (never served by rank 0, or freed when its last
        /// handle was dropped).
        case notServed
        /// An MPI call failed.
        case transport
    }

    public var code: Code
    public var message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { message }

    /// The error for `primitive` created under mpirun, naming `alternative`.
    static func unavailable(_ primitive: String, use alternative: String) -> MPIObjectError {
        MPIObjectError(
            .unavailable,
            "\(primitive) is not available across MPI ranks (this program runs under mpirun, "
                + "where shared objects are served by rank 0 over MPI messages): use \(alternative) — or, for a program that "
                + "only uses local worker processes, set SWIFTMP_MPI_OBJECTS=local")
    }
}
