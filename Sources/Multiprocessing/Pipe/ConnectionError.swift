/// A failure of a `Connection`: the peer closed its end (Python's `EOFError` /
/// `BrokenPipeError`), this end was closed, or a message could not be transported.
public struct ConnectionError: Error, CustomStringConvertible, Sendable, Equatable {
    public enum Code: Sendable, Equatable {
        /// The other end was closed (or its process ended) before a whole message arrived.
        case endOfFile
        /// The other end is closed: the message cannot be sent.
        case brokenPipe
        /// This connection was closed with `close()`.
        case closed
        /// This end cannot do that (a one-way pipe's receiving end cannot send, and so on).
        case wrongDirection
        /// A value could not be encoded, or a message decoded as the requested type.
        case encoding
        /// The connection cannot travel where it was sent.
        case notTransferable
        /// An offset or size outside the buffer given (Python's `ValueError`).
        case invalidArgument
        /// `recvBytes(maxLength:)`: the message was longer (Python's "bad message length");
        /// it was read and dropped.
        case messageTooLong
        /// `Listener.accept(timeout:)`: no client came in time.
        case timedOut
    }
    public var code: Code
    public var message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { message }
}

/// `Connection.recvBytes(into:offset:)`: the message did not fit in the buffer after the
/// offset (Python's `multiprocessing.BufferTooShort`). It was read whole and is here; the
/// buffer is unchanged.
public struct BufferTooShort: Error, CustomStringConvertible, Sendable, Equatable {
    /// The whole message.
    public var bytes: [UInt8]
    /// The room there was.
    public var room: Int

    public init(bytes: [UInt8], room: Int) {
        self.bytes = bytes
        self.room = room
    }

    public var description: String {
        "a \(bytes.count)-byte message does not fit in the \(room) bytes after the offset (the message is in this error)"
    }
}
