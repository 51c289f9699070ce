import CSystemShims

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
/// their results arrive (or once 1 MiB waits), to the journal's own writer thread, which
/// writes them (`write(2)`) at once — a killed process loses at most the last 0.1 s of
/// results, which run again — and flushes them to the disk (`fsync`) at most a second
/// later. When the call ends, everything is written before it returns (so the next run, in
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
    /// Records arriving less than this long after the last hand-off wait (ns): one hand-off
    /// per chunk would cost more than tiny tasks.
    static let writeInterval: UInt64 = 100_000_000
    /// A frame this full is handed off at once.
    static let handOffBytes = 1 << 20
    /// Writes and flushes on its own thread.
    private let writer: JournalWriter

    /// Opens (or creates) the journal at `path` for `work`; returns it and the records a
    /// previous run left. Throws `CheckpointError` for a journal of other work, one in use,
    /// or a file that cannot be used.
    static func open(path: String, work: Work) throws(CheckpointError) -> (CheckpointJournal, [Record]) {
        try open(path: path, typeName: work.typeName, functionHash: work.functionHash, count: work.count) { work.inputsHash }
    }

    /// `open(path:work:)` for work whose inputs hash is costly (a map's: all its inputs
    /// hashed, a millisecond or so for millions of numbers). A journal that has records
    /// needs it at once, to be checked; a new one (the common case) does not: its writer
    /// thread computes it and writes the header before any record, while the map runs, so
    /// the call's thread does not wait for it. A failure there (an input that cannot be
    /// encoded) is the journal's failure, thrown by the next `append` or `flushIfDue` and
    /// returned by `close`; nothing is written after it.
    static func open(
        path: String, typeName: String, functionHash: UInt64, count: Int,
        inputsHash: @escaping @Sendable () throws -> UInt64
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
                return (try CheckpointJournal(path: path, descriptor: fd, size: 0, unsynced: true, header: header), [])
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
            guard lseek(fd, 0, SEEK_END) >= 0 else {
                throw CheckpointError(.unusable, "cannot seek in the checkpoint \(path): \(String(cString: strerror(errno)))")
            }
            return (try CheckpointJournal(path: path, descriptor: fd, size: end, unsynced: end < bytes.count), records)
        } catch {
            Glibc.close(fd)
            throw error
        }
    }

    private init(
        path: String, descriptor: Int32, size: Int, unsynced: Bool,
        header: (@Sendable () throws(CheckpointError) -> [UInt8])? = nil
    ) throws(CheckpointError) {
        self.path = path
        writer = JournalWriter(descriptor: descriptor, path: path, size: size, unsynced: unsynced, header: header)
        pending = JournalBuffer(capacity: Self.handOffBytes + (1 << 16))
        do {
            try writer.start()
        } catch {
            throw CheckpointError(.unusable, "cannot start the thread that writes the checkpoint \(path): \(error)")
        }
    }

    deinit { close() }

    /// Writes what waits (on this thread, once the writer is done with what it was writing),
    /// unlocks the journal (the call ended; it returns once this did) and lets the writer
    /// flush it to the disk and close it; later appends are ignored. Returns what could not
    /// be written, if anything (the header of a new journal, or a record: the journal then
    /// misses them).
    @discardableResult
    func close() -> CheckpointError? {
        guard isOpen else { return nil }
        isOpen = false
        return writer.finish(pending.hasRecords ? pending : nil)
    }

    /// Appends a record. It is handed to the writer at once when the last hand-off is
    /// `writeInterval` old, else with the next record that is, or by `flushIfDue`. With
    /// `checkingTime` false only a full frame is handed off here (no clock read): for a
    /// caller that runs `flushIfDue` often anyway (a map's engine, every round).
    func append(indices: Positions, outputs: UnsafeRawBufferPointer, checkingTime: Bool = true) throws(CheckpointError) {
        guard isOpen else { return }
        let frame = pending
        switch indices {
        case .range(let range):
            frame.reserve(25 + outputs.count)
            frame.write(UInt8(1))
            frame.write(UInt64(range.count))
            frame.write(UInt64(range.lowerBound))
        case .list(let list):
            frame.reserve(17 + 8 * list.count + outputs.count)
            frame.write(UInt8(0))
            frame.write(UInt64(list.count))
            for index in list { frame.write(UInt64(index)) }
        }
        frame.write(UInt64(outputs.count))
        frame.write(outputs)
        if checkingTime || frame.count >= Self.handOffBytes { try flushIfDue() }
    }

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
        guard isOpen, pending.hasRecords else { return }
        let now = monotonicNanoseconds()
        guard now &- lastHandOff >= Self.writeInterval || pending.count >= Self.handOffBytes else { return }
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
        guard pending.hasRecords else { return }
        pending = writer.submit(pending)
    }

    // MARK: format

    /// Fills in the header of the frame `buffer` holds (its records after room for the
    /// header): the writer thread's part of `append`.
    static func seal(_ buffer: JournalBuffer) {
        let payload = UnsafeRawBufferPointer(start: buffer.base + frameHeaderSize, count: buffer.count - frameHeaderSize)
        buffer.base.storeBytes(of: frameMagic.littleEndian, as: UInt32.self)
        buffer.base.storeBytes(of: UInt64(payload.count).littleEndian, toByteOffset: 4, as: UInt64.self)
        buffer.base.storeBytes(
            of: stripeHash(payload, seed: UInt64(payload.count)).littleEndian, toByteOffset: 12, as: UInt64.self)
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
        return Array(UnsafeRawBufferPointer(start: buffer.base, count: buffer.count))
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

    static func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer, path: String) throws(CheckpointError) {
        var offset = 0
        while offset < bytes.count {
            let n = write(fd, bytes.baseAddress! + offset, bytes.count - offset)
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
final class JournalBuffer: @unchecked Sendable {
    private(set) var base: UnsafeMutableRawPointer
    private(set) var capacity: Int
    /// Bytes in use, the frame's header included.
    private(set) var count = CheckpointJournal.frameHeaderSize

    init(capacity: Int) {
        self.capacity = max(capacity, 64)
        base = .allocate(byteCount: self.capacity, alignment: 16)
    }

    deinit { base.deallocate() }

    var hasRecords: Bool { count > CheckpointJournal.frameHeaderSize }

    /// Empties it for the next frame (its memory is kept).
    func reset() { count = CheckpointJournal.frameHeaderSize }

    /// Makes room for `extra` more bytes.
    @inline(__always)
    func reserve(_ extra: Int) {
        if count + extra > capacity { grow(count + extra) }
    }

    private func grow(_ needed: Int) {
        let larger = max(needed, 2 * capacity)
        let moved = UnsafeMutableRawPointer.allocate(byteCount: larger, alignment: 16)
        moved.copyMemory(from: base, byteCount: count)
        base.deallocate()
        base = moved
        capacity = larger
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

/// A journal's writer thread: writes what it is handed (first the header, when it is to
/// compute it, then the frames, each sealed with its checksum), flushes it to the disk a
/// second later at most, and at the end (once the journal's `close` wrote the rest) flushes
/// and closes the file. It owns the descriptor.
///
/// Forks (`ForkGuard`): the thread is active while it runs code and lets go while it sleeps
/// and during its `write`s and `fsync`s; the threads that hand it work take its lock outside
/// their activity (`ForkGuard.whileBlocked`), so none waits for the lock while a fork waits
/// for it.
final class JournalWriter: @unchecked Sendable {
    typealias Header = @Sendable () throws(CheckpointError) -> [UInt8]

    private let descriptor: Int32
    private let path: String
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
    /// The file's size: where the next write goes.
    private var size: Int
    /// The end of the space allocated for the file (`preallocate`).
    private var allocated: Int
    /// False once the file system refused to allocate ahead.
    private var preallocating = true
    // Writer thread only.
    private var lastSync = monotonicNanoseconds()

    init(descriptor: Int32, path: String, size: Int, unsynced: Bool, header: Header? = nil) {
        self.descriptor = descriptor
        self.size = size
        allocated = size
        self.path = path
        self.unsynced = unsynced
        self.header = header
    }

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
        return spare ?? JournalBuffer(capacity: frame.capacity)
    }

    /// Writes `last` and what is still queued — on this thread, once the writer is done with
    /// what it was writing —, unlocks the file and lets the thread flush it to the disk and
    /// close it. Returns what could not be written, if anything.
    func finish(_ last: JournalBuffer?) -> CheckpointError? {
        let (header, frames, failed) = ForkGuard.whileBlocked {
            lock.withLock { () -> (Header?, [JournalBuffer], Bool) in
                if let last { queued.append(last) }
                finishing = true
                while writing { _ = lock.wait(until: nil) }
                defer {
                    self.header = nil
                    queued = []
                }
                return (self.header, queued, error != nil)
            }
        }
        let failure = failed ? nil : write(header: header, frames: frames)
        ForkGuard.whileBlocked {
            releasePreallocation()
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
                        try writeBlocking(raw)
                        return nil
                    } catch {
                        return error
                    }
                }
                if let failure { throw failure }
            }
            for frame in frames {
                CheckpointJournal.seal(frame)
                try writeBlocking(UnsafeRawBufferPointer(start: frame.base, count: frame.count))
            }
            return nil
        } catch {
            return error
        }
    }

    /// Allocates the file's blocks ahead of its end, `KEEP_SIZE` (the size, and what a reader
    /// sees, do not change): a `write(2)` into allocated blocks costs ext4 about a third less
    /// CPU time than one that reserves them (measured: 16.7 MB in 1 MiB writes, 3.2 → 2.3 ms).
    /// As much as the file holds already, 4–64 MiB; given back (`releasePreallocation`) before
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

    /// Frees the blocks allocated beyond the file's end (a truncation to its size). Runs
    /// before the file is unlocked: the next run may append to it then. A failure only
    /// leaves them allocated until the next run opens the journal.
    private func releasePreallocation() {
        guard allocated > size else { return }
        if ftruncate(descriptor, off_t(size)) == 0 { allocated = size }
    }

    /// `writeAll` outside this thread's `ForkGuard` activity, into preallocated blocks.
    private func writeBlocking(_ raw: UnsafeRawBufferPointer) throws(CheckpointError) {
        preallocate(raw.count)
        defer { size += raw.count }
        let failure: CheckpointError? = ForkGuard.whileBlocked {
            do throws(CheckpointError) {
                try CheckpointJournal.writeAll(descriptor, raw, path: path)
                return nil
            } catch {
                return error
            }
        }
        if let failure { throw failure }
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
