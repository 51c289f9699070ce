#if canImport(Glibc)
import Glibc
#endif

/// A map's results on disk, so that a run killed midway (SIGKILL, node lost, wall-time
/// limit) is resumed by running the same program again: `map(…, checkpoint: path)`.
///
/// The file starts with a header naming the work — the function's type, a hash of the
/// function value and a hash of all the inputs, and their count — so a journal of other
/// work is refused with a clear error. Then one record per finished chunk: the inputs'
/// positions and their encoded outputs, with a checksum. The journal is locked (`flock`)
/// while a run uses it. A torn last record is dropped when the journal is read.
///
/// Durability: records are built on the pool's thread and handed, at most 0.1 s after
/// their results arrive (or once 1 MiB waits), to the journal's own writer thread, which
/// writes them (`write(2)`) at once — a killed process loses at most the last 0.1 s of
/// results, which run again — and flushes them to the disk (`fsync`) at most a second
/// later. When the call ends, everything is written before it returns (so the next run, in
/// this process or another, reads it all) and flushed right after, without the call
/// waiting for the disk: a machine that loses power loses at most the last second or so of
/// results. Neither a `write` nor an `fsync` runs on the pool's thread (measured: they cost
/// a checkpointed map of tiny tasks most of its speed there), nor the records' checksums
/// (the writer seals each record before writing it), nor, for a new journal, the hash of
/// the inputs (the writer computes it and writes the header before any record).
final class CheckpointJournal: @unchecked Sendable {
    static let magic: [UInt8] = Array("SWMPCKP1".utf8)
    static let recordMagic: UInt32 = 0x4443_4552 // "RECD"
    static let syncInterval: UInt64 = 1_000_000_000

    /// What the journal is about.
    struct Work: Equatable {
        var typeName: String
        var functionHash: UInt64
        var inputsHash: UInt64
        var count: Int
    }

    /// One record: positions of inputs and the encoded outputs of exactly those inputs.
    struct Record {
        var indices: [Int]
        var outputs: [UInt8]
    }

    let path: String
    private var isOpen = true
    private var lastHandOff: UInt64 = monotonicNanoseconds()
    /// Records not handed to the writer yet (at most `writeInterval` old, see `append`).
    /// Room for a hand-off's worth at once: grown by doubling, a buffer would be copied
    /// several times on the pool's thread (its pages are touched only as it fills).
    private var pending = WireWriter(capacity: (1 << 20) + (1 << 16))
    /// Records arriving less than this long after the last hand-off wait (ns): one hand-off
    /// per chunk would cost more than tiny tasks.
    static let writeInterval: UInt64 = 100_000_000
    /// Writes and flushes on its own thread.
    private let writer: JournalWriter

    /// Opens (or creates) the journal at `path` for `work`; returns it and the records a
    /// previous run left. Throws `CheckpointError` for a journal of other work, one in use,
    /// or a file that cannot be used.
    static func open(path: String, work: Work) throws(CheckpointError) -> (CheckpointJournal, [Record]) {
        try open(path: path, typeName: work.typeName, functionHash: work.functionHash, count: work.count) { work.inputsHash }
    }

    /// `open(path:work:)` for work whose inputs hash is costly (a map's: all its inputs
    /// encoded and hashed, milliseconds for millions of inputs). A journal that has records
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
                return (try CheckpointJournal(path: path, descriptor: fd, unsynced: true, header: header), [])
            }
            let work: Work
            do {
                work = Work(typeName: typeName, functionHash: functionHash, inputsHash: try inputsHash(), count: count)
            } catch {
                throw CheckpointError(.unusable, "cannot hash the inputs for the checkpoint \(path): \(error)")
            }
            guard let found = decodeHeader(bytes) else {
                throw CheckpointError(
                    .otherWork,
                    "\(path) is not a checkpoint journal of this library; delete it or choose "
                        + "another path")
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
            var records: [Record] = []
            var offset = found.length
            while let (record, next) = decodeRecord(bytes, at: offset, count: work.count) {
                records.append(record)
                offset = next
            }
            if offset < bytes.count {
                // A torn last record (the run was killed while writing it): drop it.
                guard ftruncate(fd, off_t(offset)) == 0 else {
                    throw CheckpointError(.unusable, "cannot truncate the checkpoint \(path): \(String(cString: strerror(errno)))")
                }
            }
            guard lseek(fd, 0, SEEK_END) >= 0 else {
                throw CheckpointError(.unusable, "cannot seek in the checkpoint \(path): \(String(cString: strerror(errno)))")
            }
            return (try CheckpointJournal(path: path, descriptor: fd, unsynced: offset < bytes.count), records)
        } catch {
            Glibc.close(fd)
            throw error
        }
    }

    private init(
        path: String, descriptor: Int32, unsynced: Bool, header: (@Sendable () throws(CheckpointError) -> [UInt8])? = nil
    ) throws(CheckpointError) {
        self.path = path
        writer = JournalWriter(descriptor: descriptor, path: path, unsynced: unsynced, header: header)
        do {
            try writer.start()
        } catch {
            throw CheckpointError(.unusable, "cannot start the thread that writes the checkpoint \(path): \(error)")
        }
    }

    deinit { close() }

    /// Writes what waits, unlocks the journal (the call ended; it returns once this did) and
    /// lets the writer flush it to the disk and close it; later appends are ignored. Returns
    /// what the writer could not write, if anything (the header of a new journal, or a record:
    /// the journal then misses them).
    @discardableResult
    func close() -> CheckpointError? {
        guard isOpen else { return nil }
        isOpen = false
        writer.finish(pending.bytes)
        pending.bytes.removeAll()
        return writer.failure
    }

    /// Appends a record. It is handed to the writer at once when the last hand-off is
    /// `writeInterval` old, else with the next record that is, or by `flushIfDue`. With
    /// `checkingTime` false only a full buffer is handed off here (no clock read): for a
    /// caller that runs `flushIfDue` often anyway (a map's engine, every round).
    func append(indices: Positions, outputs: UnsafeRawBufferPointer, checkingTime: Bool = true) throws(CheckpointError) {
        guard isOpen else { return }
        pending.write(Self.recordMagic)
        let lengthAt = pending.reserve(UInt32.self)
        let start = pending.count
        switch indices {
        case .range(let range):
            pending.write(UInt8(1))
            pending.write(UInt64(range.count))
            pending.write(UInt64(range.lowerBound))
        case .list(let list):
            pending.write(UInt8(0))
            pending.write(UInt64(list.count))
            for index in list { pending.write(UInt64(index)) }
        }
        pending.writeRaw(outputs)
        pending.patch(UInt32(pending.count - start), at: lengthAt)
        // The checksum: computed by the writer thread, before it writes the record.
        pending.write(UInt64(0))
        if checkingTime || pending.count >= 1 << 20 { try flushIfDue() }
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
        guard isOpen, pending.count > 0 else { return }
        let now = monotonicNanoseconds()
        guard now &- lastHandOff >= Self.writeInterval || pending.count >= 1 << 20 else { return }
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
        guard pending.count > 0 else { return }
        pending.bytes = writer.submit(pending.bytes)
    }

    // MARK: format

    /// Fills in the checksum of every record in `bytes` (whole records, as `append` wrote
    /// them with a zero checksum): the writer thread's part of `append`. Four records of the
    /// same length (a map's full chunks) are hashed side by side: each hash is a chain of
    /// dependent multiplications, and four chains keep the multiplier busy.
    static func sealRecords(_ bytes: inout [UInt8]) {
        bytes.withUnsafeMutableBytes { raw in
            /// The payload's offset and length of the record at `offset` (nil: none whole).
            func record(at offset: Int) -> (payload: Int, length: Int)? {
                guard offset + 8 <= raw.count else { return nil }
                let length = Int(UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: offset + 4, as: UInt32.self)))
                guard offset + 8 + length + 8 <= raw.count else { return nil }
                return (offset + 8, length)
            }
            func seal(_ payload: Int, _ length: Int, _ checksum: UInt64) {
                raw.storeBytes(of: checksum.littleEndian, toByteOffset: payload + length, as: UInt64.self)
            }
            var offset = 0
            while let first = record(at: offset) {
                let length = first.length
                if let second = record(at: first.payload + length + 8), second.length == length,
                    let third = record(at: second.payload + length + 8), third.length == length,
                    let fourth = record(at: third.payload + length + 8), fourth.length == length
                {
                    let sums = fnv1a4(UnsafeRawBufferPointer(raw), first.payload, second.payload, third.payload, fourth.payload, length: length)
                    seal(first.payload, length, sums.0)
                    seal(second.payload, length, sums.1)
                    seal(third.payload, length, sums.2)
                    seal(fourth.payload, length, sums.3)
                    offset = fourth.payload + length + 8
                } else {
                    seal(first.payload, length, fnv1a(UnsafeRawBufferPointer(rebasing: raw[first.payload..<(first.payload + length)])))
                    offset = first.payload + length + 8
                }
            }
        }
    }

    static func encodeHeader(_ work: Work) -> [UInt8] {
        var writer = WireWriter()
        magic.withUnsafeBytes { writer.writeRaw($0) }
        writer.write(work.typeName)
        writer.write(work.functionHash)
        writer.write(work.inputsHash)
        writer.write(UInt64(work.count))
        return writer.bytes
    }

    static func decodeHeader(_ bytes: [UInt8]) -> (work: Work, length: Int)? {
        guard bytes.count >= magic.count, Array(bytes[0..<magic.count]) == magic else { return nil }
        return bytes.withUnsafeBytes { raw in
            var reader = WireReader(UnsafeRawBufferPointer(rebasing: raw[magic.count...]))
            guard let name = try? reader.read(String.self), let function = try? reader.read(UInt64.self),
                let inputs = try? reader.read(UInt64.self), let count = try? reader.read(UInt64.self),
                count <= UInt64(Int.max)
            else { return nil }
            return (
                Work(typeName: name, functionHash: function, inputsHash: inputs, count: Int(count)),
                bytes.count - reader.remaining
            )
        }
    }

    static func decodeRecord(_ bytes: [UInt8], at offset: Int, count: Int) -> (Record, Int)? {
        guard bytes.count - offset >= 8 else { return nil }
        return bytes.withUnsafeBytes { raw in
            var reader = WireReader(UnsafeRawBufferPointer(rebasing: raw[offset...]))
            guard (try? reader.read(UInt32.self)) == recordMagic, let length = try? reader.read(UInt32.self),
                reader.remaining >= Int(length) + 8
            else { return nil }
            let start = bytes.count - reader.remaining
            let payload = Array(bytes[start..<(start + Int(length))])
            var after = WireReader(UnsafeRawBufferPointer(rebasing: raw[(start + Int(length))...]))
            guard (try? after.read(UInt64.self)) == payload.withUnsafeBytes({ fnv1a($0) }) else { return nil }
            return payload.withUnsafeBytes { body -> (Record, Int)? in
                var fields = WireReader(body)
                guard let kind = try? fields.read(UInt8.self), let n = try? fields.read(UInt64.self), n <= UInt64(count)
                else { return nil }
                var indices: [Int] = []
                if kind == 1 {
                    guard let first = try? fields.read(UInt64.self), first + n <= UInt64(count) else { return nil }
                    indices = Array(Int(first)..<Int(first + n))
                } else {
                    guard kind == 0, fields.remaining >= Int(n) * 8 else { return nil }
                    indices.reserveCapacity(Int(n))
                    for _ in 0..<n {
                        guard let index = try? fields.read(UInt64.self), index < UInt64(count) else { return nil }
                        indices.append(Int(index))
                    }
                }
                let outputs = Array(payload[(payload.count - fields.remaining)...])
                return (Record(indices: indices, outputs: outputs), start + Int(length) + 8)
            }
        }
    }

    private static func readAll(_ fd: Int32, path: String) throws(CheckpointError) -> [UInt8] {
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n < 0 {
                throw CheckpointError(.unusable, "cannot read the checkpoint \(path): \(String(cString: strerror(errno)))")
            }
            if n == 0 { return bytes }
            bytes += chunk[0..<n]
        }
    }

    static func writeAll(_ fd: Int32, _ bytes: [UInt8], path: String) throws(CheckpointError) {
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + offset, $0.count - offset) }
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

/// A 64-bit hash of bytes, eight at a time (FNV-1a's constants over little-endian words,
/// then the length): the journal's record checksum and its hashes of the work. Not a
/// cryptographic hash — it tells work apart and finds torn records.
func fnv1a(_ bytes: [UInt8], seed: UInt64 = 0xcbf2_9ce4_8422_2325) -> UInt64 {
    bytes.withUnsafeBytes { fnv1a($0, seed: seed) }
}

func fnv1a(_ raw: UnsafeRawBufferPointer, seed: UInt64 = 0xcbf2_9ce4_8422_2325) -> UInt64 {
    var hash = seed
    let words = raw.count / 8
    for index in 0..<words {
        hash ^= raw.loadUnaligned(fromByteOffset: index * 8, as: UInt64.self)
        hash &*= 0x0000_0100_0000_01b3
        hash ^= hash >> 29
    }
    for index in (words * 8)..<raw.count {
        hash ^= UInt64(raw[index])
        hash &*= 0x0000_0100_0000_01b3
    }
    hash ^= UInt64(raw.count)
    hash &*= 0x0000_0100_0000_01b3
    return hash ^ (hash >> 32)
}

/// `fnv1a` of four buffers of `length` bytes at offsets `a`, `b`, `c`, `d` of `raw`, computed
/// side by side (the same values as four `fnv1a` calls).
func fnv1a4(_ raw: UnsafeRawBufferPointer, _ a: Int, _ b: Int, _ c: Int, _ d: Int, length: Int) -> (UInt64, UInt64, UInt64, UInt64) {
    let prime: UInt64 = 0x0000_0100_0000_01b3
    var (h0, h1, h2, h3) = (UInt64(0xcbf2_9ce4_8422_2325), UInt64(0xcbf2_9ce4_8422_2325), UInt64(0xcbf2_9ce4_8422_2325), UInt64(0xcbf2_9ce4_8422_2325))
    let words = length / 8
    for word in 0..<words {
        let at = 8 * word
        h0 ^= raw.loadUnaligned(fromByteOffset: a + at, as: UInt64.self)
        h1 ^= raw.loadUnaligned(fromByteOffset: b + at, as: UInt64.self)
        h2 ^= raw.loadUnaligned(fromByteOffset: c + at, as: UInt64.self)
        h3 ^= raw.loadUnaligned(fromByteOffset: d + at, as: UInt64.self)
        h0 &*= prime
        h1 &*= prime
        h2 &*= prime
        h3 &*= prime
        h0 ^= h0 >> 29
        h1 ^= h1 >> 29
        h2 ^= h2 >> 29
        h3 ^= h3 >> 29
    }
    for at in (8 * words)..<length {
        h0 = (h0 ^ UInt64(raw[a + at])) &* prime
        h1 = (h1 ^ UInt64(raw[b + at])) &* prime
        h2 = (h2 ^ UInt64(raw[c + at])) &* prime
        h3 = (h3 ^ UInt64(raw[d + at])) &* prime
    }
    func finish(_ hash: UInt64) -> UInt64 {
        let hash = (hash ^ UInt64(length)) &* prime
        return hash ^ (hash >> 32)
    }
    return (finish(h0), finish(h1), finish(h2), finish(h3))
}

/// `fnv1a` of the concatenation of byte buffers added one after the other (the same value
/// as `fnv1a` of all of them copied into one; little-endian machines).
struct FNV1aHasher {
    private var hash: UInt64
    /// Bytes of a word not complete yet (the low `carried` bytes, little-endian).
    private var carry: UInt64 = 0
    private var carried = 0
    private var total = 0

    init(seed: UInt64 = 0xcbf2_9ce4_8422_2325) { hash = seed }

    mutating func add(_ raw: UnsafeRawBufferPointer) {
        total += raw.count
        var index = 0
        if carried > 0 {
            while carried < 8 && index < raw.count {
                carry |= UInt64(raw[index]) << (8 * UInt64(carried))
                carried += 1
                index += 1
            }
            guard carried == 8 else { return }
            mix(carry)
            carry = 0
            carried = 0
        }
        let words = (raw.count - index) / 8
        for word in 0..<words { mix(raw.loadUnaligned(fromByteOffset: index + 8 * word, as: UInt64.self)) }
        index += 8 * words
        while index < raw.count {
            carry |= UInt64(raw[index]) << (8 * UInt64(carried))
            carried += 1
            index += 1
        }
    }

    private mutating func mix(_ word: UInt64) {
        hash ^= word
        hash &*= 0x0000_0100_0000_01b3
        hash ^= hash >> 29
    }

    func finish() -> UInt64 {
        var hash = self.hash
        for byte in 0..<carried {
            hash ^= (carry >> (8 * UInt64(byte))) & 0xFF
            hash &*= 0x0000_0100_0000_01b3
        }
        hash ^= UInt64(total)
        hash &*= 0x0000_0100_0000_01b3
        return hash ^ (hash >> 32)
    }
}

/// A journal's writer thread: writes what it is handed (first the header, when it is to
/// compute it, then the records, each sealed with its checksum), flushes it to the disk a
/// second later at most, and at the end flushes and closes the file. It owns the descriptor.
///
/// Forks (`ForkGuard`): the thread is active while it runs code and lets go while it sleeps
/// and during its `write`s and `fsync`s; the threads that hand it work take its lock outside
/// their activity (`ForkGuard.whileBlocked`), so none waits for the lock while a fork waits
/// for it.
final class JournalWriter: @unchecked Sendable {
    private let descriptor: Int32
    private let path: String
    private let lock = ConditionLock()
    // Under `lock`.
    private var queued: [UInt8] = []
    /// A spare buffer to hand back to the journal (its capacity is reused).
    private var spare: [UInt8] = []
    private var finishing = false
    /// All is written and the file unlocked.
    private var released = false
    private var error: CheckpointError?
    // Writer thread only.
    private var unsynced: Bool
    private var lastSync = monotonicNanoseconds()
    /// The header of a new journal, to compute and write before any record.
    private var header: (@Sendable () throws(CheckpointError) -> [UInt8])?

    init(
        descriptor: Int32, path: String, unsynced: Bool, header: (@Sendable () throws(CheckpointError) -> [UInt8])? = nil
    ) {
        self.descriptor = descriptor
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

    /// What the writer could not write (the call fails with it).
    var failure: CheckpointError? { ForkGuard.whileBlocked { lock.withLock { error } } }

    /// Queues `bytes` to be written; returns an empty buffer to fill next.
    func submit(_ bytes: [UInt8]) -> [UInt8] {
        ForkGuard.whileBlocked {
            lock.withLock {
                defer { lock.broadcast() }
                if queued.isEmpty {
                    queued = bytes
                    var next = spare
                    spare = []
                    next.removeAll(keepingCapacity: true)
                    return next
                }
                queued += bytes
                var next = bytes
                next.removeAll(keepingCapacity: true)
                return next
            }
        }
    }

    /// Queues the last bytes, waits until all is written, unlocks the file; the thread then
    /// flushes it to the disk and closes it.
    func finish(_ bytes: [UInt8]) {
        ForkGuard.whileBlocked {
            lock.withLock {
                queued += bytes
                finishing = true
                lock.broadcast()
                while !released { _ = lock.wait(until: nil) }
            }
        }
    }

    /// A blocking system call outside this thread's activity.
    private func outside<T, E>(_ body: () throws(E) -> T) throws(E) -> T {
        ForkGuard.leaveActivity()
        defer { ForkGuard.enterActivity() }
        return try body()
    }

    private func run() {
        if let header {
            self.header = nil
            do throws(CheckpointError) {
                let bytes = try header()
                try outside { () throws(CheckpointError) in try CheckpointJournal.writeAll(descriptor, bytes, path: path) }
            } catch {
                lock.withLock { if self.error == nil { self.error = error } }
            }
        }
        var batch: [UInt8] = []
        while true {
            let finished: Bool = lock.withLock {
                if !batch.isEmpty {
                    batch.removeAll(keepingCapacity: true)
                    if spare.capacity < batch.capacity { swap(&spare, &batch) }
                }
                while queued.isEmpty && !finishing {
                    let due = unsynced ? lastSync &+ CheckpointJournal.syncInterval : nil
                    if let due, monotonicNanoseconds() >= due { break }
                    _ = outside { lock.wait(until: due) }
                }
                swap(&batch, &queued)
                return finishing && batch.isEmpty
            }
            if finished {
                // The next run may open it now (it reads what was written; the flush to the
                // disk goes on here, on this open file).
                _ = flock(descriptor, LOCK_UN)
                lock.withLock {
                    released = true
                    lock.broadcast()
                }
                outside {
                    if unsynced { _ = fsync(descriptor) }
                    _ = Glibc.close(descriptor)
                }
                return
            }
            // Nothing more is written after a failure (a journal without its header, or with a
            // gap, would be read wrong).
            if !batch.isEmpty, lock.withLock({ error == nil }) {
                CheckpointJournal.sealRecords(&batch)
                let written: Result<Void, CheckpointError> = outside {
                    do throws(CheckpointError) {
                        try CheckpointJournal.writeAll(descriptor, batch, path: path)
                        return .success(())
                    } catch {
                        return .failure(error)
                    }
                }
                switch written {
                case .success: unsynced = true
                case .failure(let error): lock.withLock { if self.error == nil { self.error = error } }
                }
            }
            if unsynced && monotonicNanoseconds() &- lastSync >= CheckpointJournal.syncInterval {
                _ = outside { fsync(descriptor) }
                unsynced = false
                lastSync = monotonicNanoseconds()
            }
        }
    }
}

private func hex(_ value: UInt64) -> String { String(value, radix: 16) }

/// A checkpoint journal that cannot be used for this call.
public struct CheckpointError: Error, CustomStringConvertible, Sendable, Equatable {
    public enum Code: Sendable, Equatable {
        /// The journal records other work (another function value, other inputs).
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
