// Variable-length unsigned integers (LEB128: 7 bits per byte, low bits first, high bit set
// on every byte but the last), used for counts, lengths and keys.

extension WireWriter {
    /// Appends `value` as a varint: 1 byte below 128, at most 10 bytes.
    @inlinable
    public mutating func writeVarint(_ value: UInt64) {
        var value = value
        while value >= 0x80 {
            bytes.append(UInt8(truncatingIfNeeded: value) | 0x80)
            value >>= 7
        }
        bytes.append(UInt8(truncatingIfNeeded: value))
    }

    /// The number of bytes `writeVarint(value)` appends.
    @inlinable
    public static func varintSize(_ value: UInt64) -> Int {
        var value = value
        var size = 1
        while value >= 0x80 {
            value >>= 7
            size += 1
        }
        return size
    }
}

extension WireReader {
    /// Reads a varint written by `writeVarint`; throws on truncation and on encodings
    /// that overflow 64 bits.
    @inlinable
    public mutating func readVarint() throws(WireError) -> UInt64 {
        var result: UInt64 = 0
        var shift: UInt64 = 0
        while true {
            guard offset < buffer.count else { throw WireError.truncated(needed: 1, remaining: 0) }
            let byte = buffer[offset]
            offset += 1
            if shift == 63, byte > 1 { throw WireError.corrupt("a varint overflows 64 bits") }
            result |= UInt64(byte & 0x7F) << shift
            if byte < 0x80 { return result }
            shift += 7
            if shift > 63 { throw WireError.corrupt("a varint is longer than 10 bytes") }
        }
    }

    /// Reads a varint element count and checks that `count × minimumElementSize` bytes are
    /// still there, so that nothing is allocated for a count the message cannot hold.
    @inlinable
    public mutating func readCount<T>(minimumElementSize: Int, of type: T.Type) throws(WireError) -> Int {
        try readCount(minimumElementSize: minimumElementSize) { "\(T.self)" }
    }

    /// `readCount(minimumElementSize:of:)` for an array of `Element`s, without making the
    /// array type's metadata (in unspecialised code `[Element].self` is a runtime lookup, on
    /// the path of every chunk of results) unless the count is refused.
    @inlinable
    public mutating func readCount<Element>(minimumElementSize: Int, arrayOf _: Element.Type) throws(WireError) -> Int {
        try readCount(minimumElementSize: minimumElementSize) { "\([Element].self)" }
    }

    @usableFromInline
    mutating func readCount(minimumElementSize: Int, naming name: () -> String) throws(WireError) -> Int {
        let raw = try readVarint()
        let size = max(minimumElementSize, 1)
        guard raw <= UInt64(remaining / size) else {
            throw WireError(
                code: .truncated,
                message: "cannot decode \(name()): message truncated: a count of \(raw) elements"
                    + " of at least \(size) bytes does not fit in the \(remaining) bytes left")
        }
        return Int(raw)
    }
}
