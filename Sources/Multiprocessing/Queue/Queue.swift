import Synchronization

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
/// **Items larger than the buffer** stream through it in chunks. A `get(timeout:)` (or
/// `getNowait()`) whose item has begun arriving reads it whole while its producer writes it,
/// past the time limit if need be — as Python's `get`, which reads a message whole once it
/// has begun — and a `put` with a time limit (or `putNowait()`) goes on with an item a
/// consumer is taking. The time limit still holds against a peer that stops: past it, a call
/// in the middle of an item gives up once the other side has not moved for a second, and
/// never leaves a torn item behind:
/// - a `put` that gives up abandons its item: it throws `Full`, and consumers drop the part
///   already written (until one does, that part fills the buffer). With no consumer reading,
///   a `putNowait` of an item larger than the whole buffer throws `Full` after that second
///   (one that would fit but not now throws at once);
/// - a `get` that gives up (its producer stopped in the middle of the item) throws `Empty`
///   and keeps the part it read in this process: the next `get` in this process, from any
///   thread, finishes that item first. Until then, a `get` in another process waits (within
///   its own timeout). If this process exits still holding the part, that one item is lost:
///   the next `get` elsewhere skips the rest of it and goes on (it leaves `count`, and counts
///   as done for `JoinableQueue.join`).
/// A `get` without a timeout streams a big item straight into the value it decodes.
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
    let kind = QueueItemKind.of(Element.self)
    /// `close()` was called on this handle (a served queue's; a local one's `core` knows).
    private let servedClosed = Atomic<Bool>(false)

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
        if let served {
            if servedClosed.load(ordering: .relaxed) { throw QueueError.closedHere }
            return try served.put(try Queue.encode(item), timeout: timeout)
        }
        try Queue.put(item, kind: kind, into: core, deadline: deadline(after: timeout))
    }

    /// Puts `item` if there is room now; throws `Full` otherwise.
    public func putNowait(_ item: Element) throws {
        try put(item, timeout: 0)
    }

    /// Removes and returns the oldest item, waiting at most `timeout` seconds (nil: without
    /// limit). Throws `Empty` on time-out.
    public func get(timeout: Double? = nil) throws -> Element {
        if let served {
            if servedClosed.load(ordering: .relaxed) { throw QueueError.closedHere }
            return try served.get(timeout: timeout).withUnsafeBytes { try Queue.decode($0) }
        }
        return try Queue.get(kind: kind, from: core, deadline: deadline(after: timeout))
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
        servedClosed.store(true, ordering: .relaxed)
    }

    // MARK: Codable

    private enum CodingKeys: String, CodingKey { case served, maxSize, segment }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        // Wire reads keys in the order they were written: keep this order in init(from:).
        if let served {
            try MPIServedObject.checkEncoding("Queue", id: served.object.id)
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
    /// Ready when an item can be got, or when `get` would throw at once (closed here, broken).
    public func _isReady() -> Bool {
        if let served { return servedClosed.load(ordering: .relaxed) || served.count > 0 }
        return !core.isEmpty || core.isBroken || core.isClosed
    }

    // MARK: coding items

    /// Puts `item` with the cheapest encoding that gives the same bytes as `Wire`: a plain
    /// number is copied as it is, an array of plain numbers streams from its storage into
    /// the shared buffer, anything else goes through the codec.
    static func put(_ item: Element, kind: QueueItemKind, into core: QueueCore, deadline: UInt64?) throws {
        switch kind {
        case .rawScalar:
            // Header and value in one 16-byte frame on the stack (raw scalars are ≤ 8 bytes).
            var frame: (UInt64, UInt64) = (UInt64(MemoryLayout<Element>.size).littleEndian, 0)
            try withUnsafeMutableBytes(of: &frame) { raw in
                withUnsafeBytes(of: item) { (raw.baseAddress! + Frame.headerSize).copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
                try core.put(
                    frame: UnsafeRawBufferPointer(rebasing: raw[0..<(Frame.headerSize + MemoryLayout<Element>.size)]),
                    deadline: deadline)
            }
        case .rawArray:
            let array = item as! any _QueueRawArray
            try array._withRawBytes { body in
                let count = UInt64(array._rawCount)
                var prefix: (UInt64, UInt64, UInt64) = (0, 0, 0)
                try withUnsafeMutableBytes(of: &prefix) { raw in
                    var used = Frame.headerSize
                    var value = count
                    while value >= 0x80 {
                        raw[used] = UInt8(truncatingIfNeeded: value) | 0x80
                        value >>= 7
                        used += 1
                    }
                    raw[used] = UInt8(truncatingIfNeeded: value)
                    used += 1
                    raw.storeBytes(of: UInt64(used - Frame.headerSize + body.count).littleEndian, as: UInt64.self)
                    try core.put(prefix: UnsafeRawBufferPointer(rebasing: raw[0..<used]), body: body, deadline: deadline)
                }
            }
        case .codable:
            try withFrame(item) { try core.put(frame: $0, deadline: deadline) }
        }
    }

    /// Gets an item, decoding plain numbers and arrays of them straight from the shared buffer.
    static func get(kind: QueueItemKind, from core: QueueCore, deadline: UInt64?) throws -> Element {
        switch kind {
        case .rawScalar:
            return try core.get(deadline: deadline) { length in
                let size = MemoryLayout<Element>.size
                guard length == size else {
                    throw QueueError(
                        .encoding,
                        "cannot decode a \(String(reflecting: Element.self)) from a queue (was it put as another type?): the item has \(length) bytes, not \(size)"
                    )
                }
                var value: UInt64 = 0
                try withUnsafeMutableBytes(of: &value) { try core.readPayload(into: UnsafeMutableRawBufferPointer(rebasing: $0[0..<size])) }
                return withUnsafeBytes(of: &value) { $0.baseAddress!.load(as: Element.self) }
            }
        case .rawArray:
            let type = Element.self as! any _QueueRawArray.Type
            return try core.get(deadline: deadline) { length in
                try Queue.receiveRawArray(type, length: length, core: core)
            }
        case .codable:
            return try core.get(deadline: deadline, decode: Queue.decode)
        }
    }

    private static func receiveRawArray<A: _QueueRawArray>(_: A.Type, length: Int, core: QueueCore) throws -> Element {
        func corrupt(_ why: String) -> QueueError {
            QueueError(.encoding, "cannot decode a \(String(reflecting: Element.self)) from a queue (was it put as another type?): \(why)")
        }
        // The element count (a varint), one byte at a time.
        var count: UInt64 = 0
        var shift: UInt64 = 0
        var used = 0
        while true {
            guard used < length, used < 10 else { throw corrupt("no valid element count") }
            var byte: UInt8 = 0
            try withUnsafeMutableBytes(of: &byte) { try core.readPayload(into: $0) }
            used += 1
            count |= UInt64(byte & 0x7F) << shift
            if byte < 0x80 { break }
            shift += 7
        }
        let stride = A._rawStride
        guard count <= UInt64(length - used), Int(count) * stride == length - used else {
            throw corrupt("\(count) elements of \(stride) bytes do not make the item's \(length - used) bytes")
        }
        let array = try A._makeRaw(count: Int(count)) { try core.readPayload(into: $0) }
        return array as! Element
    }

    static func withFrame<R>(_ item: Element, _ body: (UnsafeRawBufferPointer) throws -> R) throws -> R {
        var writer = WireWriter(capacity: 32)
        Frame.begin(&writer)
        do {
            try AttachmentContext.plainValuesOnly(for: "a queue") { try writer.encode(item) }
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
            try AttachmentContext.plainValuesOnly(for: "a queue") { try writer.encode(item) }
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

/// How a queue moves items of a given type.
enum QueueItemKind {
    /// A `WireRawElement` (a fixed-width number): its bytes are its encoding.
    case rawScalar
    /// An array of `WireRawElement`s: a varint count and the elements' bytes.
    case rawArray
    /// Anything else: the `Wire` codec.
    case codable

    @inline(__always)
    static func of<T>(_: T.Type) -> QueueItemKind {
        #if _endian(little)
        if T.self is any WireRawElement.Type { return MemoryLayout<T>.size <= 8 ? .rawScalar : .codable }
        if T.self is any _QueueRawArray.Type { return .rawArray }
        #endif
        return .codable
    }
}

/// An array whose elements are `WireRawElement`s, seen without knowing the element type.
protocol _QueueRawArray {
    static var _rawStride: Int { get }
    var _rawCount: Int { get }
    func _withRawBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R
    /// An array of `count` elements whose bytes `fill` writes (all of them, or it throws).
    static func _makeRaw(count: Int, fill: (UnsafeMutableRawBufferPointer) throws -> Void) rethrows -> Self
}

extension Array: _QueueRawArray where Element: WireRawElement {
    static var _rawStride: Int { MemoryLayout<Element>.stride }
    var _rawCount: Int { count }
    func _withRawBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try withUnsafeBytes(body)
    }
    static func _makeRaw(count: Int, fill: (UnsafeMutableRawBufferPointer) throws -> Void) rethrows -> [Element] {
        if count == 0 { return [] }
        return try [Element](unsafeUninitializedCapacity: count) { buffer, initialized in
            // Zero-filled first would cost a pass over the memory; the elements are plain
            // numbers, so raw bytes are valid values whatever `fill` managed to write.
            try fill(UnsafeMutableRawBufferPointer(buffer))
            initialized = count
        }
    }
}
