import Wire

/// A served `SharedValue` (bytes read and written whole) or `SharedArray` (the same, or a
/// range of elements). Their locks are separate served locks; reads and writes never wait.
final class ServedValue: ServedState {
    static let kind = ServedKind.value

    private(set) var bytes: [UInt8]

    init(bytes: [UInt8]) { self.bytes = bytes }

    enum Request: Equatable {
        case read
        case write([UInt8])
        case readRange(offset: Int, count: Int)
        case writeRange(offset: Int, [UInt8])
    }

    enum Reply: Equatable {
        case bytes([UInt8])
        case done
        /// Another size or a range outside the bytes (another type?): why.
        case refused(String)
    }

    private func outOfRange(_ offset: Int, _ count: Int) -> Reply {
        .refused("bytes \(offset)..<\(offset + count) are outside a served array of \(bytes.count) bytes (another type?)")
    }

    func attempt(_ request: inout Request, from _: Requester) -> ServedOutcome<Reply> {
        switch request {
        case .read:
            return .reply(.bytes(bytes))
        case .write(let new):
            guard new.count == bytes.count else {
                return .reply(.refused("a shared value of \(bytes.count) bytes cannot take \(new.count) bytes (another type?)"))
            }
            bytes = new
            return .reply(.done)
        case .readRange(let offset, let count):
            guard offset >= 0, count >= 0, offset <= bytes.count - count else { return .reply(outOfRange(offset, count)) }
            return .reply(.bytes(Array(bytes[offset..<(offset + count)])))
        case .writeRange(let offset, let new):
            guard offset >= 0, offset <= bytes.count - new.count else { return .reply(outOfRange(offset, new.count)) }
            bytes.replaceSubrange(offset..<(offset + new.count), with: new)
            return .reply(.done)
        }
    }

    func expire(_ request: Request, from requester: Requester) -> Reply {
        var request = request
        guard case .reply(let reply) = attempt(&request, from: requester) else { return .refused("no answer") }
        return reply
    }

    static func encode(_ request: Request, into writer: inout WireWriter) {
        switch request {
        case .read: writer.write(UInt8(0))
        case .write(let bytes):
            writer.write(UInt8(1))
            writer.writeBytes(bytes)
        case .readRange(let offset, let count):
            writer.write(UInt8(2))
            writer.write(Int64(offset))
            writer.write(Int64(count))
        case .writeRange(let offset, let bytes):
            writer.write(UInt8(3))
            writer.write(Int64(offset))
            writer.writeBytes(bytes)
        }
    }

    static func decodeRequest(_ reader: inout WireReader) throws(WireError) -> Request {
        switch try reader.read(UInt8.self) {
        case 0: return .read
        case 1: return .write(try reader.readBytes())
        case 2:
            let offset = Int(try reader.read(Int64.self))
            return .readRange(offset: offset, count: Int(try reader.read(Int64.self)))
        case 3:
            let offset = Int(try reader.read(Int64.self))
            return .writeRange(offset: offset, try reader.readBytes())
        default: throw WireError.corrupt("unknown value request")
        }
    }

    static func encode(_ reply: Reply, into writer: inout WireWriter) {
        switch reply {
        case .bytes(let bytes):
            writer.write(UInt8(0))
            writer.writeBytes(bytes)
        case .done: writer.write(UInt8(1))
        case .refused(let message):
            writer.write(UInt8(2))
            writer.write(message)
        }
    }

    static func decodeReply(_ reader: inout WireReader) throws(WireError) -> Reply {
        switch try reader.read(UInt8.self) {
        case 0: .bytes(try reader.readBytes())
        case 1: .done
        case 2: .refused(try reader.read(String.self))
        default: throw WireError.corrupt("unknown value reply")
        }
    }
}

/// `SharedValue`'s and `SharedArray`'s storage when rank 0 serves them: the bytes live in
/// rank 0's registry and are read and written by messages from worker ranks — whole, or (an
/// array's elements) a range at a time; the object's `Lock` (a served lock too) makes a
/// read-modify-write atomic. Every single read or write is atomic by itself.
@usableFromInline
struct MPIServedValue: Sendable {
    let object: MPIServedObject

    init(bytes: [UInt8]) {
        object = .serve(ServedValue(bytes: bytes))
    }

    init(id: UInt64) {
        object = MPIServedObject(decoded: id)
    }

    /// Runs `request`; a failure ends the job (the accessors cannot throw), with the reason.
    private func perform(_ request: ServedValue.Request) -> ServedValue.Reply {
        object.orAbort(reading: "shared value") {
            let reply = try object.perform(ServedValue.self, request)
            if case .refused(let message) = reply { throw MPIObjectError(.notServed, message) }
            return reply
        }
    }

    private func read(_ request: ServedValue.Request) -> [UInt8] {
        guard case .bytes(let bytes) = perform(request) else {
            MPIObjectClient.abort(MPIObjectError(.transport, "rank 0 did not answer a shared value's read with its bytes"))
        }
        return bytes
    }

    /// The value; a worker that cannot reach rank 0 ends the job (the accessors cannot throw).
    @usableFromInline
    func load<T: BitwiseCopyable>(_: T.Type) -> T {
        let bytes = read(.read)
        guard bytes.count == MemoryLayout<T>.size else {
            MPIObjectClient.abort(
                MPIObjectError(
                    .notServed,
                    "rank 0 holds \(bytes.count) bytes for a SharedValue<\(T.self)> "
                        + "of \(MemoryLayout<T>.size) bytes"))
        }
        return bytes.withUnsafeBytes { $0.loadUnaligned(as: T.self) }
    }

    @usableFromInline
    func store<T: BitwiseCopyable>(_ value: T) {
        _ = perform(.write(withUnsafeBytes(of: value) { Array($0) }))
    }

    /// The bytes `offset..<offset + count`.
    func readBytes(offset: Int, count: Int) -> [UInt8] {
        let bytes = read(.readRange(offset: offset, count: count))
        guard bytes.count == count else {
            MPIObjectClient.abort(MPIObjectError(.notServed, "rank 0 sent \(bytes.count) bytes of a served array, not \(count)"))
        }
        return bytes
    }

    /// Replaces the bytes from `offset` with `bytes`.
    func writeBytes(offset: Int, _ bytes: UnsafeRawBufferPointer) {
        _ = perform(.writeRange(offset: offset, Array(bytes)))
    }

    /// Element `index` of an array of `T`.
    @usableFromInline
    func element<T: BitwiseCopyable>(_ index: Int, as _: T.Type) -> T {
        readBytes(offset: index * MemoryLayout<T>.stride, count: MemoryLayout<T>.size).withUnsafeBytes { $0.loadUnaligned(as: T.self) }
    }

    @usableFromInline
    func setElement<T: BitwiseCopyable>(_ index: Int, _ value: T) {
        withUnsafeBytes(of: value) { writeBytes(offset: index * MemoryLayout<T>.stride, $0) }
    }

    /// Runs `body` on a copy of all `count` elements, then writes back what it changed
    /// (the caller holds the array's lock).
    @usableFromInline
    func withElements<T: BitwiseCopyable, R, E: Error>(
        _: T.Type, count: Int,
        _ body: (UnsafeMutableBufferPointer<T>) throws(E) -> R
    ) throws(E) -> R {
        let size = count * MemoryLayout<T>.stride
        let before = readBytes(offset: 0, count: size)
        let buffer = UnsafeMutableBufferPointer<T>.allocate(capacity: Swift.max(count, 1))
        defer { buffer.deallocate() }
        let raw = UnsafeMutableRawBufferPointer(buffer)
        before.withUnsafeBytes { raw.copyMemory(from: $0) }
        defer {
            let after = UnsafeRawBufferPointer(rebasing: raw[0..<size])
            if !after.elementsEqual(before) { writeBytes(offset: 0, after) }
        }
        return try body(UnsafeMutableBufferPointer(rebasing: buffer[0..<count]))
    }
}
