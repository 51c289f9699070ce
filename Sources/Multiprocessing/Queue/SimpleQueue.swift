/// An unbounded queue with only `put`, `get`, `isEmpty` and `close`: Python's
/// `multiprocessing.SimpleQueue`. A `Queue` underneath, with the same guarantees — also
/// under mpirun, where rank 0 serves it (see `Queue`).
public final class SimpleQueue<Element: Codable & Sendable>: Codable, Waitable, @unchecked Sendable {
    private let queue: Queue<Element>

    /// An empty queue with `bufferSize` bytes of shared buffer.
    public init(bufferSize: Int = 1 << 20) throws {
        queue = try Queue(maxSize: 0, bufferSize: bufferSize)
    }

    /// Puts `item` (waits only while the shared buffer has no room for it).
    public func put(_ item: Element) throws {
        try queue.put(item)
    }

    /// Removes and returns the oldest item, waiting at most `timeout` seconds (nil: without
    /// limit). Throws `Empty` on time-out.
    public func get(timeout: Double? = nil) throws -> Element {
        try queue.get(timeout: timeout)
    }

    /// Whether no item is ready to be got.
    public var isEmpty: Bool { queue.isEmpty }

    /// This process will use this handle no more.
    public func close() { queue.close() }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(queue)
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        queue = try container.decode(Queue<Element>.self)
    }

    public var _waitDescriptor: Int32? { queue._waitDescriptor }
    public func _isReady() -> Bool { queue._isReady() }
}
