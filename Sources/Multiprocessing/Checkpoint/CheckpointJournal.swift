import CSystemShims
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// A map's results on disk, so that a run killed midway (SIGKILL, node lost, wall-time
/// limit) is resumed by running the same program again: `map(…, checkpoint: path)`.
///
/// Format 2 (`SWMPCKP2`). The file starts with a header naming the work — the function's
/// type, a hash of the function value and a hash of all the inputs, and their count — with
/// its checksum, so a journal of other work is refused with a clear error (and a journal of
/// format 1, the first one, with a message saying to delete it). Then frames: one per
/// hand-off to the writer (below), each a length and a checksum over its records, a record
/// being the inputs' positions (a first one and a count for a fresh run's consecutive
/// inputs, a list for a resumed run's) and their encoded outputs, as the worker sent them.
/// One checksum per frame (`stripeHash`, at memory speed) finds a torn or damaged frame,
/// which is dropped with what follows it when the journal is read. The journal is locked
/// (`flock`) while a run uses it.
///
/// Durability: records are built on the pool's thread and handed, at most 0.1 s after
/// their results arrive (or once nearly 2 MiB wait), to the journal's own writer thread, which
/// writes them at once — a killed process loses at most the last 0.1 s of results, which
/// run again — and flushes them to the disk (`fsync`) at most a second later. A map's
/// journal is written around the page cache (`O_DIRECT`, whole blocks: see `JournalWriter`)
/// where the file system offers it, a stream's and the others through it: the same bytes
/// on disk either way. When the call ends, everything is written before it returns (so the next run, in
/// this process or another, reads it all) and flushed right after, without the call
/// waiting for the disk: a machine that loses power loses at most the last second or so of
/// results. The last records are written by the thread that ends the call, once the writer
/// is done with what it was writing (no wake-up of the writer to wait for), then the writer
/// flushes and closes the file. No other `write`, and no `fsync`, runs on the pool's thread
/// (measured: they cost a checkpointed map of tiny tasks most of its speed there), nor the
/// frames' checksums, nor, for a new journal, the hash of the inputs (the writer computes
/// it and writes the header before any frame).
final class CheckpointJournal: @unchecked Sendable {
    static let magic: [UInt8] = Array("SWMPCKP2".utf8)
    /// The first format's magic: such a journal is refused with a message to delete it.
    static let formatOneMagic: [UInt8] = Array("SWMPCKP1".utf8)
    static let frameMagic: UInt32 = 0x4D41_5246 // "FRAM"
    /// A frame's header: magic (UInt32), payload length (UInt64), checksum (UInt64).
    static let frameHeaderSize = 20
    static let syncInterval: UInt64 = 1_000_000_000

    /// What the journal is about.
    struct Work: Equatable {
        var typeName: String
        var functionHash: UInt64
        var inputsHash: UInt64
        var count: Int
    }

    /// One record: positions of inputs and the encoded outputs of exactly those inputs.
    struct Record: Equatable {
        var indices: [Int]
        var outputs: [UInt8]
    }

    let path: String
    private var isOpen = true
    private var lastHandOff: UInt64 = monotonicNanoseconds()
    /// The frame being filled: records not handed to the writer yet (at most
    /// `writeInterval` old, see `append`), after room for the frame's header.
    private var pending: JournalBuffer
    /// `pending`'s start, the end of its records and of its memory: `append` writes through
    /// these (its `count` is brought up to date, `settlePending`, before the buffer leaves
    /// this thread), so that a record costs no reference counting — the atomic of a retain
    /// or release waits for the record's stores to reach the cache (measured: 1.7 ms of the
    /// pool thread's time per map of 2 M results, nearly all of `append`).
    private var pendingStart: UnsafeMutableRawPointer
    private var cursor: UnsafeMutableRawPointer
    private var limit: UnsafeMutableRawPointer
    /// Records arriving less than this long after the last hand-off wait (ns): one hand-off
    /// per chunk would cost more than tiny tasks.
    static let writeInterval: UInt64 = 100_000_000
    /// A frame this full is handed off at once: its buffer, with room for one more record
    /// and the padding of a direct write, is one huge page. (Each write costs the kernel a
    /// request to the disk — a VM exit here, about 20 µs —: measured in C, 16.7 MB of direct
    /// writes took 0.5 ms of CPU in 1 MiB writes, 0.2 ms in 4 MiB ones; a larger frame is also
    /// a longer last write, which the call waits for.)
    static let handOffBytes = (2 << 20) - (128 << 10)
    /// Writes and flushes on its own thread.
    private let writer: JournalWriter
    /// Where the frame being filled goes in the file. It is placed `nextOffset % alignment`
    /// bytes into its buffer, after room for the file's last partial block, which a direct
    /// write writes again before it (`JournalWriter`; the alignment is 1 for a journal
    /// written through the page cache).
    private var nextOffset: Int
    private let alignment: Int

    /// Opens (or creates) the journal at `path` for `work`; returns it and the records a
    /// previous run left. Throws `CheckpointError` for a journal of other work, one in use,
    /// or a file that cannot be used. `directWrites`: write around the page cache where the
    /// file system offers it (`JournalWriter`: a map's journal, whose frames are large; a
    /// stream's frames are a result each); `refusingDirectWritesAfter` (tests): direct writes
    /// after this many are refused, as by a file system that does not take them after all.
    static func open(
        path: String, work: Work, directWrites: Bool = false, refusingDirectWritesAfter: Int? = nil
    ) throws(CheckpointError) -> (CheckpointJournal, [Record]) {
        try open(
            path: path, typeName: work.typeName, functionHash: work.functionHash, count: work.count,
            directWrites: directWrites, refusingDirectWritesAfter: refusingDirectWritesAfter
        ) { work.inputsHash }
    }

    /// `open(path:work:)` for work whose inputs hash is costly (a map's: all its inputs
    /// hashed, a millisecond or so for millions of numbers). A journal that has records
    /// needs it at once, to be checked; a new one (the common case) does not: its writer
    /// thread computes it and writes the header before any record, while the map runs, so
    /// the call's thread does not wait for it. A failure there (an input that cannot be
    /// encoded) is the journal's failure, thrown by the next `append` or `flushIfDue` and
    /// returned by `close`; nothing is written after it.
    static func open(
        path: String, typeName: String, functionHash: UInt64, count: Int, directWrites: Bool = false,
        refusingDirectWritesAfter: Int? = nil, inputsHash: @escaping @Sendable () throws -> UInt64
    ) throws(CheckpointError) -> (CheckpointJournal, [Record]) {
        let fd = Glibc.open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else {
            throw CheckpointError(
                .unusable,
                "cannot open the checkpoint \(path): \(String(cString: strerror(errno))); "
                    + "choose a writable path")
        }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            let reason = errno
            Glibc.close(fd)
            throw CheckpointError(
                .inUse,
                reason == EWOULDBLOCK
                    ? "the checkpoint \(path) is in use by another run; wait for it or use another path"
                    : "cannot lock the checkpoint \(path): \(String(cString: strerror(reason)))")
        }
        do throws(CheckpointError) {
            let bytes = try readAll(fd, path: path)
            if bytes.isEmpty {
                let header: @Sendable () throws(CheckpointError) -> [UInt8] = { () throws(CheckpointError) in
                    do {
                        return encodeHeader(
                            Work(typeName: typeName, functionHash: functionHash, inputsHash: try inputsHash(), count: count))
                    } catch {
                        throw CheckpointError(.unusable, "cannot hash the inputs for the checkpoint \(path): \(error)")
                    }
                }
                // The header's length does not depend on the inputs' hash (a fixed-width field).
                let headerLength = encodeHeader(
                    Work(typeName: typeName, functionHash: functionHash, inputsHash: 0, count: count)
                ).count
                let writer = JournalWriter(
                    descriptor: fd, path: path, size: 0, unsynced: true, header: header, directWrites: directWrites,
                    refusingDirectWritesAfter: refusingDirectWritesAfter)
                return (try CheckpointJournal(path: path, writer: writer, firstFrameOffset: headerLength), [])
            }
            guard let found = decodeHeader(bytes) else {
                if bytes.starts(with: formatOneMagic) {
                    throw CheckpointError(
                        .otherWork,
                        "the checkpoint \(path) was written by an older version of swift-multiprocessing (journal "
                            + "format 1), which this version does not read; delete it to start again (the inputs it "
                            + "holds run again), or finish the run with the version that wrote it")
                }
                throw CheckpointError(
                    .otherWork,
                    "\(path) is not a checkpoint journal of this library; delete it or choose "
                        + "another path")
            }
            let work: Work
            do {
                work = Work(typeName: typeName, functionHash: functionHash, inputsHash: try inputsHash(), count: count)
            } catch {
                throw CheckpointError(.unusable, "cannot hash the inputs for the checkpoint \(path): \(error)")
            }
            guard found.work == work else {
                throw CheckpointError(
                    .otherWork,
                    """
                    the checkpoint \(path) records other work (\(found.work.typeName), \(found.work.count) inputs, \
                    function hash \(hex(found.work.functionHash)), inputs hash \(hex(found.work.inputsHash))) than this \
                    call (\(work.typeName), \(work.count) inputs, function hash \(hex(work.functionHash)), inputs hash \
                    \(hex(work.inputsHash))); delete it to start again, or use another path
                    """)
            }
            let (records, end) = decodeRecords(bytes, from: found.length, count: work.count)
            // A torn last frame (the run was killed while writing it) is dropped; so is the
            // space a killed run had allocated beyond the end (see `JournalWriter.preallocate`).
            guard ftruncate(fd, off_t(end)) == 0 else {
                throw CheckpointError(.unusable, "cannot truncate the checkpoint \(path): \(String(cString: strerror(errno)))")
            }
            let writer = JournalWriter(
                descriptor: fd, path: path, size: end, existing: bytes, unsynced: end < bytes.count,
                directWrites: directWrites, refusingDirectWritesAfter: refusingDirectWritesAfter)
            return (try CheckpointJournal(path: path, writer: writer, firstFrameOffset: end), records)
        } catch {
            Glibc.close(fd)
            throw error
        }
    }

    private init(path: String, writer: JournalWriter, firstFrameOffset: Int) throws(CheckpointError) {
        self.path = path
        self.writer = writer
        alignment = writer.alignment
        nextOffset = firstFrameOffset
        let first = JournalBuffer.make(capacity: Self.handOffBytes + (1 << 16))
        first.reset(lead: nextOffset % alignment)
        (pending, pendingStart, cursor, limit) = (first, first.base, first.base + first.count, first.base + first.capacity)
        do {
            try writer.start()
        } catch {
            throw CheckpointError(.unusable, "cannot start the thread that writes the checkpoint \(path): \(error)")
        }
    }

    deinit { close() }

    /// Whether the journal's next write goes around the page cache (tests).
    var writesDirectly: Bool { writer.writesDirectly }

    /// Writes what waits (on this thread, once the writer is done with what it was writing),
    /// unlocks the journal (the call ended; it returns once this did) and lets the writer
    /// flush it to the disk and close it; later appends are ignored. Returns what could not
    /// be written, if anything (the header of a new journal, or a record: the journal then
    /// misses them).
    @discardableResult
    func close() -> CheckpointError? {
        guard isOpen else { return nil }
        isOpen = false
        settlePending()
        let last = pending
        fill(JournalBuffer(capacity: 0))
        if last.hasRecords { return writer.finish(last) }
        JournalBuffer.recycle([last])
        return writer.finish(nil)
    }

    /// Appends a record. It is handed to the writer at once when the last hand-off is
    /// `writeInterval` old, else with the next record that is, or by `flushIfDue`. With
    /// `checkingTime` false only a full frame is handed off here (no clock read): for a
    /// caller that runs `flushIfDue` often anyway (a map's engine, every round).
    func append(indices: Positions, outputs: UnsafeRawBufferPointer, checkingTime: Bool = true) throws(CheckpointError) {
        guard isOpen else { return }
        let needed: Int
        switch indices {
        case .range: needed = 25 + outputs.count
        case .list(let list): needed = 17 + 8 * list.count + outputs.count
        }
        if limit - cursor < needed {
            settlePending()
            pending.reserve(needed)
            fill(pending)
        }
        var end = cursor
        func put<T: FixedWidthInteger>(_ value: T) {
            end.storeBytes(of: value.littleEndian, as: T.self)
            end += MemoryLayout<T>.size
        }
        switch indices {
        case .range(let range):
            put(UInt8(1))
            put(UInt64(range.count))
            put(UInt64(range.lowerBound))
        case .list(let list):
            put(UInt8(0))
            put(UInt64(list.count))
            for index in list { put(UInt64(index)) }
        }
        put(UInt64(outputs.count))
        if let source = outputs.baseAddress, outputs.count > 0 {
            end.copyMemory(from: source, byteCount: outputs.count)
            end += outputs.count
        }
        cursor = end
        if checkingTime || cursor - pendingStart >= Self.handOffBytes { try flushIfDue() }
    }

    /// Fills `buffer` next (from its `count`).
    private func fill(_ buffer: JournalBuffer) {
        (pending, pendingStart, cursor, limit) = (buffer, buffer.base, buffer.base + buffer.count, buffer.base + buffer.capacity)
    }

    /// Brings `pending`'s `count` up to what `append` wrote.
    private func settlePending() { pending.setCount(cursor - pendingStart) }

    /// Whether `pending` holds records.
    private var hasPendingRecords: Bool { cursor - pendingStart > pending.lead + Self.frameHeaderSize }

    /// The input positions of a record: consecutive (a fresh run) or listed (a resumed one).
    enum Positions {
        case range(Range<Int>)
        case list([Int])
    }

    /// Hands the waiting records to the writer if the last hand-off is `writeInterval` old
    /// (the engine calls this every round, so no record waits much longer than that); throws
    /// what the writer could not write. With nothing waiting it returns at once (the engine's
    /// rounds are frequent: no clock read, no lock).
    func flushIfDue() throws(CheckpointError) {
        guard isOpen, hasPendingRecords else { return }
        let now = monotonicNanoseconds()
        guard now &- lastHandOff >= Self.writeInterval || cursor - pendingStart >= Self.handOffBytes else { return }
        if let error = writer.failure { throw error }
        handOff(now: now)
    }

    /// Hands the waiting records to the writer now, which writes them at once: a
    /// checkpointed stream calls it before its consumer waits for the next result.
    func writeNow() throws(CheckpointError) {
        guard isOpen else { return }
        if let error = writer.failure { throw error }
        handOff(now: monotonicNanoseconds())
    }

    private func handOff(now: UInt64) {
        lastHandOff = now
        guard hasPendingRecords else { return }
        settlePending()
        nextOffset += pending.frame.count
        let next = writer.submit(pending)
        next.reset(lead: nextOffset % alignment)
        fill(next)
    }

    // MARK: format

    /// Fills in the header of the frame `buffer` holds (its records after room for the
    /// header): the writer thread's part of `append`.
    static func seal(_ buffer: JournalBuffer) {
        let frame = buffer.frame
        let payload = UnsafeRawBufferPointer(rebasing: frame[frameHeaderSize...])
        frame.storeBytes(of: frameMagic.littleEndian, as: UInt32.self)
        frame.storeBytes(of: UInt64(payload.count).littleEndian, toByteOffset: 4, as: UInt64.self)
        frame.storeBytes(of: stripeHash(payload, seed: UInt64(payload.count)).littleEndian, toByteOffset: 12, as: UInt64.self)
    }

    /// A sealed frame of `records` (tests build journals with it).
    static func encodeFrame(_ records: [Record]) -> [UInt8] {
        let buffer = JournalBuffer(capacity: 64)
        for record in records {
            buffer.write(UInt8(0))
            buffer.write(UInt64(record.indices.count))
            for index in record.indices { buffer.write(UInt64(index)) }
            buffer.write(UInt64(record.outputs.count))
            record.outputs.withUnsafeBytes { buffer.write($0) }
        }
        seal(buffer)
        return Array(buffer.frame)
    }

    static func encodeHeader(_ work: Work) -> [UInt8] {
        var fields = WireWriter()
        fields.write(work.typeName)
        fields.write(work.functionHash)
        fields.write(work.inputsHash)
        fields.write(UInt64(work.count))
        var writer = WireWriter()
        magic.withUnsafeBytes { writer.writeRaw($0) }
        writer.write(UInt64(fields.count))
        fields.bytes.withUnsafeBytes { writer.writeRaw($0) }
        writer.write(stripeHash(fields.bytes))
        return writer.bytes
    }

    static func decodeHeader(_ bytes: [UInt8]) -> (work: Work, length: Int)? {
        guard bytes.starts(with: magic) else { return nil }
        return bytes.withUnsafeBytes { raw in
            var reader = WireReader(UnsafeRawBufferPointer(rebasing: raw[magic.count...]))
            guard let length = try? reader.read(UInt64.self), length <= UInt64(reader.remaining),
                reader.remaining - Int(length) >= 8
            else { return nil }
            let fields = UnsafeRawBufferPointer(rebasing: reader.buffer[reader.offset..<(reader.offset + Int(length))])
            reader.offset += Int(length)
            guard (try? reader.read(UInt64.self)) == stripeHash(fields) else { return nil }
            var fieldReader = WireReader(fields)
            guard let name = try? fieldReader.read(String.self), let function = try? fieldReader.read(UInt64.self),
                let inputs = try? fieldReader.read(UInt64.self), let count = try? fieldReader.read(UInt64.self),
                count <= UInt64(Int.max)
            else { return nil }
            return (
                Work(typeName: name, functionHash: function, inputsHash: inputs, count: Int(count)),
                bytes.count - reader.remaining
            )
        }
    }

    /// The records of the whole frames from `offset` on, and where the first frame that is
    /// not whole and intact (torn by a kill, or damaged) starts: the journal is cut there.
    static func decodeRecords(_ bytes: [UInt8], from offset: Int, count: Int) -> (records: [Record], end: Int) {
        var records: [Record] = []
        var offset = offset
        bytes.withUnsafeBytes { raw in
            while raw.count - offset >= frameHeaderSize {
                guard UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: offset, as: UInt32.self)) == frameMagic
                else { return }
                let length = UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: offset + 4, as: UInt64.self))
                guard length <= UInt64(raw.count - offset - frameHeaderSize) else { return }
                let payload = UnsafeRawBufferPointer(
                    rebasing: raw[(offset + frameHeaderSize)..<(offset + frameHeaderSize + Int(length))])
                let checksum = UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: offset + 12, as: UInt64.self))
                guard checksum == stripeHash(payload, seed: length), let frame = decodeFrame(payload, count: count)
                else { return }
                records += frame
                offset += frameHeaderSize + Int(length)
            }
        }
        return (records, offset)
    }

    /// The records of an intact frame's payload (nil if they do not parse: the frame is dropped).
    private static func decodeFrame(_ payload: UnsafeRawBufferPointer, count: Int) -> [Record]? {
        var reader = WireReader(payload)
        var records: [Record] = []
        while !reader.isAtEnd {
            guard let kind = try? reader.read(UInt8.self), let n = try? reader.read(UInt64.self), n <= UInt64(count)
            else { return nil }
            var indices: [Int] = []
            if kind == 1 {
                guard let first = try? reader.read(UInt64.self), first <= UInt64(count) - n else { return nil }
                indices = Array(Int(first)..<Int(first + n))
            } else {
                guard kind == 0, UInt64(reader.remaining) / 8 >= n else { return nil }
                indices.reserveCapacity(Int(n))
                for _ in 0..<n {
                    guard let index = try? reader.read(UInt64.self), index < UInt64(count) else { return nil }
                    indices.append(Int(index))
                }
            }
            guard let length = try? reader.read(UInt64.self), length <= UInt64(reader.remaining) else { return nil }
            let outputs = Array(UnsafeRawBufferPointer(rebasing: reader.buffer[reader.offset..<(reader.offset + Int(length))]))
            reader.offset += Int(length)
            records.append(Record(indices: indices, outputs: outputs))
        }
        return records
    }

    private static func readAll(_ fd: Int32, path: String) throws(CheckpointError) -> [UInt8] {
        var status = stat()
        guard fstat(fd, &status) == 0 else {
            throw CheckpointError(.unusable, "cannot read the checkpoint \(path): \(String(cString: strerror(errno)))")
        }
        var bytes = [UInt8](repeating: 0, count: max(Int(status.st_size), 0) + (1 << 16))
        var filled = 0
        while true {
            if filled == bytes.count { bytes += [UInt8](repeating: 0, count: bytes.count) }
            let n = bytes.withUnsafeMutableBytes { read(fd, $0.baseAddress! + filled, $0.count - filled) }
            if n < 0 && errno == EINTR { continue }
            if n < 0 {
                throw CheckpointError(.unusable, "cannot read the checkpoint \(path): \(String(cString: strerror(errno)))")
            }
            if n == 0 { break }
            filled += n
        }
        bytes.removeLast(bytes.count - filled)
        return bytes
    }

    /// Writes `bytes` at `position` in the file.
    static func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer, at position: Int, path: String) throws(CheckpointError) {
        var offset = 0
        while offset < bytes.count {
            let n = pwrite(fd, bytes.baseAddress! + offset, bytes.count - offset, off_t(position + offset))
            if n < 0 && errno == EINTR { continue }
            if n <= 0 {
                throw CheckpointError(
                    .unusable,
                    "cannot write the checkpoint \(path): \(String(cString: strerror(errno))); "
                        + "is the disk full?")
            }
            offset += n
        }
    }
}

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
/// `capacity` buffers of a frame's size (2 MiB each) for the process's life.
final class JournalBufferCache: Sendable {
    static let shared = JournalBufferCache()
    static let capacity = 3
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

/// A journal's writer thread: writes what it is handed (first the header, when it is to
/// compute it, then the frames, each sealed with its checksum), flushes it to the disk a
/// second later at most, and at the end (once the journal's `close` wrote the rest) flushes
/// and closes the file. It owns the descriptor.
///
/// Direct writes (a map's journal, where the file system offers `O_DIRECT`): each frame goes
/// from its buffer to the disk, without a copy into the page cache (measured: 16.7 MB in
/// 1 MiB writes took 2.0 ms of CPU through the page cache into allocated ext4 blocks, then
/// 0.6 ms in `fsync` and 1.0 ms to evict the pages of a deleted file; direct, 0.65 ms, 0.07
/// and 0.1). A direct write covers whole blocks (`alignment`): it starts at the block that
/// holds the file's end, with the bytes of the file in it first (`lastBlock`: the same bytes
/// again, as the page cache writes a partially filled page again), and ends with zeros up to
/// the next block. So the file is longer than the journal while it is open — by less than
/// a block, zeros, which a reader takes for a torn frame and drops (as the next run's `open`
/// does after a kill) — and cut to the journal's length when it closes. A file system that
/// refuses a direct write after all (`EINVAL`), or one that stops within a block, gets the
/// rest through the page cache. The last frames, which the thread ending the call writes,
/// go into the page cache as the same whole blocks (the call does not wait for the disk; the
/// `fsync` after it writes them out).
///
/// Forks (`ForkGuard`): the thread is active while it runs code and lets go while it sleeps
/// and during its `write`s and `fsync`s; the threads that hand it work take its lock outside
/// their activity (`ForkGuard.whileBlocked`), so none waits for the lock while a fork waits
/// for it.
final class JournalWriter: @unchecked Sendable {
    typealias Header = @Sendable () throws(CheckpointError) -> [UInt8]

    private let descriptor: Int32
    private let path: String
    /// The alignment of direct writes when the journal opened (1: through the page cache): the
    /// journal places each frame `offset % alignment` bytes into its buffer.
    let alignment: Int
    private let lock = ConditionLock()
    // Under `lock`.
    /// Frames to write, in order.
    private var queued: [JournalBuffer] = []
    /// Written frames' buffers, to hand back to the journal (their memory is reused).
    private var spares: [JournalBuffer] = []
    /// The header of a new journal, to compute and write before any frame.
    private var header: Header?
    /// A thread (this one, or the one that closes the journal) is writing what it took.
    private var writing = false
    /// The journal is closing: its `close` writes what is left.
    private var finishing = false
    /// All is written and the file unlocked: flush and close it.
    private var released = false
    private var unsynced: Bool
    private var error: CheckpointError?
    // The thread that writes (the writer, or the one closing the journal: never both at once).
    /// The journal's length: where the next frame goes.
    private var size: Int
    /// The file's length: `size`, or up to the end of the last direct write's block.
    private var written: Int
    /// The end of the space allocated for the file (`preallocate`).
    private var allocated: Int
    /// Whether to allocate ahead (written through the page cache; false once the file system
    /// refused). Direct writes do not: measured in C, they cost as much CPU either way, and
    /// the blocks allocated ahead are given back by a truncation on the call's path (0.2–0.4
    /// ms here, before the journal is unlocked).
    private var preallocating: Bool
    /// The alignment of direct writes; 0 once writing through the page cache.
    private var direct: Int
    /// The file's last partial block: its first `size % direct` bytes.
    private let lastBlock: UnsafeMutableRawPointer
    /// Tests: direct writes after this many are refused as a file system would (`EINVAL`).
    private var directWritesBeforeRefusal: Int?
    // Writer thread only.
    private var lastSync = monotonicNanoseconds()

    /// `existing`: the file's bytes (its first `size` are the journal); `directWrites`: write
    /// without the page cache where the file system offers it (a map's large frames; a
    /// stream's frames are a result each).
    init(
        descriptor: Int32, path: String, size: Int, existing: [UInt8] = [], unsynced: Bool, header: Header? = nil,
        directWrites: Bool = false, refusingDirectWritesAfter: Int? = nil
    ) {
        self.descriptor = descriptor
        self.size = size
        written = size
        allocated = size
        self.path = path
        self.unsynced = unsynced
        self.header = header
        direct = directWrites ? Int(CSystemShims_enable_direct_io(descriptor)) : 0
        alignment = max(direct, 1)
        preallocating = direct == 0
        lastBlock = .allocate(byteCount: max(direct, 1), alignment: JournalBuffer.pageAlignment)
        if direct > 0 && size > 0 {
            let start = size - size % direct
            existing.withUnsafeBytes { lastBlock.copyMemory(from: $0.baseAddress! + start, byteCount: size - start) }
        }
        directWritesBeforeRefusal = refusingDirectWritesAfter
    }

    deinit { lastBlock.deallocate() }

    /// Whether the next write goes around the page cache (tests).
    var writesDirectly: Bool { lock.withLock { direct > 0 } }

    /// Starts the thread (the caller closes the descriptor if this throws).
    func start() throws(SystemError) {
        try spawnThread(named: "swiftmp-journal") { [self] in
            ForkGuard.enterActivity()
            run()
            ForkGuard.leaveActivity()
        }
    }

    /// What could not be written (the call fails with it).
    var failure: CheckpointError? { ForkGuard.whileBlocked { lock.withLock { error } } }

    /// Queues a frame to be written; returns an empty buffer to fill next.
    func submit(_ frame: JournalBuffer) -> JournalBuffer {
        let spare: JournalBuffer? = ForkGuard.whileBlocked {
            lock.withLock {
                queued.append(frame)
                lock.broadcast()
                return spares.popLast()
            }
        }
        return spare ?? JournalBuffer.make(capacity: frame.capacity)
    }

    /// Writes `last` and what is still queued — on this thread, once the writer is done with
    /// what it was writing —, unlocks the file and lets the thread flush it to the disk and
    /// close it. Returns what could not be written, if anything.
    func finish(_ last: JournalBuffer?) -> CheckpointError? {
        let (header, frames, idle, failed) = ForkGuard.whileBlocked {
            lock.withLock { () -> (Header?, [JournalBuffer], [JournalBuffer], Bool) in
                if let last { queued.append(last) }
                finishing = true
                while writing { _ = lock.wait(until: nil) }
                defer {
                    self.header = nil
                    queued = []
                    spares = []
                }
                return (self.header, queued, spares, error != nil)
            }
        }
        // The last frames go into the page cache — the same whole blocks at the same places, so
        // it reads none of them — rather than to the disk, which the call would wait for (a
        // direct write of 1 MiB took 0.5–0.8 ms here); the writer's `fsync` after the call
        // writes them out. (Should clearing `O_DIRECT` fail, they are written directly.)
        if direct > 0 { _ = CSystemShims_disable_direct_io(descriptor) }
        let failure = failed ? nil : write(header: header, frames: frames)
        JournalBuffer.recycle(frames + idle)
        ForkGuard.whileBlocked {
            releaseExcess()
            // The next run may open it now (it reads what was written; the flush to the disk
            // goes on in the writer thread, on this open file).
            _ = flock(descriptor, LOCK_UN)
        }
        return ForkGuard.whileBlocked {
            lock.withLock {
                if let failure, error == nil { error = failure }
                if failure == nil && (header != nil || !frames.isEmpty) { unsynced = true }
                released = true
                lock.broadcast()
                return error
            }
        }
    }

    /// A blocking system call outside this thread's activity.
    private func outside<T, E>(_ body: () throws(E) -> T) throws(E) -> T {
        ForkGuard.leaveActivity()
        defer { ForkGuard.enterActivity() }
        return try body()
    }

    /// Computes and writes the header if given, then seals and writes each frame, in order;
    /// on whichever thread took them (the `write`s outside its `ForkGuard` activity).
    private func write(header: Header?, frames: [JournalBuffer]) -> CheckpointError? {
        do throws(CheckpointError) {
            if let header {
                let bytes = try header()
                let failure = bytes.withUnsafeBytes { raw -> CheckpointError? in
                    do throws(CheckpointError) {
                        try writeCopied(raw)
                        return nil
                    } catch {
                        return error
                    }
                }
                if let failure { throw failure }
            }
            for frame in frames {
                CheckpointJournal.seal(frame)
                try writeFrame(frame)
            }
            return nil
        } catch {
            return error
        }
    }

    /// A frame, from its buffer when the journal placed it where the file's end falls in a
    /// block (`lead`: room for the block's first bytes), else copied.
    private func writeFrame(_ frame: JournalBuffer) throws(CheckpointError) {
        guard direct > 0, frame.lead == size % direct else { return try writeCopied(UnsafeRawBufferPointer(frame.frame)) }
        frame.base.copyMemory(from: lastBlock, byteCount: frame.lead)
        let length = frame.padded(to: direct)
        try writeDirect(frame.base, length: length, lead: frame.lead, end: frame.count)
    }

    /// Bytes appended to the journal: through the page cache, or copied after the file's last
    /// partial block into a buffer for a direct write (a header, a frame placed otherwise).
    private func writeCopied(_ raw: UnsafeRawBufferPointer) throws(CheckpointError) {
        guard direct > 0 else { return try writeBuffered(raw) }
        let lead = size % direct
        let length = roundedUp(lead + raw.count, to: direct)
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: length, alignment: direct)
        defer { buffer.deallocate() }
        buffer.copyMemory(from: lastBlock, byteCount: lead)
        if let source = raw.baseAddress { (buffer + lead).copyMemory(from: source, byteCount: raw.count) }
        (buffer + lead + raw.count).initializeMemory(as: UInt8.self, repeating: 0, count: length - lead - raw.count)
        try writeDirect(buffer, length: length, lead: lead, end: lead + raw.count)
    }

    /// Writes `length` bytes from `buffer` (aligned) at the start of the block holding the
    /// journal's end: the block's first `lead` bytes (what the file holds there), the new bytes
    /// up to `end`, zeros after. A refusal (`EINVAL`), or a write that stops within a block,
    /// turns direct writes off: the rest goes through the page cache.
    private func writeDirect(_ buffer: UnsafeMutableRawPointer, length: Int, lead: Int, end: Int) throws(CheckpointError) {
        let start = size - lead
        preallocate(length - lead)
        var done = 0
        while done < length {
            let n: Int
            if let left = directWritesBeforeRefusal, left == 0 {
                n = -1
                errno = EINVAL
            } else {
                n = ForkGuard.whileBlocked { pwrite(descriptor, buffer + done, length - done, off_t(start + done)) }
            }
            if n < 0 && errno == EINTR { continue }
            if n > 0 && n % direct == 0 {
                done += n
                continue
            }
            if n < 0 && errno != EINVAL {
                throw CheckpointError(
                    .unusable,
                    "cannot write the checkpoint \(path): \(String(cString: strerror(errno))); is the disk full?")
            }
            done += max(n, 0)
            written = max(written, start + done)
            guard CSystemShims_disable_direct_io(descriptor) == 0 else {
                throw CheckpointError(
                    .unusable, "cannot write the checkpoint \(path) through the page cache: \(String(cString: strerror(errno)))")
            }
            ForkGuard.whileBlocked { lock.withLock { direct = 0 } }
            // Bytes before `from` are in the file (the block's first ones were already).
            let from = max(done, lead)
            size = start + min(from, end)
            if from < end { try writeBuffered(UnsafeRawBufferPointer(start: buffer + from, count: end - from)) }
            return
        }
        if let left = directWritesBeforeRefusal { directWritesBeforeRefusal = left - 1 }
        written = max(written, start + length)
        size = start + end
        let kept = size % direct
        lastBlock.copyMemory(from: buffer + end - kept, byteCount: kept)
    }

    /// Appends through the page cache.
    private func writeBuffered(_ raw: UnsafeRawBufferPointer) throws(CheckpointError) {
        preallocate(raw.count)
        let failure: CheckpointError? = ForkGuard.whileBlocked {
            do throws(CheckpointError) {
                try CheckpointJournal.writeAll(descriptor, raw, at: size, path: path)
                return nil
            } catch {
                return error
            }
        }
        if let failure { throw failure }
        size += raw.count
        written = max(written, size)
    }

    /// Allocates the file's blocks ahead of its end, `KEEP_SIZE` (the size, and what a reader
    /// sees, do not change): a `write(2)` into allocated blocks costs ext4 about a third less
    /// CPU time than one that reserves them (measured: 16.7 MB in 1 MiB writes, 3.2 → 2.3 ms).
    /// As much as the file holds already, 4–64 MiB; given back (`releaseExcess`) before
    /// the journal is unlocked, and by the next run's `open` after a kill. Only an
    /// optimisation: a file system that refuses it (no `fallocate`, a full disk, a quota) is
    /// just written to, and a real lack of space fails the `write`.
    private func preallocate(_ count: Int) {
        guard preallocating, size + count > allocated else { return }
        let end = size + count + min(max(size + count, 4 << 20), 64 << 20)
        if CSystemShims_fallocate_keep_size(descriptor, Int64(allocated), Int64(end - allocated)) == 0 {
            allocated = end
        } else {
            preallocating = false
        }
    }

    /// Cuts the file to the journal's length: the blocks allocated beyond it, and the zeros
    /// after the last direct write. Runs before the file is unlocked: the next run may append
    /// to it then. A failure only leaves them until the next run opens the journal (which
    /// drops them).
    private func releaseExcess() {
        guard allocated > size || written > size else { return }
        if ftruncate(descriptor, off_t(size)) == 0 {
            allocated = size
            written = size
        }
    }

    private enum Step {
        case write(Header?, [JournalBuffer])
        case sync
        case close(unsynced: Bool)
    }

    private func run() {
        while true {
            let step: Step = lock.withLock {
                while true {
                    if released { return .close(unsynced: unsynced) }
                    // Once closing, the closing thread writes what is left; nothing more is
                    // written after a failure (a journal without its header, or with a gap,
                    // would be read wrong).
                    if !finishing && !writing && error == nil && (header != nil || !queued.isEmpty) {
                        writing = true
                        defer {
                            header = nil
                            queued = []
                        }
                        return .write(header, queued)
                    }
                    let due = unsynced && !writing ? lastSync &+ CheckpointJournal.syncInterval : nil
                    if let due, monotonicNanoseconds() >= due {
                        unsynced = false
                        return .sync
                    }
                    _ = outside { lock.wait(until: due) }
                }
            }
            switch step {
            case .close(let unsynced):
                outside {
                    if unsynced { _ = fsync(descriptor) }
                    _ = Glibc.close(descriptor)
                }
                return
            case .sync:
                _ = outside { fsync(descriptor) }
                lastSync = monotonicNanoseconds()
            case .write(let header, let frames):
                let failure = write(header: header, frames: frames)
                for frame in frames { frame.reset() }
                lock.withLock {
                    writing = false
                    if let failure, error == nil { error = failure }
                    if failure == nil { unsynced = true }
                    // Two spares: one being filled while one waits here.
                    spares += frames.prefix(max(0, 2 - spares.count))
                    lock.broadcast()
                }
            }
        }
    }
}

private func hex(_ value: UInt64) -> String { String(value, radix: 16) }

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
