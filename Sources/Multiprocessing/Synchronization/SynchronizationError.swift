/// A misuse of a lock, semaphore or condition, or a failure of the system call under it.
///
/// Python raises `ValueError`, `RuntimeError` or `AssertionError` for these; here they are one
/// type with a `code`, and a message that says what to do.
public struct SynchronizationError: Error, CustomStringConvertible, Sendable, Equatable {
    public enum Code: Sendable, Equatable {
        /// `release()` of a `Lock` or `RLock` this thread does not hold (Python: `RuntimeError`
        /// / `AssertionError`); also `Condition.wait` / `notify` without holding its lock.
        case notHeld
        /// `acquire()` of a `Lock` this thread already holds: it would wait for itself for ever.
        case wouldDeadlock
        /// `BoundedSemaphore.release()` above its initial value (Python: `ValueError`,
        /// "semaphore or lock released too many times").
        case releasedTooManyTimes
        /// An argument out of range (a negative semaphore value, zero barrier parties, …).
        case invalidArgument
        /// A system call failed; `underlyingError` says which.
        case systemCall
    }

    public var code: Code
    public var message: String
    /// The failing system call, for `.systemCall`.
    public var underlyingError: SystemError?

    public init(_ code: Code, _ message: String, underlyingError: SystemError? = nil) {
        self.code = code
        self.message = message
        self.underlyingError = underlyingError
    }

    init(_ error: SystemError, _ context: String) {
        self.init(.systemCall, "\(context): \(error)", underlyingError: error)
    }

    public var description: String { message }
}

/// A `Barrier` that was broken — by `abort()`, by `reset()` while parties waited, by a
/// timeout, by a throwing action or by a party that died inside it — or is still broken.
/// Python's `threading.BrokenBarrierError`. Call `reset()` to use the barrier again.
public struct BrokenBarrierError: Error, CustomStringConvertible, Sendable, Equatable {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
