/// An unbounded queue with only `put`, `get`, `isEmpty` and `close`: Python's
/// `multiprocessing.SimpleQueue`. Same machinery and guarantees as `Queue`.
public final class SimpleQueue<Element: Codable & Sendable>: Codable, Waitable, @unchecked Sendable {
    private let core: QueueCore
    private let kind = QueueItemKind.of(Element.self)

    /// An empty queue with `bufferSize` bytes of shared buffer.
    public init(bufferSize: Int = 1 << 20) throws {
        core = try QueueCore(maxSize: 0, bufferSize: bufferSize)
    }

    /// Puts `item` (waits only while the shared buffer has no room for it).
    public func put(_ item: Element) throws {
        try Queue<Element>.put(item, kind: kind, into: core, deadline: nil)
    }

    /// Removes and returns the oldest item, waiting at most `timeout` seconds (nil: without
    /// limit). Throws `Empty` on time-out.
    public func get(timeout: Double? = nil) throws -> Element {
        try Queue<Element>.get(kind: kind, from: core, deadline: deadline(after: timeout))
    }

    /// Whether no item is ready to be got.
    public var isEmpty: Bool { core.isEmpty }

    /// This process will use this handle no more.
    public func close() { core.close() }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(core.segment)
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        core = try QueueCore(attaching: try container.decode(SharedSegment.self))
    }

    public var _waitDescriptor: Int32? { nil }
    public func _isReady() -> Bool { !core.isEmpty || core.isBroken }
}
