import CSystemShims
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// A frame's bytes: room for its header, then records, appended with plain stores and
/// `memcpy` (the pool's thread fills it: no per-byte array appends). Owned by one thread at
/// a time (the journal fills it, the writer seals and writes it, then hands it back).
///
/// For a direct write (`JournalWriter`) the frame starts `lead` bytes into the buffer: the
/// writer copies the file's last partial block there and writes both from the block's
/// start, so the buffer is aligned to a page, and one of a frame's size or more to 2 MiB,
/// backed by transparent huge pages where the kernel offers them (a direct write pins its
/// buffer's pages: measured, 16.7 MB in 1 MiB direct writes took 1.3 ms of CPU from 4 KiB
/// pages and 0.65 ms from huge pages).
final class JournalBuffer: @unchecked Sendable {
    static let pageAlignment = 4096
    static let hugePage = 2 << 20

    private(set) var base: UnsafeMutableRawPointer
    private(set) var capacity: Int
    /// Bytes before the frame (room for the file's last partial block).
    private(set) var lead = 0
    /// Bytes in use, the lead and the frame's header included.
    private(set) var count = CheckpointJournal.frameHeaderSize

    init(capacity: Int) {
        (base, self.capacity) = Self.allocate(capacity)
    }

    deinit { base.deallocate() }

    /// A buffer of `capacity` bytes or more, empty: one a closed journal left if any (its pages
    /// are in memory), else a new one.
    static func make(capacity: Int) -> JournalBuffer {
        JournalBufferCache.shared.take(capacity: capacity) ?? JournalBuffer(capacity: capacity)
    }

    /// Keeps `buffers` (a closed journal's) for the next journals.
    static func recycle(_ buffers: [JournalBuffer]) { JournalBufferCache.shared.keep(buffers) }

    private static func allocate(_ capacity: Int) -> (UnsafeMutableRawPointer, Int) {
        if capacity >= CheckpointJournal.handOffBytes {
            let size = roundedUp(capacity, to: hugePage)
            let base = UnsafeMutableRawPointer.allocate(byteCount: size, alignment: hugePage)
            // Only advice: without transparent huge pages the buffer is in 4 KiB pages.
            _ = CSystemShims_advise_huge_pages(base, size)
            return (base, size)
        }
        let size = roundedUp(max(capacity, 64), to: pageAlignment)
        return (.allocate(byteCount: size, alignment: pageAlignment), size)
    }

    /// The frame: its header and records.
    var frame: UnsafeMutableRawBufferPointer { UnsafeMutableRawBufferPointer(start: base + lead, count: count - lead) }

    var hasRecords: Bool { count > lead + CheckpointJournal.frameHeaderSize }

    /// Empties it for the next frame, which starts `lead` bytes in (its memory is kept).
    func reset(lead: Int = 0) {
        reserve(lead + CheckpointJournal.frameHeaderSize - count)
        self.lead = lead
        count = lead + CheckpointJournal.frameHeaderSize
    }

    /// Sets the bytes in use (after records written at `base` directly).
    func setCount(_ count: Int) {
        precondition(count >= lead + CheckpointJournal.frameHeaderSize && count <= capacity)
        self.count = count
    }

    /// Makes room for `extra` more bytes.
    @inline(__always)
    func reserve(_ extra: Int) {
        if count + extra > capacity { grow(count + extra) }
    }

    private func grow(_ needed: Int) {
        let (moved, size) = Self.allocate(max(needed, 2 * capacity))
        moved.copyMemory(from: base, byteCount: count)
        base.deallocate()
        base = moved
        capacity = size
    }

    /// Zeros after the frame up to a multiple of `alignment` (from the buffer's start);
    /// returns that length. The frame itself is unchanged.
    func padded(to alignment: Int) -> Int {
        let length = roundedUp(count, to: alignment)
        reserve(length - count)
        (base + count).initializeMemory(as: UInt8.self, repeating: 0, count: length - count)
        return length
    }

    @inline(__always)
    func write<T: FixedWidthInteger>(_ value: T) {
        reserve(MemoryLayout<T>.size)
        (base + count).storeBytes(of: value.littleEndian, as: T.self)
        count += MemoryLayout<T>.size
    }

    @inline(__always)
    func write(_ raw: UnsafeRawBufferPointer) {
        guard let source = raw.baseAddress, raw.count > 0 else { return }
        reserve(raw.count)
        (base + count).copyMemory(from: source, byteCount: raw.count)
        count += raw.count
    }
}

/// The buffers closed journals left, a few, for the next: a new buffer's pages are faulted in
/// — a huge page zeroed — by the pool's thread as it fills it (measured: about 2 ms of its
/// time per map of 2 M results when each journal allocated its own). Holds at most
/// `capacity` buffers of a frame's size (2 MiB each) for the process's life: four, as a map's
/// journal uses one being filled, one being written, the writer's spare, and one more when
/// the writer falls behind. (Profiles under load found fresh huge pages zeroed in some later
/// maps with three, and with four; too few to tell the two apart.)
final class JournalBufferCache: Sendable {
    static let shared = JournalBufferCache()
    static let capacity = 4
    private let buffers = Mutex<[JournalBuffer]>([])

    func take(capacity: Int) -> JournalBuffer? {
        let found = buffers.withLock { buffers in buffers.firstIndex { $0.capacity >= capacity }.map { buffers.remove(at: $0) } }
        found?.reset()
        return found
    }

    func keep(_ more: [JournalBuffer]) {
        for buffer in more { buffer.reset() }
        buffers.withLock { buffers in
            for buffer in more where buffers.count < Self.capacity && buffer.capacity <= 2 * JournalBuffer.hugePage {
                buffers.append(buffer)
            }
        }
    }
}

/// `value` rounded up to a multiple of `alignment` (a power of two).
@inline(__always)
func roundedUp(_ value: Int, to alignment: Int) -> Int { (value + alignment - 1) & -alignment }
