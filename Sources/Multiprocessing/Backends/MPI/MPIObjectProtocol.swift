import Wire

/// The messages of the MPI object service (ARCHITECTURE.md §8: shared objects across ranks are
/// served by messages from rank 0, not one-sided windows).
///
/// A worker rank's task sends one request to rank 0 on `requestTag` and waits for the one
/// answer on `replyTag` (both on the job's duplicated world communicator, so they never mix
/// with the pool's messages on `MPIProtocol.poolTag`). Rank 0's MPI thread answers; a request
/// that cannot be satisfied yet (an empty queue, a held lock, an unset event) is parked there
/// and answered when it can be, or when its timeout passes — the worker never polls rank 0.
///
/// Request (version 2): version (UInt8), the requester's local id (UInt64: 0 for the rank
/// itself, else the local worker process of that rank that asks), handle counts (UInt32 n,
/// then n × object id (UInt64) and change (Int32): the retains (+1), releases (-1) and
/// pins (0: a handle was encoded) of the requester's handles, applied before the request), the object's kind (UInt8,
/// `ServedKind`; `.none`: only counts), object id (UInt64), timeout in seconds (Double;
/// negative: none, 0: do not wait), then the kind's request (`ServedState.encode`).
///
/// Reply (version 2): version (UInt8), the requester's local id (UInt64, so that a rank can
/// hand the reply to its local worker), `Status` (UInt8), then length-prefixed bytes: for
/// `.ok` the kind's reply, for `.failed` a message (the object is unknown or freed, the
/// request unreadable, no MPI pool to answer).
///
/// Undelivered (a worker rank to rank 0, on `undeliveredTag`): an `.ok` reply the rank's
/// local worker never read, because it died first (`RelayedObjectRequests`), so that rank 0
/// gives back what it handed over (`ServedState.undo`): the local worker's name (`UInt32`,
/// `ObjectRequester.local`), the request's length (`UInt32`), the request and the reply, as
/// they travelled.
enum MPIObjectProtocol {
    static let requestTag = 3
    static let replyTag = 4
    static let undeliveredTag = 5

    /// Whether rank 0 receives a message of `tag` whole as it arrives (the service's own):
    /// a pool's long messages are received while the pool goes on.
    static func isReceivedWhole(_ tag: Int) -> Bool { tag == requestTag || tag == undeliveredTag }
    static let version: UInt8 = 2

    enum Status: UInt8 {
        case ok = 0
        /// The service cannot answer (unknown object, the MPI pool ended).
        case failed = 3
    }

    struct Request {
        var local: UInt64
        var counts: [(id: UInt64, delta: Int32)]
        var kind: ServedKind
        var id: UInt64
        /// Seconds; negative: none.
        var timeout: Double

        /// The header; the kind's request follows it (left in `reader`).
        static func decode(_ reader: inout WireReader) throws(WireError) -> Request {
            let version = try reader.read(UInt8.self)
            guard version == MPIObjectProtocol.version else {
                throw WireError.corrupt(
                    "object request of version \(version), rank 0 reads version \(MPIObjectProtocol.version) "
                        + "(every rank must run the same build)")
            }
            let local = try reader.read(UInt64.self)
            let n = Int(try reader.read(UInt32.self))
            guard n <= reader.remaining / 12 else { throw WireError.corrupt("\(n) handle counts") }
            var counts: [(UInt64, Int32)] = []
            counts.reserveCapacity(n)
            for _ in 0..<n { counts.append((try reader.read(UInt64.self), try reader.read(Int32.self))) }
            guard let kind = ServedKind(rawValue: try reader.read(UInt8.self)) else {
                throw WireError.corrupt("unknown object kind (another build?)")
            }
            return Request(
                local: local, counts: counts, kind: kind, id: try reader.read(UInt64.self),
                timeout: try reader.read(Double.self))
        }

        func encode(body: [UInt8]) -> [UInt8] {
            var writer = WireWriter(capacity: 40 + counts.count * 12 + body.count)
            writer.write(MPIObjectProtocol.version)
            writer.write(local)
            writer.write(UInt32(counts.count))
            for (id, delta) in counts {
                writer.write(id)
                writer.write(delta)
            }
            writer.write(kind.rawValue)
            writer.write(id)
            writer.write(timeout)
            body.withUnsafeBytes { writer.writeRaw($0) }
            return writer.bytes
        }
    }

    static func reply(_ status: Status, _ payload: [UInt8] = [], local: UInt64 = 0) -> [UInt8] {
        var writer = WireWriter(capacity: 24 + payload.count)
        writer.write(version)
        writer.write(local)
        writer.write(status.rawValue)
        payload.withUnsafeBytes { writer.writeLengthPrefixed($0) }
        return writer.bytes
    }

    static func failure(_ status: Status, _ message: String, local: UInt64 = 0) -> [UInt8] {
        reply(status, Array(message.utf8), local: local)
    }

    static func undelivered(by local: UInt32, request: [UInt8], reply: [UInt8]) -> [UInt8] {
        var writer = WireWriter(capacity: 8 + request.count + reply.count)
        writer.write(local)
        writer.write(UInt32(request.count))
        request.withUnsafeBytes { writer.writeRaw($0) }
        reply.withUnsafeBytes { writer.writeRaw($0) }
        return writer.bytes
    }

    /// An undelivered message's parts (nil if it is too short for what it says).
    static func readUndelivered(_ bytes: UnsafeRawBufferPointer)
        -> (local: UInt32, request: UnsafeRawBufferPointer, reply: UnsafeRawBufferPointer)?
    {
        guard bytes.count >= 8 else { return nil }
        let local = UInt32(littleEndian: bytes.loadUnaligned(as: UInt32.self))
        let length = Int(UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: 4, as: UInt32.self)))
        guard length <= bytes.count - 8 else { return nil }
        return (
            local, UnsafeRawBufferPointer(rebasing: bytes[8..<(8 + length)]),
            UnsafeRawBufferPointer(rebasing: bytes[(8 + length)...])
        )
    }

    /// Whether `reply` says `.ok` (it may hand something over), without reading it all.
    static func isOK(_ reply: UnsafeRawBufferPointer) -> Bool {
        reply.count > 9 && reply[0] == version && reply[9] == Status.ok.rawValue
    }

    /// A reply's status and payload.
    static func readReply(_ bytes: [UInt8]) throws(WireError) -> (local: UInt64, status: Status, payload: [UInt8]) {
        let outcome = bytes.withUnsafeBytes { raw in
            Result { () throws(WireError) -> (local: UInt64, status: Status, payload: [UInt8]) in
                var reader = WireReader(raw)
                let version = try reader.read(UInt8.self)
                guard version == MPIObjectProtocol.version else {
                    throw WireError.corrupt("object reply of version \(version), expected \(MPIObjectProtocol.version) (another build?)")
                }
                let local = try reader.read(UInt64.self)
                guard let status = Status(rawValue: try reader.read(UInt8.self)) else { throw WireError.corrupt("unknown status") }
                return (local, status, try reader.readBytes())
            }
        }
        return try outcome.get()
    }
}
