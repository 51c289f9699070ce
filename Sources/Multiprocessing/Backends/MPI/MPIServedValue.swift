/// `SharedValue`'s storage when rank 0 serves it: the value's bytes live in rank 0's registry
/// and are read and written whole, by messages from worker ranks; the value's `Lock` (a
/// served lock too) makes a read-modify-write atomic.
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
        let bytes: [UInt8]
        do {
            bytes = object.isLocal ? try MPIObjectRegistry.shared.valueRead(object.id) : try object.call(.valueRead).payload
        } catch {
            MPIObjectClient.abort(error)
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
        do {
            if object.isLocal {
                try MPIObjectRegistry.shared.valueWrite(object.id, bytes)
            } else {
                _ = try bytes.withUnsafeBytes { try object.call(.valueWrite, payload: $0) }
            }
        } catch let error as MPIObjectError {
            MPIObjectClient.abort(error)
        } catch {
            MPIObjectClient.abort(MPIObjectError(.transport, "\(error)"))
        }
    }
}
