/// A growable byte buffer that messages are written into: little-endian integers, raw
/// bytes, and (in `WireEncoder.swift`) `Codable` values.
public struct WireWriter: Sendable {
    /// The message's bytes, except the large blocks referenced instead of copied (below):
    /// read `bytes` alone only from a writer that never had `defersLargeBlocks` set.
    public var bytes: [UInt8]
    /// Whether arrays of `WireRawElement`s of `WireDeferredBlock.minimumSize` bytes or more
    /// are referenced (`deferredBlocks`) instead of copied into `bytes`: for a transport that
    /// gathers the parts itself (`withParts`), as the local pool's out-of-band messages do.
    /// Kept by `removeAll`.
    public var defersLargeBlocks = false
    /// The blocks referenced instead of copied, in order (see `WireLargeBlocks.swift`).
    public internal(set) var deferredBlocks: [WireDeferredBlock] = []
    /// Their total size in bytes.
    public internal(set) var deferredByteCount = 0

    @inlinable
    public init(capacity: Int = 256) {
        bytes = []
        bytes.reserveCapacity(capacity)
    }

    @inlinable
    public var count: Int { bytes.count }

    @inlinable
    public mutating func write<T: FixedWidthInteger>(_ value: T) {
        withUnsafeBytes(of: value.littleEndian) { bytes.append(contentsOf: $0) }
    }

    @inlinable
    public mutating func write(_ value: Double) { write(value.bitPattern) }

    @inlinable
    public mutating func write(_ value: Float) { write(value.bitPattern) }

    @inlinable
    public mutating func write(_ value: Bool) { write(UInt8(value ? 1 : 0)) }

    /// Appends bytes as they are, without a length.
    @inlinable
    public mutating func writeRaw(_ raw: UnsafeRawBufferPointer) {
        bytes.append(contentsOf: raw)
    }

    /// Appends a length (UInt64) and the bytes.
    @inlinable
    public mutating func writeLengthPrefixed(_ raw: UnsafeRawBufferPointer) {
        write(UInt64(raw.count))
        bytes.append(contentsOf: raw)
    }

    @inlinable
    public mutating func write(_ string: String) {
        var string = string
        string.withUTF8 { writeLengthPrefixed(UnsafeRawBufferPointer($0)) }
    }

    /// Reserves `count` bytes at the end and returns their offset, to be filled later
    /// with `patch(_:at:)` (a length or a count not known up front).
    @inlinable
    public mutating func reserve<T: FixedWidthInteger>(_: T.Type) -> Int {
        let offset = bytes.count
        write(T.zero)
        return offset
    }

    /// A point of the message to come back to (`rewind(to:)`).
    public struct Mark: Sendable {
        @usableFromInline let byteCount: Int
        @usableFromInline let blockCount: Int
        @usableFromInline init(byteCount: Int, blockCount: Int) {
            self.byteCount = byteCount
            self.blockCount = blockCount
        }
    }

    /// The message as it is now.
    @inlinable
    public var mark: Mark { Mark(byteCount: bytes.count, blockCount: deferredBlocks.count) }

    /// Forgets what was written after `mark` (a value that failed to encode half-way).
    public mutating func rewind(to mark: Mark) {
        precondition(mark.byteCount <= bytes.count && mark.blockCount <= deferredBlocks.count, "rewind past the message's end")
        bytes.removeSubrange(mark.byteCount...)
        for block in deferredBlocks[mark.blockCount...] { deferredByteCount -= block.bytes.count }
        deferredBlocks.removeSubrange(mark.blockCount...)
    }

    @inlinable
    public mutating func patch<T: FixedWidthInteger>(_ value: T, at offset: Int) {
        withUnsafeBytes(of: value.littleEndian) { raw in
            bytes.withUnsafeMutableBytes { dest in
                dest.baseAddress!.advanced(by: offset).copyMemory(from: raw.baseAddress!, byteCount: raw.count)
            }
        }
    }
}

/// Reads what a `WireWriter` wrote. Every read is bounds-checked and throws `WireError`
/// on truncated or malformed input; nothing traps and nothing allocates more than the
/// bytes actually present.
public struct WireReader {
    public let buffer: UnsafeRawBufferPointer
    public var offset: Int

    @inlinable
    public init(_ buffer: UnsafeRawBufferPointer) {
        self.buffer = buffer
        self.offset = 0
    }

    @inlinable
    public var remaining: Int { buffer.count - offset }

    @inlinable
    public var isAtEnd: Bool { offset >= buffer.count }

    @inlinable
    public mutating func read<T: FixedWidthInteger>(_: T.Type) throws(WireError) -> T {
        let size = MemoryLayout<T>.size
        guard remaining >= size else { throw WireError.truncated(needed: size, remaining: remaining) }
        let value = buffer.loadUnaligned(fromByteOffset: offset, as: T.self)
        offset += size
        return T(littleEndian: value)
    }

    @inlinable
    public mutating func read(_: Double.Type) throws(WireError) -> Double {
        Double(bitPattern: try read(UInt64.self))
    }

    @inlinable
    public mutating func read(_: Float.Type) throws(WireError) -> Float {
        Float(bitPattern: try read(UInt32.self))
    }

    @inlinable
    public mutating func read(_: Bool.Type) throws(WireError) -> Bool {
        switch try read(UInt8.self) {
        case 0: return false
        case 1: return true
        case let other: throw WireError.corrupt("a Bool byte was \(other), not 0 or 1")
        }
    }

    /// Reads a length as written by `writeLengthPrefixed`, checked against the bytes left.
    @inlinable
    public mutating func readLength(elementSize: Int = 1) throws(WireError) -> Int {
        let raw = try read(UInt64.self)
        guard raw <= UInt64(Int.max), elementSize > 0,
            Int(raw).multipliedReportingOverflow(by: elementSize).overflow == false,
            Int(raw) * elementSize <= remaining
        else { throw WireError.truncated(needed: Int(clamping: raw), remaining: remaining) }
        return Int(raw)
    }

    /// Reads `count` raw bytes without copying; the view is valid as long as `buffer`.
    @inlinable
    public mutating func readRaw(count: Int) throws(WireError) -> UnsafeRawBufferPointer {
        guard count >= 0, count <= remaining else { throw WireError.truncated(needed: count, remaining: remaining) }
        let slice = UnsafeRawBufferPointer(rebasing: buffer[offset..<(offset + count)])
        offset += count
        return slice
    }

    @inlinable
    public mutating func readLengthPrefixed() throws(WireError) -> UnsafeRawBufferPointer {
        try readRaw(count: try readLength())
    }

    @inlinable
    public mutating func read(_: String.Type) throws(WireError) -> String {
        let bytes = try readLengthPrefixed().bindMemory(to: UInt8.self)
        // Not `String(validating:as:)`: generic over the encoding, unspecialized, it built
        // metadata at its first use in each process (a forked pool worker decoding its first
        // function's name: page faults on the first `apply`'s path). Decoding repairs invalid
        // UTF-8 (a bad sequence becomes U+FFFD), so the result's bytes differ from the input's.
        let string = String(decoding: bytes, as: UTF8.self)
        guard string.utf8.count == bytes.count, string.utf8.elementsEqual(bytes) else {
            throw WireError.corrupt("a string was not valid UTF-8")
        }
        return string
    }
}

/// Bytes that cannot be decoded, or a value that cannot be encoded.
public struct WireError: Error, CustomStringConvertible, Sendable, Equatable {
    public enum Code: Sendable, Equatable {
        /// The message ended before the value did.
        case truncated
        /// The bytes are not what the writer could have produced.
        case corrupt
        /// The value cannot be represented (e.g. a type the codec does not support).
        case unsupported
        /// A message larger than the transport allows.
        case tooLarge
    }
    public var code: Code
    public var message: String

    public init(code: Code, message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { message }

    @inlinable
    public static func truncated(needed: Int, remaining: Int) -> WireError {
        WireError(code: .truncated, message: "message truncated: needed \(needed) more bytes, \(remaining) left")
    }

    @inlinable
    public static func corrupt(_ what: String) -> WireError {
        WireError(code: .corrupt, message: "corrupt message: \(what)")
    }

    @inlinable
    public static func unsupported(_ what: String) -> WireError {
        WireError(code: .unsupported, message: what)
    }
}
