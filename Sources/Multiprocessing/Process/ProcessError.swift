/// A misuse of a `Process`, or a failure to start one. A child that fails is not an error
/// of the parent: it is a non-zero `exitCode` (as in Python).
public struct ProcessError: Error, CustomStringConvertible, Sendable, Equatable {
    public enum Code: Sendable, Equatable {
        /// `start()` was called twice.
        case alreadyStarted
        /// The process was never started.
        case notStarted
        /// `close()` was called while the child still runs.
        case stillRunning
        /// The process was closed; it can no longer be used.
        case closed
        /// The target cannot be sent to the child (encoding, type lookup).
        case encoding
        /// The child could not be started.
        case startFailed
        /// The operation does not exist for this process (a target on an MPI rank has no
        /// sentinel descriptor).
        case unsupported
    }
    public var code: Code
    public var message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { message }
}
