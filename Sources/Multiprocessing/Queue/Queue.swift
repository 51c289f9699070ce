/// A first-in first-out queue between processes: Python's `multiprocessing.Queue`.
///
/// ```swift
/// let results = try Queue<Int>()
/// let p = Process(target: Compute(results: results))   // Compute stores the queue
/// try p.start()
/// print(try results.get())
/// try p.join()
/// ```
///
/// Any number of processes may put and get. Items are `Codable` values of any size (a 1 MiB
/// array streams through the shared buffer while a consumer drains it). The queue lives in
/// shared memory and is itself `Codable`: store it in a `Process` target or a pool function
/// (also one created after the pool's workers started) and the child uses the same queue.
/// A queue received through another queue or a pipe cannot be used (it has no descriptor).
///
/// Differences from Python: `put` writes into shared memory directly (there is no feeder
/// thread), so an unbounded queue whose buffer (`bufferSize`, 1 MiB by default) is full makes
/// `put` wait for a consumer, as a pipe would; an item is visible to `get` as soon as `put`
/// returns. A process killed in the middle of an item makes the queue `broken` (every call
/// throws `QueueError(.broken)`), never hang.
///
/// **Under mpirun** (rank 0 of a job with worker ranks, unless `SWIFTMP_MPI_OBJECTS=local`)
/// the queue is served by rank 0 over MPI messages instead: tasks on every worker rank that
/// store it put and get through rank 0 (answered while an MPI pool is live; a `get` on an
/// empty queue waits in rank 0, without polling). `bufferSize` does not apply then, and the
/// queue cannot reach local child processes.
public class Queue<Element: Codable & Sendable>: Codable, Waitable, @unchecked Sendable {
    /// The shared-memory queue; nil for a queue served by rank 0 under mpirun.
    let local: QueueCore?
    let served: MPIServedQueue?
    /// `local`, where `served` is nil.
    var core: QueueCore { local! }

    /// A queue of at most `maxSize` items (0: no bound), with `bufferSize` bytes of shared
    /// buffer (rounded up to a power of two; items larger than it stream through).
    public init(maxSize: Int = 0, bufferSize: Int = 1 << 20) throws {
        if MPIObjects.isServing {
            guard maxSize >= 0 else {
                throw QueueError(.invalidArgument, "maxSize must be 0 (no bound) or a positive count, not \(maxSize)")
            }
            local = nil
            served = MPIServedQueue(maxSize: maxSize)
            return
        }
        local = try QueueCore(maxSize: maxSize, bufferSize: bufferSize)
        served = nil
    }

    /// Puts `item`, waiting at most `timeout` seconds (nil: without limit) while the queue
    /// is full. Throws `Full` on time-out.
    public func put(_ item: Element, timeout: Double? = nil) throws {
        if let served { return try served.put(try Queue.encode(item), timeout: timeout) }
        try Queue.withFrame(item) { try core.put(frame: $0, deadline: deadline(after: timeout)) }
    }

    /// Puts `item` if there is room now; throws `Full` otherwise.
    public func putNowait(_ item: Element) throws {
        try put(item, timeout: 0)
    }

    /// Removes and returns the oldest item, waiting at most `timeout` seconds (nil: without
    /// limit). Throws `Empty` on time-out.
    public func get(timeout: Double? = nil) throws -> Element {
        if let served { return try served.get(timeout: timeout).withUnsafeBytes { try Queue.decode($0) } }
        return try core.get(deadline: deadline(after: timeout), decode: Queue.decode)
    }

    /// Removes and returns the oldest item if there is one now; throws `Empty` otherwise.
    public func getNowait() throws -> Element {
        try get(timeout: 0)
    }

    /// Whether no item is ready to be got (approximate while others use the queue).
    public var isEmpty: Bool { served.map { $0.count == 0 } ?? core.isEmpty }

    /// Whether `maxSize` items are in the queue (always false without a bound).
    public var isFull: Bool { served.map { $0.maxSize > 0 && $0.count >= $0.maxSize } ?? core.isFull }

    /// Items put and not yet got (approximate while others use the queue). Python's `qsize()`.
    public var count: Int { served?.count ?? core.count }

    /// The bound given at creation (0: none).
    public var maxSize: Int { served?.maxSize ?? core.maxSize }

    /// Whether a process died in the middle of an item, making the queue unusable.
    public var isBroken: Bool { served == nil && core.isBroken }

    /// This process will use this handle no more: later calls on it throw
    /// `QueueError(.closed)`. Other processes are not affected. Python's `close()`.
    public func close() {
        local?.close()
    }

    // MARK: Codable

    private enum CodingKeys: String, CodingKey { case served, maxSize, segment }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        // Wire reads keys in the order they were written: keep this order in init(from:).
        if let served {
            try MPIServedObject.checkEncoding("Queue")
            try container.encode(served.object.id, forKey: .served)
            try container.encode(served.maxSize, forKey: .maxSize)
            return
        }
        try container.encode(UInt64(0), forKey: .served)
        try container.encode(core.segment, forKey: .segment)
    }

    public required init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        let id = try container.decode(UInt64.self, forKey: .served)
        if id != 0 {
            try MPIServedObject.checkDecoding("Queue")
            local = nil
            served = MPIServedQueue(id: id, maxSize: try container.decode(Int.self, forKey: .maxSize))
            return
        }
        local = try QueueCore(attaching: try container.decode(SharedSegment.self, forKey: .segment))
        served = nil
    }

    // MARK: Waitable

    public var _waitDescriptor: Int32? { nil }
    public func _isReady() -> Bool { served.map { $0.count > 0 } ?? (!core.isEmpty || core.isBroken) }

    // MARK: coding items

    static func withFrame<R>(_ item: Element, _ body: (UnsafeRawBufferPointer) throws -> R) throws -> R {
        var writer = WireWriter(capacity: 32)
        Frame.begin(&writer)
        do {
            try writer.encode(item)
        } catch {
            throw QueueError(.encoding, "cannot encode a \(String(reflecting: Element.self)) for a queue: \(error)")
        }
        Frame.finish(&writer)
        return try writer.bytes.withUnsafeBytes(body)
    }

    /// An item's bytes for a served queue (no frame header).
    static func encode(_ item: Element) throws -> [UInt8] {
        var writer = WireWriter(capacity: 32)
        do {
            try writer.encode(item)
        } catch {
            throw QueueError(.encoding, "cannot encode a \(String(reflecting: Element.self)) for a queue: \(error)")
        }
        return writer.bytes
    }

    static func decode(_ bytes: UnsafeRawBufferPointer) throws -> Element {
        do {
            var reader = WireReader(bytes)
            let value = try reader.decode(Element.self)
            guard reader.isAtEnd else { throw WireError.corrupt("\(reader.remaining) bytes left over") }
            return value
        } catch {
            throw QueueError(.encoding, "cannot decode a \(String(reflecting: Element.self)) from a queue (was it put as another type?): \(error)")
        }
    }
}
