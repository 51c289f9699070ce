// Large arrays of raw elements without extra copies.
//
// Encoding: a writer with `defersLargeBlocks` set references the bytes of a large
// `WireRawElement` array (`WireDeferredBlock`, holding the array) instead of copying them into
// `bytes`; the transport gathers the parts (`withParts`) straight into where the message goes,
// or sends only where they are (the local pool: their addresses, read by the receiver with
// process_vm_readv straight into the arrays it decodes).
//
// Decoding: a large array is one allocation and one copy (`_wireCopyLarge`). A source inside a
// registered remote range (`WireRemoteRanges`: a message whose large blocks stayed in the
// sender's memory) is read from there straight into the new array. A source inside a
// registered shared mapping of a message (`WireSharedMappings`) is copied a piece at a time,
// each piece's pages dropped from the mapping once copied, so that the receiver's resident
// memory holds the new array and not also the whole message. Copying out of a shared mapping,
// the destination gets no huge-page advice (MADV_HUGEPAGE): measured on a VM that hands freed
// memory back to its host, it made a 512 MiB transfer slower and far less steady (median 194
// against 327 MB/s over 7 interleaved rounds), huge pages coming from exactly the memory the
// host took back. A remote range's `fetch` decides for itself (the local pool's advises huge
// pages: there it pays, `RemoteTransfer.hugePages`).
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Bytes of a large raw array that a `WireWriter` with `defersLargeBlocks` references
/// instead of copying: they belong in the message before `bytes[position]`.
public struct WireDeferredBlock: @unchecked Sendable {
    /// The smallest array (in bytes) referenced rather than copied.
    public static let minimumSize = 256 << 10
    /// Where the block sits: before the byte at this offset of `WireWriter.bytes`.
    public var position: Int
    /// The array's bytes, valid and unchanged while `owner` lives.
    public let bytes: UnsafeRawBufferPointer
    /// The array itself (a copy sharing its storage: a later change to the caller's array
    /// copies it first).
    @usableFromInline let owner: Any

    @usableFromInline
    init(position: Int, bytes: UnsafeRawBufferPointer, owner: Any) {
        self.position = position
        self.bytes = bytes
        self.owner = owner
    }
}

extension WireWriter {
    /// The message's size: `bytes` and the deferred blocks.
    @inlinable
    public var totalCount: Int { bytes.count + deferredByteCount }

    /// Empties the message (bytes and deferred blocks); `defersLargeBlocks` stays.
    @inlinable
    public mutating func removeAll(keepingCapacity: Bool = true) {
        bytes.removeAll(keepingCapacity: keepingCapacity)
        if !deferredBlocks.isEmpty { _clearDeferredBlocks() }
    }

    @usableFromInline
    mutating func _clearDeferredBlocks() {
        deferredBlocks.removeAll()
        deferredByteCount = 0
    }

    @usableFromInline
    mutating func _deferBlock(_ raw: UnsafeRawBufferPointer, owner: Any) {
        deferredBlocks.append(WireDeferredBlock(position: bytes.count, bytes: raw, owner: owner))
        deferredByteCount += raw.count
    }

    /// Forgets the blocks written after byte `offset` (a value that failed half-way).
    @usableFromInline
    mutating func _removeDeferredBlocks(after offset: Int) {
        while let last = deferredBlocks.last, last.position > offset {
            deferredByteCount -= last.bytes.count
            deferredBlocks.removeLast()
        }
    }

    /// `count` bytes were inserted after byte `offset`: the blocks after it move.
    mutating func _shiftDeferredBlocks(after offset: Int, by count: Int) {
        for index in deferredBlocks.indices where deferredBlocks[index].position > offset {
            deferredBlocks[index].position += count
        }
    }

    /// The message from byte `offset` of `bytes` on (a transport's header skipped), as the
    /// consecutive parts to gather: runs of `bytes` and the deferred blocks between them.
    /// `offset` must come before every deferred block.
    public func withParts<R>(from offset: Int = 0, _ body: ([UnsafeRawBufferPointer]) throws -> R) rethrows -> R {
        try bytes.withUnsafeBytes { raw in
            var parts: [UnsafeRawBufferPointer] = []
            parts.reserveCapacity(2 * deferredBlocks.count + 1)
            var cursor = offset
            for block in deferredBlocks {
                precondition(block.position >= cursor, "WireWriter.withParts: a deferred block before the offset")
                if block.position > cursor { parts.append(UnsafeRawBufferPointer(rebasing: raw[cursor..<block.position])) }
                if block.bytes.count > 0 { parts.append(block.bytes) }
                cursor = block.position
            }
            if cursor < raw.count { parts.append(UnsafeRawBufferPointer(rebasing: raw[cursor...])) }
            return try body(parts)
        }
    }

    /// Copies the deferred blocks into `bytes` (for a transport that cannot gather).
    public mutating func materializeDeferredBlocks() {
        guard !deferredBlocks.isEmpty else { return }
        var whole: [UInt8] = []
        whole.reserveCapacity(totalCount)
        withParts { parts in
            for part in parts { whole.append(contentsOf: part.assumingMemoryBound(to: UInt8.self)) }
        }
        bytes = whole
        deferredBlocks.removeAll()
        deferredByteCount = 0
    }
}

/// Read-only shared mappings of received messages (the local pool's out-of-band memfds),
/// whose pages a decoder may drop once it copied them: the data stays in the file and comes
/// back on the next access, so dropping never changes what is read.
public enum WireSharedMappings {
    private static let lock = _WireLock()
    nonisolated(unsafe) private static var regions: [(start: UInt, end: UInt)] = []

    /// Registers a shared mapping of a file (call before decoding from it).
    public static func register(_ region: UnsafeRawBufferPointer) {
        guard let base = region.baseAddress else { return }
        let start = UInt(bitPattern: base)
        lock.withLock { regions.append((start, start + UInt(region.count))) }
    }

    /// Unregisters a mapping (call before unmapping it).
    public static func unregister(_ region: UnsafeRawBufferPointer) {
        guard let base = region.baseAddress else { return }
        let start = UInt(bitPattern: base)
        lock.withLock {
            if let index = regions.lastIndex(where: { $0.start == start }) { regions.remove(at: index) }
        }
    }

    /// Whether `bytes` lie inside one registered mapping.
    static func contains(_ bytes: UnsafeRawBufferPointer) -> Bool {
        guard let base = bytes.baseAddress else { return false }
        let start = UInt(bitPattern: base)
        let end = start + UInt(bytes.count)
        return lock.withLock { regions.contains { $0.start <= start && end <= $0.end } }
    }
}

/// A plain mutex (the registry is touched once per large array, never in a hot loop).
final class _WireLock: @unchecked Sendable {
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>

    init() {
        mutex = .allocate(capacity: 1)
        mutex.initialize(to: pthread_mutex_t())
        pthread_mutex_init(mutex, nil)
    }

    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
    }

    func withLock<R>(_ body: () throws -> R) rethrows -> R {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return try body()
    }
}

/// Ranges of a received message's bytes that are not there: each stands for bytes of the
/// sender's memory, that `fetch` reads (into `destination`, `count` bytes from `offset` of the
/// range) and returns 0 or an errno. A transport registers them before decoding the message
/// and unregisters them after; `_wireCopyLarge` reads a large array inside one through
/// `fetch`, straight into the array. Only large raw arrays (`WireDeferredBlock`) may lie
/// there: they are written by `_writeRawElements` and read only through `_copyRawRegion`
/// (`_readRawElements`, `decodeArray`, `_decodeRawArray`). A reader that takes a message's
/// bytes as they are (a checkpoint journal keeping the encoded outputs) must first ask
/// `intersects`: those ranges' bytes are not there.
public enum WireRemoteRanges {
    public typealias Fetch = (_ destination: UnsafeMutableRawPointer, _ offset: Int, _ count: Int) -> Int32

    private static let lock = _WireLock()
    nonisolated(unsafe) private static var ranges: [(start: UInt, end: UInt, fetch: Fetch)] = []
    /// How many ranges are registered (written under `lock`): `intersects` answers without the
    /// lock when none is — a checkpointed map asks it for every chunk of results.
    private static let registered = Atomic<Int>(0)

    /// Registers `range` (bytes of a message about to be decoded) as read by `fetch`.
    public static func register(_ range: UnsafeRawBufferPointer, fetch: @escaping Fetch) {
        guard let base = range.baseAddress, range.count > 0 else { return }
        let start = UInt(bitPattern: base)
        lock.withLock {
            ranges.append((start, start + UInt(range.count), fetch))
            registered.store(ranges.count, ordering: .releasing)
        }
    }

    /// Unregisters every range inside `region` (call before unmapping it).
    public static func unregister(inside region: UnsafeRawBufferPointer) {
        guard let base = region.baseAddress else { return }
        let start = UInt(bitPattern: base)
        let end = start + UInt(region.count)
        lock.withLock {
            ranges.removeAll { $0.start >= start && $0.end <= end }
            registered.store(ranges.count, ordering: .releasing)
        }
    }

    /// The fetch of the range holding all of `bytes`, and where they start in it.
    static func lookup(_ bytes: UnsafeRawBufferPointer) -> (fetch: Fetch, offset: Int)? {
        guard let base = bytes.baseAddress else { return nil }
        let start = UInt(bitPattern: base)
        let end = start + UInt(bytes.count)
        return lock.withLock {
            guard let range = ranges.last(where: { $0.start <= start && end <= $0.end }) else { return nil }
            return (range.fetch, Int(start - range.start))
        }
    }

    /// Whether any registered range overlaps `bytes` (bytes that are not all there).
    public static func intersects(_ bytes: UnsafeRawBufferPointer) -> Bool {
        guard let base = bytes.baseAddress, bytes.count > 0 else { return false }
        let start = UInt(bitPattern: base)
        let end = start + UInt(bytes.count)
        guard registered.load(ordering: .acquiring) > 0 else { return false }
        return lock.withLock { ranges.contains { $0.start < end && start < $0.end } }
    }

    /// Whether any range is registered (no lock: a hint for tests).
    public static var isEmpty: Bool { lock.withLock { ranges.isEmpty } }
}

/// Copies a large array's bytes into its new storage (see the top of this file). Throws only
/// for a remote range whose sender cannot be read (gone, or not permitted).
@usableFromInline
func _wireCopyLarge(to destination: UnsafeMutableRawPointer, from source: UnsafeRawBufferPointer) throws(WireError) {
    if let (fetch, offset) = WireRemoteRanges.lookup(source) {
        let code = fetch(destination, offset, source.count)
        if code != 0 {
            throw WireError(
                code: .truncated,
                message: "cannot read a \(source.count)-byte array from the process that sent it (errno \(code): \(String(cString: strerror(code))))")
        }
        return
    }
    #if os(Linux)
    if WireSharedMappings.contains(source) {
        let page = UInt(sysconf(Int32(_SC_PAGESIZE)))
        func pageDown(_ address: UInt) -> UInt { address & ~(page - 1) }
        let piece = 8 << 20
        var done = 0
        while done < source.count {
            let count = min(piece, source.count - done)
            let from = UInt(bitPattern: source.baseAddress! + done)
            let first = pageDown(from)
            // Faulted in with one call rather than a fault per few pages (MADV_POPULATE_READ,
            // Linux 5.14; an older kernel refuses it and the copy faults them in).
            _ = madvise(UnsafeMutableRawPointer(bitPattern: first), Int(from + UInt(count) - first), 22)
            (destination + done).copyMemory(from: source.baseAddress! + done, byteCount: count)
            let last = pageDown(from + UInt(count))
            if last > first { _ = madvise(UnsafeMutableRawPointer(bitPattern: first), Int(last - first), MADV_DONTNEED) }
            done += count
        }
        return
    }
    #endif
    destination.copyMemory(from: source.baseAddress!, byteCount: source.count)
}
