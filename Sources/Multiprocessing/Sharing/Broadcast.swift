import Synchronization
import Wire

#if canImport(Glibc)
import Glibc
#endif

/// Large read-only data handed to every worker once: `let table = try pool.broadcast(big)`,
/// then `table.value` (or, for arrays of plain numbers, `table.withUnsafeBufferPointer`)
/// inside a task.
///
/// ```swift
/// struct Lookup: ParallelFunction {
///     let table: Broadcast<[Double]>
///     func callAsFunction(_ i: Int) throws -> Double {
///         try table.withUnsafeBufferPointer { $0[i] }       // no copy: the shared mapping
///     }
/// }
/// let table = try pool.broadcast(bigArray)
/// let picked = try pool.map(Lookup(table: table), [0, 10, 20])
/// ```
///
/// The handle is small (an id, a size, the value's type): storing it in a function value,
/// or in an input, costs a few bytes per message. The bytes live once:
///
/// - **Locally**, in one shared segment (a memfd) that every worker maps read-only, with any
///   start method: the segment travels ahead of the function that mentions it, like a
///   `SharedArray`'s. Workers do not copy it.
/// - **Under mpirun** (a pool with the MPI backend), in rank 0; the first task of a node that
///   reads it fetches it once into a named shared memory block of that node, which every
///   local worker there maps read-only.
///
/// Arrays of plain numbers (`WireRawElement`: `Double`, `Int`, `UInt8`…) are stored as their
/// raw bytes: `withUnsafeBufferPointer` reads the mapping itself, and `value` is one `memcpy`
/// (made on every call: use `withUnsafeBufferPointer` in hot loops). Any other `Codable` value
/// is stored Wire-encoded and decoded on a process's first `value`, then cached there.
///
/// **Lifetime.** A broadcast belongs to the pool that made it: `release()`, or the pool's end
/// (`join()` after `close()`, `terminate()`, or the pool going away), frees it. Work already
/// submitted keeps it alive until it ends; a worker drops its mapping when the pool tells it
/// the segment is gone (twice a second at most), like any shared object. Using the handle
/// afterwards throws `BroadcastError(.released)` (in a task: submitting a function that holds
/// it throws `PoolError(.encoding)` naming the release). Under mpirun rank 0 frees its bytes
/// once no handle counts them (the workers' copies count until their cached function values
/// are dropped, at the latest when the pool ends); a node's copy is removed when the local
/// worker that fetched it ends (if it was killed: by the next shared memory block created or
/// opened on that node, `SharedMemory.removeOrphans()`).
public struct Broadcast<Value: Codable & Sendable>: Codable, Sendable {
    let storage: BroadcastStorage

    init(storage: BroadcastStorage) {
        self.storage = storage
    }

    /// The number of bytes the value occupies in shared memory.
    public var byteCount: Int { storage.layout.byteCount }

    /// The value. Arrays of plain numbers: one copy of the shared bytes per call. Other values:
    /// decoded on this process's first call, cached afterwards.
    /// - Throws: `BroadcastError` — `.released`, `.unavailable`, `.transport`, `.corrupt`.
    public var value: Value {
        get throws(BroadcastError) {
            let bytes = try storage.attach()
            if let raw = Value.self as? any BroadcastRawArray.Type {
                guard storage.layout.format == .raw else {
                    throw BroadcastError(.corrupt, "a Broadcast<\(Value.self)> holds Wire bytes, not raw elements")
                }
                return raw.init(broadcastBytes: bytes.buffer) as! Value
            }
            return try bytes.decoded(Value.self)
        }
    }

    /// Runs `body` on the elements in shared memory, without copying them (an array of plain
    /// numbers: `Double`, `Int`, `UInt8`…). The buffer is valid only inside `body`; the
    /// memory is read-only in workers (a write through a cast pointer crashes the task).
    /// - Parameter body: reads the elements; what it returns is returned.
    /// - Throws: `BroadcastError` (as `value`), or what `body` throws.
    public func withUnsafeBufferPointer<Element: WireRawElement, R>(
        _ body: (UnsafeBufferPointer<Element>) throws -> R
    ) throws -> R where Value == [Element] {
        let bytes = try storage.attach()
        guard storage.layout.format == .raw, storage.layout.stride == MemoryLayout<Element>.stride else {
            throw BroadcastError(.corrupt, "a Broadcast<[\(Element.self)]> does not hold raw \(Element.self) elements")
        }
        let count = bytes.buffer.count / MemoryLayout<Element>.stride
        guard count > 0, let base = bytes.buffer.baseAddress else { return try body(UnsafeBufferPointer(start: nil, count: 0)) }
        return try body(UnsafeBufferPointer(start: base.assumingMemoryBound(to: Element.self), count: count))
    }

    /// Frees the broadcast (in the process that made it): its bytes go once no submitted work
    /// uses them, and the workers drop their mappings. The pool's end does this for every
    /// broadcast it made. Releasing twice does nothing; using the handle afterwards throws
    /// `BroadcastError(.released)`.
    public func release() {
        storage.release()
    }

    /// Whether `release()` was called (or the owning pool ended) in this process.
    public var isReleased: Bool { storage.isReleased }

    private enum CodingKeys: String, CodingKey { case type, format, stride, count, place }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        // Wire reads keys in the order they were written: keep this order in init(from:).
        try container.encode(String(reflecting: Value.self), forKey: .type)
        try container.encode(storage.layout.format.rawValue, forKey: .format)
        try container.encode(storage.layout.stride, forKey: .stride)
        try container.encode(storage.layout.byteCount, forKey: .count)
        try container.encode(try storage.place(forEncoding: String(reflecting: Value.self)), forKey: .place)
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        let type = try container.decode(String.self, forKey: .type)
        guard type == String(reflecting: Value.self) else {
            throw BroadcastError(.typeMismatch, "a Broadcast<\(type)> cannot be decoded as a Broadcast<\(String(reflecting: Value.self))>")
        }
        guard let format = BroadcastLayout.Format(rawValue: try container.decode(UInt8.self, forKey: .format)) else {
            throw BroadcastError(.corrupt, "a Broadcast arrived with an unknown storage format (another build?)")
        }
        let stride = try container.decode(Int.self, forKey: .stride)
        let count = try container.decode(Int.self, forKey: .count)
        guard count >= 0, stride > 0, count % stride == 0 else {
            throw BroadcastError(.corrupt, "a Broadcast arrived with \(count) bytes of \(stride)-byte elements")
        }
        let layout = BroadcastLayout(format: format, stride: stride, byteCount: count)
        let place = try container.decode(BroadcastPlace.self, forKey: .place)
        storage = try BroadcastStorage(decoded: place, layout: layout)
    }
}

/// Why a `Broadcast` cannot be made or read.
public struct BroadcastError: Error, CustomStringConvertible, Sendable, Equatable {
    public enum Code: Sendable, Equatable {
        /// The handle was released (`release()`, or its pool ended).
        case released
        /// The bytes cannot be reached from this process (a handle that did not travel with a
        /// pool's task: through a `Queue`, a file, another program), or were freed.
        case unavailable
        /// The handle was decoded as a `Broadcast` of another type.
        case typeMismatch
        /// The bytes do not read as the value (another build?).
        case corrupt
        /// The value cannot be broadcast (it holds a shared object; the pool ended).
        case invalidArgument
        /// Fetching the bytes from rank 0 of an mpirun job failed.
        case transport
    }

    public var code: Code
    public var message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { message }
}

extension Pool {
    /// Puts `value` in shared memory once for every worker of this pool, and returns the handle
    /// that tasks read it through (`Broadcast`). Store the handle in a function value (or pass
    /// it as an input); inside a task, `value` or `withUnsafeBufferPointer` reads it.
    ///
    /// Arrays of plain numbers (`WireRawElement`) are stored raw (one `memcpy` here); other
    /// values are Wire-encoded. The broadcast lives until `release()` or this pool's end.
    /// - Parameter value: the data (it is copied: `value` may be dropped afterwards).
    /// - Returns: the handle tasks read it through.
    /// - Throws: `BroadcastError(.invalidArgument)` for a value holding shared objects or a
    ///   pool that is closed; `PoolError` when shared memory cannot be had.
    public func broadcast<Value: Codable & Sendable>(_ value: Value) throws -> Broadcast<Value> {
        guard !engine.isClosedOrTerminated else {
            throw BroadcastError(.invalidArgument, "broadcast() needs a pool that is open: this one was closed or terminated")
        }
        let storage: BroadcastStorage
        if let raw = value as? any BroadcastRawArray {
            let layout = BroadcastLayout(format: .raw, stride: raw.broadcastStride, byteCount: raw.broadcastByteCount)
            storage = try raw.withBroadcastBytes { try BroadcastStorage(creating: layout, served: servesBroadcasts, from: $0) }
        } else {
            let bytes: [UInt8]
            do {
                bytes = try AttachmentContext.plainValuesOnly(for: "a broadcast") { try Wire.encode(value) }
            } catch {
                throw BroadcastError(.invalidArgument, "cannot broadcast a \(String(reflecting: Value.self)): \(error)")
            }
            let layout = BroadcastLayout(format: .wire, stride: 1, byteCount: bytes.count)
            storage = try bytes.withUnsafeBytes { try BroadcastStorage(creating: layout, served: servesBroadcasts, from: $0) }
        }
        broadcasts.adopt(storage)
        return Broadcast(storage: storage)
    }

    /// Whether this pool's broadcasts are served by rank 0 over MPI (an MPI pool).
    private var servesBroadcasts: Bool {
        #if MPI
        return engine.backend is MPIBackend && MPIObjects.isServing
        #else
        return false
        #endif
    }
}

/// The broadcasts a pool made, released at its end.
final class BroadcastOwnership: Sendable {
    private let storages = Mutex<[BroadcastStorage]>([])

    init() {}

    func adopt(_ storage: BroadcastStorage) {
        storages.withLock { list in
            list.removeAll { $0.isReleased }
            list.append(storage)
        }
    }

    func releaseAll() {
        let all = storages.withLock { list in
            defer { list.removeAll() }
            return list
        }
        for storage in all { storage.release() }
    }
}

/// How a broadcast's bytes are laid out.
struct BroadcastLayout: Sendable {
    enum Format: UInt8, Sendable {
        /// The elements' bytes of an array of `WireRawElement`s.
        case raw = 1
        /// The value Wire-encoded.
        case wire = 2
    }

    var format: Format
    /// The element size (raw), 1 (wire).
    var stride: Int
    var byteCount: Int
}

/// Where a broadcast's bytes are, as a handle carries it.
enum BroadcastPlace: Codable {
    /// A local shared segment (travels with the function value like any segment).
    case segment(SharedSegment)
    /// Served by rank 0 of an mpirun job: its object id, and a random key naming the copy
    /// on each node.
    case served(id: UInt64, key: UInt64)

    func encode(to encoder: any Encoder) throws {
        var container = encoder.unkeyedContainer()
        switch self {
        case .segment(let segment):
            try container.encode(UInt8(1))
            try container.encode(segment)
        case .served(let id, let key):
            try container.encode(UInt8(2))
            try container.encode(id)
            try container.encode(key)
        }
    }

    init(from decoder: any Decoder) throws {
        var container = try decoder.unkeyedContainer()
        switch try container.decode(UInt8.self) {
        case 1:
            do {
                self = .segment(try container.decode(SharedSegment.self))
            } catch let error as PoolError {
                throw BroadcastError(
                    .unavailable,
                    """
                    a Broadcast's shared memory is not available in this process: a broadcast reaches the workers \
                    of the pool that made it, stored in a function value or an input of that pool's tasks, while it \
                    is not released (\(error.message))
                    """)
            }
        case 2:
            let id = try container.decode(UInt64.self)
            self = .served(id: id, key: try container.decode(UInt64.self))
        default:
            throw BroadcastError(.corrupt, "a Broadcast arrived with an unknown place (another build?)")
        }
    }
}

/// Arrays stored as raw bytes: arrays of `WireRawElement`.
protocol BroadcastRawArray {
    var broadcastStride: Int { get }
    var broadcastByteCount: Int { get }
    func withBroadcastBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R
    init(broadcastBytes: UnsafeRawBufferPointer)
}

extension Array: BroadcastRawArray where Element: WireRawElement {
    var broadcastStride: Int { MemoryLayout<Element>.stride }
    var broadcastByteCount: Int { count * MemoryLayout<Element>.stride }

    func withBroadcastBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try withUnsafeBytes(body)
    }

    init(broadcastBytes bytes: UnsafeRawBufferPointer) {
        let count = bytes.count / MemoryLayout<Element>.stride
        self.init(unsafeUninitializedCapacity: count) { destination, initialized in
            if count > 0 {
                UnsafeMutableRawPointer(destination.baseAddress!).copyMemory(
                    from: bytes.baseAddress!,
                    byteCount: count * MemoryLayout<Element>.stride)
            }
            initialized = count
        }
    }
}

/// One process's mapping of a broadcast's bytes, shared by every handle of it in the process
/// (`BroadcastBytes.table`), with the decoded value once a handle asked for it.
final class BroadcastBytes: @unchecked Sendable {
    /// The bytes (read-only outside the creating process).
    let buffer: UnsafeRawBufferPointer
    /// What keeps the mapping: a `SegmentStorage`, a node copy, rank 0's served state.
    private let keeper: AnyObject
    private let lock = ConditionLock()
    private var cached: Any?
    private var protectedIn: pid_t

    init(buffer: UnsafeRawBufferPointer, keeper: AnyObject, protectedIn: pid_t = 0) {
        self.buffer = buffer
        self.keeper = keeper
        self.protectedIn = protectedIn
    }

    /// The decoded value (Wire format), decoded once per process.
    func decoded<Value: Decodable>(_: Value.Type) throws(BroadcastError) -> Value {
        if let cached = lock.withLock({ cached }) as? Value { return cached }
        let value: Value
        do {
            var reader = WireReader(buffer)
            value = try reader.decode(Value.self)
        } catch {
            throw BroadcastError(.corrupt, "the broadcast bytes do not read as a \(String(reflecting: Value.self)): \(error)")
        }
        lock.withLock { cached = value }
        return value
    }

    /// Maps the bytes read-only in this process unless it created them (or did already): a
    /// forked worker inherits the creator's writable mapping. `region` starts on a page.
    func protectInWorker(region: UnsafeMutableRawPointer, size: Int, creator: pid_t) throws(BroadcastError) {
        let pid = getpid()
        guard pid != creator else { return }
        let done = lock.withLock { () -> Bool in
            if protectedIn == pid { return true }
            protectedIn = pid
            return false
        }
        guard !done else { return }
        if mprotect(region, size, PROT_READ) != 0 {
            throw BroadcastError(.unavailable, "cannot map a broadcast read-only: \(SystemError("mprotect", errno: errno))")
        }
        // Not populated here: read faults on this shared file mapping map 16 pages at a time
        // (fault-around), faster than MADV_POPULATE_READ measured with 1 GiB, and a task that
        // reads a part pays for that part only.
    }

    /// Writes `source` at the start of `region` through its descriptor (`pwrite`: the kernel
    /// allocates each page and copies into it in one pass, where a `memcpy` into the fresh
    /// mapping would fault on every page first; a full `/dev/shm` is an error, not `SIGBUS`).
    static func write(_ source: UnsafeRawBufferPointer, into region: SharedRegion) throws(BroadcastError) {
        guard source.count > 0, let base = source.baseAddress else { return }
        let fd = region.descriptor
        guard fd >= 0 else {
            region.base.copyMemory(from: base, byteCount: source.count)
            return
        }
        var offset = 0
        while offset < source.count {
            let written = pwrite(fd, base + offset, min(source.count - offset, 1 << 30), off_t(offset))
            if written < 0 {
                let code = errno
                if code == EINTR { continue }
                throw BroadcastError(
                    .unavailable,
                    "cannot write \(source.count) bytes of a broadcast into shared memory "
                        + "(is /dev/shm or memory full?): \(SystemError("pwrite", errno: code))")
            }
            guard written > 0 else {
                throw BroadcastError(.unavailable, "cannot write a broadcast into shared memory: pwrite wrote nothing")
            }
            offset += written
        }
    }

    /// Allocates and maps every page of `size` bytes at `base` for writing in one system call
    /// (`MADV_POPULATE_WRITE`, Linux 5.14), instead of one write fault per 4 KiB page (1 GiB
    /// is 262 144 of them). Best effort: an older kernel faults as usual.
    static func populateForWriting(_ base: UnsafeMutableRawPointer, _ size: Int) {
        guard size > 0 else { return }
        _ = madvise(base, size, 23) // MADV_POPULATE_WRITE
    }

    private final class Weak { weak var bytes: BroadcastBytes?; init(_ b: BroadcastBytes) { bytes = b } }
    private static let tableLock = ConditionLock(resetInForkedChild: true)
    nonisolated(unsafe) private static var table: [UInt64: Weak] = [:]

    /// The mapping known by `key` in this process, or a new one made by `make` (and recorded).
    static func shared(_ key: UInt64, make: () throws(BroadcastError) -> BroadcastBytes) throws(BroadcastError) -> BroadcastBytes {
        if let known = tableLock.withLock({ table[key]?.bytes }) { return known }
        let made = try make()
        return tableLock.withLock {
            if let known = table[key]?.bytes { return known }
            table = table.filter { $0.value.bytes != nil }
            table[key] = Weak(made)
            return made
        }
    }

    /// How many broadcast mappings this process holds (diagnostics, tests).
    static var liveCount: Int {
        tableLock.withLock { table.values.filter { $0.bytes != nil }.count }
    }
}

extension SegmentID {
    /// The key of a segment's broadcast mapping in `BroadcastBytes.table`.
    var broadcastKey: UInt64 { high ^ (low &* 0x9E37_79B9_7F4A_7C15) }
}

/// A broadcast handle's state in one process: its place, and whether it was released.
final class BroadcastStorage: @unchecked Sendable {
    let layout: BroadcastLayout
    private enum State {
        case segment(SharedSegment, creator: pid_t)
        case served(BroadcastServed)
        case released
    }
    private let state: Mutex<State>
    /// The mapping, once attached (kept with the handle: each process maps once).
    private let attached = Mutex<BroadcastBytes?>(nil)

    /// A new broadcast of `source` (`layout.byteCount` bytes).
    init(creating layout: BroadcastLayout, served: Bool, from source: UnsafeRawBufferPointer) throws {
        self.layout = layout
        if served {
            let (handle, bytes) = try BroadcastServed.create(layout: layout, from: source)
            state = Mutex(.served(handle))
            attached.withLock { $0 = bytes }
            return
        }
        let segment = try SharedSegment(size: max(layout.byteCount, 1))
        let buffer = UnsafeMutableRawBufferPointer(start: segment.base, count: layout.byteCount)
        try BroadcastBytes.write(source, into: segment.storage.region)
        state = Mutex(.segment(segment, creator: getpid()))
        let bytes = try BroadcastBytes.shared(segment.id.broadcastKey) { () throws(BroadcastError) in
            BroadcastBytes(buffer: UnsafeRawBufferPointer(buffer), keeper: segment.storage, protectedIn: getpid())
        }
        attached.withLock { $0 = bytes }
    }

    init(decoded place: BroadcastPlace, layout: BroadcastLayout) throws {
        self.layout = layout
        switch place {
        case .segment(let segment):
            guard layout.byteCount <= segment.size else {
                throw BroadcastError(.corrupt, "a Broadcast of \(layout.byteCount) bytes arrived with a \(segment.size)-byte segment")
            }
            // The creator's pid is not known here: every process but the creator protects
            // (the creator holds the mapping in `BroadcastBytes.table` already).
            state = Mutex(.segment(segment, creator: -1))
        case .served(let id, let key):
            state = Mutex(.served(try BroadcastServed(decoded: id, key: key, layout: layout)))
        }
    }

    var isReleased: Bool {
        state.withLock { if case .released = $0 { true } else { false } }
    }

    func release() {
        let dropped = state.withLock { state -> State in
            defer { state = .released }
            return state
        }
        attached.withLock { $0 = nil }
        withExtendedLifetime(dropped) {}
    }

    /// What an encoding of the handle carries; throws once released.
    func place(forEncoding type: String) throws(BroadcastError) -> BroadcastPlace {
        switch state.withLock({ $0 }) {
        case .segment(let segment, _): return .segment(segment)
        case .served(let served):
            try served.checkEncoding()
            return .served(id: served.object.id, key: served.key)
        case .released:
            throw BroadcastError(
                .released,
                "this Broadcast<\(type)> was released (release(), or the pool that made it "
                    + "ended): broadcast the value again with the pool that uses it")
        }
    }

    /// This process's mapping of the bytes (mapped on first use, then cached).
    func attach() throws(BroadcastError) -> BroadcastBytes {
        if let bytes = attached.withLock({ $0 }) { return bytes }
        let current = state.withLock { $0 }
        let bytes: BroadcastBytes
        switch current {
        case .released:
            throw BroadcastError(.released, "this Broadcast was released (release(), or the pool that made it ended)")
        case .segment(let segment, let creator):
            let storage = segment.storage
            bytes = try BroadcastBytes.shared(segment.id.broadcastKey) { () throws(BroadcastError) in
                BroadcastBytes(buffer: UnsafeRawBufferPointer(start: storage.region.base, count: layout.byteCount), keeper: storage)
            }
            try bytes.protectInWorker(region: storage.region.base, size: storage.region.size, creator: creator)
        case .served(let served):
            bytes = try served.attach()
        }
        attached.withLock { $0 = bytes }
        return bytes
    }
}
