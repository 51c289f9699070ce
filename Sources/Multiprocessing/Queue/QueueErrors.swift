/// A `put` that could not place its item in time: the queue stayed full (`maxSize` items,
/// or its shared buffer had no room). Python's `queue.Full`.
public struct Full: Error, CustomStringConvertible, Sendable, Equatable {
    public init() {}
    public var description: String { "the queue is full" }
}

/// A `get` that found no item in time. Python's `queue.Empty`.
public struct Empty: Error, CustomStringConvertible, Sendable, Equatable {
    public init() {}
    public var description: String { "the queue is empty" }
}

/// A misuse or failure of a queue other than full/empty.
public struct QueueError: Error, CustomStringConvertible, Sendable, Equatable {
    public enum Code: Sendable, Equatable {
        /// `close()` was called on this handle.
        case closed
        /// A process died in the middle of putting or getting an item: the stream of items
        /// is cut and the queue cannot be used any more.
        case broken
        /// `taskDone()` was called more times than items were put.
        case taskDoneTooOften
        /// An item could not be encoded, or decoded as the queue's element type.
        case encoding
        /// An argument is out of range.
        case invalidArgument
    }
    public var code: Code
    public var message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    /// A `put` or `get` on a handle after its `close()`.
    static let closedHere = QueueError(.closed, "the queue was closed in this process; use another handle or do not close it")

    public var description: String { message }
}
