/// A named shared memory block that cannot be created, attached or used: Python's
/// `FileExistsError`, `FileNotFoundError` and `ValueError` around `SharedMemory`.
public struct SharedMemoryError: Error, CustomStringConvertible, Sendable, Equatable {
    public enum Code: Sendable, Equatable {
        /// `create: true` with a name that is taken.
        case exists
        /// `create: false` with a name that does not exist (never created, or unlinked).
        case notFound
        /// A name with a slash, a NUL, too long, empty, or reserved.
        case invalidName
        /// A size ≤ 0 for a new block, or an existing block that is empty.
        case invalidSize
        /// A system call failed; `underlyingError` says which.
        case systemCall
    }

    public var code: Code
    public var message: String
    public var underlyingError: SystemError?

    public init(_ code: Code, _ message: String, underlyingError: SystemError? = nil) {
        self.code = code
        self.message = message
        self.underlyingError = underlyingError
    }

    public var description: String { message }
}
