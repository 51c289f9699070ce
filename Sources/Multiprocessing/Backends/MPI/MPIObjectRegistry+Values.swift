import Wire

/// Rank 0's served values (`SharedValue`: bytes read and written whole) and arrays
/// (`SharedArray`: the same, or a range of elements). Their locks are separate served locks;
/// reads and writes never wait.
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

    /// The bytes `offset..<offset + count` of a value.
    func valueReadRange(_ id: UInt64, offset: Int, count: Int) throws(MPIObjectError) -> [UInt8] {
        lock.lock()
        defer { lock.unlock() }
        guard let bytes = values[id] else { throw unknown("shared value", id) }
        guard offset >= 0, count >= 0, offset <= bytes.count - count else { throw outOfRange(offset, count, bytes.count) }
        return Array(bytes[offset..<(offset + count)])
    }

    /// Replaces the bytes from `offset` with `bytes`.
    func valueWriteRange(_ id: UInt64, offset: Int, _ bytes: [UInt8]) throws(MPIObjectError) {
        lock.lock()
        defer { lock.unlock() }
        guard values[id] != nil else { throw unknown("shared value", id) }
        try writeRange(id, offset, bytes[...])
    }

    private func outOfRange(_ offset: Int, _ count: Int, _ size: Int) -> MPIObjectError {
        MPIObjectError(.notServed, "bytes \(offset)..<\(offset + count) are outside a served array of \(size) bytes (another type?)")
    }

    /// Under `lock`.
    private func writeRange(_ id: UInt64, _ offset: Int, _ bytes: ArraySlice<UInt8>) throws(MPIObjectError) {
        let size = values[id]!.count
        guard offset >= 0, offset <= size - bytes.count else { throw outOfRange(offset, bytes.count, size) }
        values[id]!.replaceSubrange(offset..<(offset + bytes.count), with: bytes)
    }

    /// Under `lock`: a worker's read or write.
    func attemptValue(_ entry: Parked) -> [UInt8] {
        guard let old = values[entry.id] else { return unknownReply("shared value", entry.id) }
        if entry.op == .valueRead { return MPIObjectProtocol.reply(.ok, old) }
        if entry.op == .valueReadRange || entry.op == .valueWriteRange {
            do {
                let (offset, length) = try entry.payload.withUnsafeBytes { raw throws -> (Int, Int) in
                    var reader = WireReader(raw)
                    return (Int(try reader.read(Int64.self)), Int(try reader.read(Int64.self)))
                }
                if entry.op == .valueReadRange {
                    guard offset >= 0, length >= 0, offset <= old.count - length else {
                        return MPIObjectProtocol.failure(.failed, outOfRange(offset, length, old.count).message)
                    }
                    return MPIObjectProtocol.reply(.ok, Array(old[offset..<(offset + length)]))
                }
                try writeRange(entry.id, offset, entry.payload[16...])
                return MPIObjectProtocol.reply(.ok)
            } catch {
                return MPIObjectProtocol.failure(.failed, "a served array request cannot be done: \(error)")
            }
        }
        guard old.count == entry.payload.count else {
            return MPIObjectProtocol.failure(.failed, "a shared value of \(old.count) bytes cannot take \(entry.payload.count) bytes")
        }
        values[entry.id] = entry.payload
        return MPIObjectProtocol.reply(.ok)
    }
}
