#if MPI
import Wire

/// Relay messages of one pool gathered into one MPI message (ARCHITECTURE.md §8): rank 0
/// gathers what its engine sends a worker rank in one round (`MPIBackend`), a worker rank what
/// its local workers answered in one pass (`RankRelay`). One MPI message then carries many
/// tasks or results, so the per-message costs of MPI (a send request, a probe, a receive on
/// each side) are paid once per batch rather than once per task; nothing waits to fill a
/// batch — it goes at the end of the round that produced it.
///
/// Layout: an envelope of kind `RelayBatch.kind` (the pool, and the number of messages in the
/// local-worker field), then for each message its length (`UInt32`) and its bytes (its own
/// envelope and body). A batch of one is sent as that message alone.
struct RelayBatch {
    /// The envelope kind of a batch, in both directions (`RelayEnvelope.Down`/`Up` leave it free).
    static let kind: UInt8 = 6
    static let lengthSize = 4

    var pool: UInt16
    /// A batch is sent before it would grow past this many bytes: Open MPI delivers a message
    /// within its eager limit whole as soon as it is matched (`MPIService.shortMessageBytes`).
    let limit: Int
    private var writer: WireWriter
    private(set) var count = 0

    init(pool: UInt16, limit: Int) {
        self.pool = pool
        self.limit = limit
        writer = WireWriter(capacity: limit + RelayEnvelope.size)
    }

    var isEmpty: Bool { count == 0 }

    /// Whether `bytes` more would push the batch past its limit (a lone message may be
    /// longer: it is sent alone).
    func wouldOverflow(adding bytes: Int) -> Bool {
        count > 0 && writer.count + Self.lengthSize + bytes > limit
    }

    /// Adds a message (its envelope and body).
    mutating func append(_ message: UnsafeRawBufferPointer) {
        begin(length: message.count)
        writer.writeRaw(message)
    }

    /// Adds a message given as its envelope (`RelayEnvelope.word`) and body.
    mutating func append(envelope: UInt64, body: UnsafeRawBufferPointer) {
        begin(length: RelayEnvelope.size + body.count)
        writer.write(envelope)
        writer.writeRaw(body)
    }

    private mutating func begin(length: Int) {
        if count == 0 {
            writer.bytes.removeAll(keepingCapacity: true)
            writer.write(UInt64(0))
        }
        writer.write(UInt32(length))
        count += 1
    }

    /// Calls `send` with what to send — the lone message as it is, or the batch — and empties
    /// the batch (also when `send` throws). Does nothing when it is empty.
    mutating func flush(_ send: (UnsafeRawBufferPointer) throws -> Void) rethrows {
        guard count > 0 else { return }
        let lone = count == 1
        count = 0
        if lone {
            try writer.bytes.withUnsafeBytes { try send(UnsafeRawBufferPointer(rebasing: $0[(RelayEnvelope.size + Self.lengthSize)...])) }
        } else {
            writer.patch(RelayEnvelope.word(Self.kind, pool: pool, local: 0), at: 0)
            try writer.bytes.withUnsafeBytes(send)
        }
    }

    /// Calls `body` with each message of `batch` (a whole batch message, envelope included),
    /// in order; the messages may be changed in place. Throws if a length runs past the end.
    static func forEach(
        in batch: UnsafeMutableRawBufferPointer,
        _ body: (UnsafeMutableRawBufferPointer) throws -> Void
    ) throws {
        var offset = RelayEnvelope.size
        while offset < batch.count {
            guard batch.count - offset >= lengthSize else { throw RelayBatchError.truncated(at: offset) }
            let length = Int(UInt32(littleEndian: batch.loadUnaligned(fromByteOffset: offset, as: UInt32.self)))
            offset += lengthSize
            guard length <= batch.count - offset else { throw RelayBatchError.truncated(at: offset) }
            try body(UnsafeMutableRawBufferPointer(rebasing: batch[offset..<(offset + length)]))
            offset += length
        }
    }

    /// The read-only form of `forEach(in:_:)`.
    static func forEach(in batch: UnsafeRawBufferPointer, _ body: (UnsafeRawBufferPointer) throws -> Void) throws {
        try forEach(in: UnsafeMutableRawBufferPointer(mutating: batch)) { try body(UnsafeRawBufferPointer($0)) }
    }
}

enum RelayBatchError: Error, CustomStringConvertible {
    case truncated(at: Int)

    var description: String {
        switch self {
        case .truncated(let offset): return "a relay batch ends inside a message (at byte \(offset))"
        }
    }
}
#endif
