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

        /// For messages: the function's type, how many inputs (an `imap` stream's count is
        /// `Int.max`, its inputs being unknown in advance), and the hashes.
        var summary: String {
            let inputs = count == Int.max ? "an imap stream" : "\(count) inputs"
            return "\(FunctionIdentity.readableName(typeName)), \(inputs), function hash \(hex(functionHash)), inputs hash \(hex(inputsHash))"
        }
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
    /// Near the end of a run whose number of inputs is known (`expect`), a frame is handed
    /// off once it holds as many inputs as are still to come and at least this many bytes:
    /// the frames shrink by half towards the end, so the last one, which the thread ending
    /// the call writes, is small. (It goes into the page cache, whose fresh pages can cost a
    /// VM several µs each when the host took them back: measured here, 2.8 ms of the pool
    /// thread's time per map of 2 M results when the last frame was whatever the 2 MiB
    /// frames left, up to 2 MiB; 0.1–0.2 ms with the frames halving.)
    static let tailFrameBytes = 64 << 10
    /// Writes and flushes on its own thread.
    private let writer: JournalWriter
    /// Where the frame being filled goes in the file. It is placed `nextOffset % alignment`
    /// bytes into its buffer, after room for the file's last partial block, which a direct
    /// write writes again before it (`JournalWriter`; the alignment is 1 for a journal
    /// written through the page cache).
    private var nextOffset: Int
    private let alignment: Int
    /// Inputs still to be recorded in this run (`expect`; nil: not known, a stream), and the
    /// inputs the frame being filled holds.
    private var inputsLeft: Int?
    private var pendingInputs = 0

    /// Opens (or creates) the journal at `path` for `work`; returns it and the records a
    /// previous run left. Throws `CheckpointError` for a journal of other work, one in use,
    /// or a file that cannot be used. `directWrites`: write around the page cache where the
    /// file system offers it (`JournalWriter`: a map's journal, whose frames are large; a
    /// stream's frames are a result each); `refusingDirectWritesAfter` (tests): direct writes
    /// after this many are refused, as by a file system that does not take them after all;
    /// `spawn` (tests): starts the writer's thread.
    static func open(
        path: String, work: Work, directWrites: Bool = false, refusingDirectWritesAfter: Int? = nil,
        spawn: JournalWriter.Spawn = spawnThread
    ) throws(CheckpointError) -> (CheckpointJournal, [Record]) {
        try open(
            path: path, typeName: work.typeName, functionHash: work.functionHash, count: work.count,
            directWrites: directWrites, refusingDirectWritesAfter: refusingDirectWritesAfter, spawn: spawn
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
        refusingDirectWritesAfter: Int? = nil, spawn: JournalWriter.Spawn = spawnThread,
        inputsHash: @escaping @Sendable () throws -> UInt64
    ) throws(CheckpointError) -> (CheckpointJournal, [Record]) {
        // O_NONBLOCK: opening a FIFO or a device must not wait; refused just below.
        let fd = Glibc.open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOCTTY | O_NONBLOCK, 0o644)
        guard fd >= 0 else {
            throw CheckpointError(
                .unusable,
                "cannot open the checkpoint \(path): \(String(cString: strerror(errno))); "
                    + "choose a writable path")
        }
        // Only a regular file: reading a FIFO to its end waits for ever, a device such as
        // /dev/zero never ends.
        var status = stat()
        guard fstat(fd, &status) == 0, fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK) == 0 else {
            let reason = errno
            Glibc.close(fd)
            throw CheckpointError(.unusable, "cannot use the checkpoint \(path): \(String(cString: strerror(reason)))")
        }
        guard status.st_mode & S_IFMT == S_IFREG else {
            Glibc.close(fd)
            throw CheckpointError(
                .unusable,
                "the checkpoint \(path) is not a regular file (a FIFO, a device or a socket); "
                    + "choose the path of a file")
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
                try start(writer, spawn: spawn, path: path)
                return (CheckpointJournal(path: path, writer: writer, firstFrameOffset: headerLength), [])
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
                    the checkpoint \(path) records other work (\(found.work.summary)) than this call \
                    (\(work.summary)); delete it to start again, or use another path
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
            try start(writer, spawn: spawn, path: path)
            return (CheckpointJournal(path: path, writer: writer, firstFrameOffset: end), records)
        } catch {
            Glibc.close(fd)
            throw error
        }
    }

    /// Starts `writer`'s thread, which owns the descriptor from then on (it closes it after
    /// the journal's `close`). If the thread cannot start, nothing was written and the caller
    /// still owns the descriptor: no journal is made (whose `close` would hand the end of the
    /// work to a thread that does not exist).
    private static func start(_ writer: JournalWriter, spawn: JournalWriter.Spawn, path: String) throws(CheckpointError) {
        do {
            try writer.start(spawn)
        } catch {
            throw CheckpointError(
                .unusable,
                "cannot start the thread that writes the checkpoint \(path): \(error); the process may be at its "
                    + "limit of threads (ulimit -u) or out of memory: end some threads or processes and run it again, "
                    + "or run without checkpoint:")
        }
    }

    /// A journal whose writer thread runs.
    private init(path: String, writer: JournalWriter, firstFrameOffset: Int) {
        self.path = path
        self.writer = writer
        alignment = writer.alignment
        nextOffset = firstFrameOffset
        let first = JournalBuffer.make(capacity: Self.handOffBytes + (1 << 16))
        first.reset(lead: nextOffset % alignment)
        (pending, pendingStart, cursor, limit) = (first, first.base, first.base + first.count, first.base + first.capacity)
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

    /// Says how many inputs this run's records will cover in all (a map's job: its inputs), so
    /// that the frames shrink towards the end (`tailFrameBytes`) and the call's last write is
    /// short.
    func expect(inputs count: Int) { inputsLeft = count }

    /// Appends a record. It is handed to the writer at once when the last hand-off is
    /// `writeInterval` old, else with the next record that is, or by `flushIfDue`. With
    /// `checkingTime` false only a full frame, or one due near the end (`expect`), is handed
    /// off here (no clock read): for a caller that runs `flushIfDue` often anyway (a map's
    /// engine, every round).
    func append(indices: Positions, outputs: UnsafeRawBufferPointer, checkingTime: Bool = true) throws(CheckpointError) {
        guard isOpen else { return }
        let needed: Int
        let covered: Int
        switch indices {
        case .range(let range):
            needed = 25 + outputs.count
            covered = range.count
        case .list(let list):
            needed = 17 + 8 * list.count + outputs.count
            covered = list.count
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
        pendingInputs += covered
        if let left = inputsLeft { inputsLeft = left - covered }
        if checkingTime || isDueBySize { try flushIfDue() }
    }

    /// Whether the frame being filled is to be handed off whatever the time: it is full, or it
    /// holds as many inputs as are still to come (and `tailFrameBytes`) and the writer is
    /// idle. Not once all are recorded: the thread ending the call writes that last frame
    /// itself, without waiting for the writer to write it. Not while the writer is busy
    /// either: the frame would only wait in its queue, and need a buffer of its own (a fresh
    /// one faults in a huge page: 0.5–1 ms of this thread's time here); it grows until the
    /// writer is done.
    private var isDueBySize: Bool {
        let bytes = cursor - pendingStart
        if bytes >= Self.handOffBytes { return true }
        guard let left = inputsLeft, left > 0, pendingInputs >= left, bytes >= Self.tailFrameBytes else { return false }
        return writer.isIdle
    }

    /// Whether the writer has nothing queued and is not writing (tests).
    var writerIsIdle: Bool { writer.isIdle }

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
        guard now &- lastHandOff >= Self.writeInterval || isDueBySize else { return }
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
        pendingInputs = 0
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

private func hex(_ value: UInt64) -> String { String(value, radix: 16) }
