import Wire

/// `SharedValue`'s and `SharedArray`'s storage when rank 0 serves them: the bytes live in
/// rank 0's registry and are read and written by messages from worker ranks — whole, or (an
/// array's elements) a range at a time; the object's `Lock` (a served lock too) makes a
/// read-modify-write atomic. Every single read or write is atomic by itself.
@usableFromInline
struct MPIServedValue: Sendable {
    let object: MPIServedObject

    init(bytes: [UInt8]) {
        object = MPIServedObject(id: MPIObjectRegistry.shared.makeValue(bytes))
    }

    init(id: UInt64) {
        object = MPIServedObject(id: id)
    }

    /// The value; a worker that cannot reach rank 0 ends the job (the accessors cannot throw).
    @usableFromInline
    func load<T: BitwiseCopyable>(_: T.Type) -> T {
        let bytes = perform { () throws -> [UInt8] in
            object.isLocal ? try MPIObjectRegistry.shared.valueRead(object.id) : try object.call(.valueRead).payload
        }
        guard bytes.count == MemoryLayout<T>.size else {
            MPIObjectClient.abort(MPIObjectError(.notServed, "rank 0 holds \(bytes.count) bytes for a SharedValue<\(T.self)> "
                + "of \(MemoryLayout<T>.size) bytes"))
        }
        return bytes.withUnsafeBytes { $0.loadUnaligned(as: T.self) }
    }

    @usableFromInline
    func store<T: BitwiseCopyable>(_ value: T) {
        let bytes = withUnsafeBytes(of: value) { Array($0) }
        perform { () throws in
            if object.isLocal {
                try MPIObjectRegistry.shared.valueWrite(object.id, bytes)
            } else {
                _ = try bytes.withUnsafeBytes { raw in try object.call(.valueWrite, payload: raw) }
            }
        }
    }

    /// The bytes `offset..<offset + count`.
    func readBytes(offset: Int, count: Int) -> [UInt8] {
        perform { () throws -> [UInt8] in
            if object.isLocal { return try MPIObjectRegistry.shared.valueReadRange(object.id, offset: offset, count: count) }
            var writer = WireWriter(capacity: 16)
            writer.write(Int64(offset))
            writer.write(Int64(count))
            let reply = try writer.bytes.withUnsafeBytes { raw in try object.call(.valueReadRange, payload: raw) }
            guard reply.payload.count == count else {
                throw MPIObjectError(.notServed, "rank 0 sent \(reply.payload.count) bytes of a served array, not \(count)")
            }
            return reply.payload
        }
    }

    /// Replaces the bytes from `offset` with `bytes`.
    func writeBytes(offset: Int, _ bytes: UnsafeRawBufferPointer) {
        perform { () throws in
            if object.isLocal { return try MPIObjectRegistry.shared.valueWriteRange(object.id, offset: offset, Array(bytes)) }
            var writer = WireWriter(capacity: 16 + bytes.count)
            writer.write(Int64(offset))
            writer.write(Int64(bytes.count))
            writer.writeRaw(bytes)
            _ = try writer.bytes.withUnsafeBytes { raw in try object.call(.valueWriteRange, payload: raw) }
        }
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
    func withElements<T: BitwiseCopyable, R, E: Error>(_: T.Type, count: Int,
                                                       _ body: (UnsafeMutableBufferPointer<T>) throws(E) -> R) throws(E) -> R {
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

    /// Runs `body`; a failure ends the job (the accessors cannot throw), with the reason.
    private func perform<R>(_ body: () throws -> R) -> R {
        object.orAbort(reading: "shared value", body)
    }
}
