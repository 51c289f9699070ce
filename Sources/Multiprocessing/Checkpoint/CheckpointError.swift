/// A checkpoint journal that cannot be used for this call.
public struct CheckpointError: Error, CustomStringConvertible, Sendable, Equatable {
    public enum Code: Sendable, Equatable {
        /// The journal records other work (another function value, other inputs), or was
        /// written in a format this version does not read.
        case otherWork
        /// Another run holds the journal.
        case inUse
        /// The file cannot be read, written or created.
        case unusable
        /// A result in the journal cannot be decoded as this function's output.
        case corrupt
    }
    public var code: Code
    public var message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { message }
}
