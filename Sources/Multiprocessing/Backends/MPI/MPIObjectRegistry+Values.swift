/// Rank 0's served values (`SharedValue`): bytes read and written whole. Their locks are
/// separate served locks; reads and writes never wait.
extension MPIObjectRegistry {
    func makeValue(_ bytes: [UInt8]) -> UInt64 {
        lock.withLock { () -> UInt64 in
            let id = newID()
            values[id] = bytes
            return id
        }
    }

    func valueRead(_ id: UInt64) throws(MPIObjectError) -> [UInt8] {
        lock.lock()
        defer { lock.unlock() }
        guard let bytes = values[id] else { throw unknown("shared value", id) }
        return bytes
    }

    func valueWrite(_ id: UInt64, _ bytes: [UInt8]) throws(MPIObjectError) {
        lock.lock()
        defer { lock.unlock() }
        guard let old = values[id] else { throw unknown("shared value", id) }
        guard old.count == bytes.count else {
            throw MPIObjectError(.notServed, "a shared value of \(old.count) bytes cannot take \(bytes.count) bytes (another type?)")
        }
        values[id] = bytes
    }

    /// Under `lock`: a worker's read or write.
    func attemptValue(_ entry: Parked) -> [UInt8] {
        guard let old = values[entry.id] else { return unknownReply("shared value", entry.id) }
        if entry.op == .valueRead { return MPIObjectProtocol.reply(.ok, old) }
        guard old.count == entry.payload.count else {
            return MPIObjectProtocol.failure(.failed, "a shared value of \(old.count) bytes cannot take \(entry.payload.count) bytes")
        }
        values[entry.id] = entry.payload
        return MPIObjectProtocol.reply(.ok)
    }
}
