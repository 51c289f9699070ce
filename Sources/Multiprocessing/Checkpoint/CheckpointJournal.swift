#if canImport(Glibc)
import Glibc
#endif

/// A map's results on disk, so that a run killed midway (SIGKILL, node lost, wall-time
/// limit) is resumed by running the same program again: `map(…, checkpoint: path)`.
///
/// The file starts with a header naming the work — the function's type, a hash of the
/// function value and a hash of all the inputs, and their count — so a journal of other
/// work is refused with a clear error. Then one record per finished chunk: the inputs'
/// positions and their encoded outputs, with a checksum. Records are written with
/// `write(2)` at most 0.1 s after their results arrive (a killed process loses at most the
/// last 0.1 s of results, which run again) and flushed to the disk (`fsync`) at most once a
/// second and at the end (a machine that loses power loses at most the last second).
/// A torn last record is dropped when the journal is read. The journal is locked
/// (`flock`) while a run uses it.
final class CheckpointJournal {
    static let magic: [UInt8] = Array("SWMPCKP1".utf8)
    static let recordMagic: UInt32 = 0x4443_4552  // "RECD"
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
    private var descriptor: Int32
    private var lastSync: UInt64 = monotonicNanoseconds()
    private var lastWrite: UInt64 = 0
    private var unsynced = false
    /// Records not written yet (at most `writeInterval` old, see `append`).
    private var pending = WireWriter(capacity: 1 << 16)
    /// Records arriving less than this long after the last write wait (ns) — one `write(2)`
    /// per chunk would cost more than tiny tasks.
    static let writeInterval: UInt64 = 100_000_000

    /// Opens (or creates) the journal at `path` for `work`; returns it and the records a
    /// previous run left. Throws `CheckpointError` for a journal of other work, one in use,
    /// or a file that cannot be used.
    static func open(path: String, work: Work) throws(CheckpointError) -> (CheckpointJournal, [Record]) {
        let fd = Glibc.open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else {
            throw CheckpointError(.unusable, "cannot open the checkpoint \(path): \(String(cString: strerror(errno))); "
                + "choose a writable path")
        }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            let reason = errno
            Glibc.close(fd)
            throw CheckpointError(.inUse, reason == EWOULDBLOCK
                ? "the checkpoint \(path) is in use by another run; wait for it or use another path"
                : "cannot lock the checkpoint \(path): \(String(cString: strerror(reason)))")
        }
        do throws(CheckpointError) {
            let bytes = try readAll(fd, path: path)
            let header = encodeHeader(work)
            if bytes.isEmpty {
                try writeAll(fd, header, path: path)
                _ = fsync(fd)
                return (CheckpointJournal(path: path, descriptor: fd), [])
            }
            guard let found = decodeHeader(bytes) else {
                throw CheckpointError(.otherWork, "\(path) is not a checkpoint journal of this library; delete it or choose "
                    + "another path")
            }
            guard found.work == work else {
                throw CheckpointError(.otherWork, """
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
            return (CheckpointJournal(path: path, descriptor: fd), records)
        } catch {
            Glibc.close(fd)
            throw error
        }
    }

    private init(path: String, descriptor: Int32) {
        self.path = path
        self.descriptor = descriptor
    }

    deinit { close() }

    /// Writes, flushes, unlocks and closes the journal (the call ended); later appends are ignored.
    func close() {
        guard descriptor >= 0 else { return }
        try? writePending()
        sync()
        Glibc.close(descriptor)
        descriptor = -1
    }

    /// Appends a record. It is written at once when the last write is `writeInterval` old,
    /// else with the next record that is, or by `flushIfDue`; flushed to the disk when the
    /// last flush is a second old.
    func append(indices: Positions, outputs: UnsafeRawBufferPointer) throws(CheckpointError) {
        guard descriptor >= 0 else { return }
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
        let length = pending.count - start
        pending.patch(UInt32(length), at: lengthAt)
        let checksum = pending.bytes.withUnsafeBytes { fnv1a(UnsafeRawBufferPointer(rebasing: $0[start..<(start + length)])) }
        pending.write(checksum)
        try flushIfDue()
    }

    /// The input positions of a record: consecutive (a fresh run) or listed (a resumed one).
    enum Positions {
        case range(Range<Int>)
        case list([Int])
    }

    /// Writes the waiting records if the last write is `writeInterval` old (the engine calls
    /// this every round, so no record waits much longer than that).
    func flushIfDue(now: UInt64 = monotonicNanoseconds()) throws(CheckpointError) {
        guard descriptor >= 0, pending.count > 0, now &- lastWrite >= Self.writeInterval || pending.count >= 1 << 20
        else { return }
        try writePending(now: now)
        if now &- lastSync >= Self.syncInterval { sync(now: now) }
    }

    /// Writes the waiting records now (not flushed to the disk): a checkpointed stream calls
    /// it before its consumer waits for the next result.
    func writeNow() throws(CheckpointError) {
        guard descriptor >= 0 else { return }
        try writePending()
        if monotonicNanoseconds() &- lastSync >= Self.syncInterval { sync() }
    }

    private func writePending(now: UInt64 = monotonicNanoseconds()) throws(CheckpointError) {
        guard pending.count > 0 else { return }
        try Self.writeAll(descriptor, pending.bytes, path: path)
        pending.bytes.removeAll(keepingCapacity: true)
        lastWrite = now
        unsynced = true
    }

    /// Flushes what was written to the disk.
    func sync(now: UInt64 = monotonicNanoseconds()) {
        guard unsynced, descriptor >= 0 else { return }
        _ = fsync(descriptor)
        unsynced = false
        lastSync = now
    }

    // MARK: format

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
            return (Work(typeName: name, functionHash: function, inputsHash: inputs, count: Int(count)),
                    bytes.count - reader.remaining)
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

    private static func writeAll(_ fd: Int32, _ bytes: [UInt8], path: String) throws(CheckpointError) {
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + offset, $0.count - offset) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 {
                throw CheckpointError(.unusable, "cannot write the checkpoint \(path): \(String(cString: strerror(errno))); "
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
