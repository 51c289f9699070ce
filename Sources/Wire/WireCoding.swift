// Public entry points of the codec.

extension WireWriter {
    /// Appends the binary encoding of `value` (see `WireEncoder.swift` for the format).
    ///
    /// Errors thrown by the value's own `encode(to:)` propagate unchanged; errors of the
    /// codec are `WireError`s naming the type.
    @inlinable
    public mutating func encode<T: Encodable>(_ value: T) throws {
        let start = count
        let state = _WireEncodingState(writer: self)
        self = WireWriter(capacity: 0)
        do {
            try state.encodeValue(value, path: .root)
            state.close(downTo: 0)
            self = state.takeWriter()
        } catch {
            self = state.takeWriter()
            _removeDeferredBlocks(after: start)
            bytes.removeSubrange(start...) // no half-written value
            throw error
        }
    }

    /// Appends a count and then each element — the same bytes as `encode(Array(values))`,
    /// so `WireReader.decodeArray` and `decode([T].self)` both read it back.
    @inlinable
    public mutating func encodeArray<T: Encodable>(_ values: some Collection<T>) throws {
        if _wireIsRaw(T.self) {
            let done: Void? = values.withContiguousStorageIfAvailable { _writeRawElements($0) }
            if done != nil { return }
        }
        try encode(Array(values))
    }

    /// `encodeArray` for an array: one `memcpy` when `T` is a `WireRawElement`.
    @inlinable
    public mutating func encodeArray<T: Encodable>(_ values: [T]) throws {
        if _wireIsRaw(T.self) {
            values.withUnsafeBufferPointer { _writeRawElements($0, owner: values) }
        } else {
            try encode(values)
        }
    }

    /// `encodeArray` for an array slice: one `memcpy` when `T` is a `WireRawElement`.
    @inlinable
    public mutating func encodeArray<T: Encodable>(_ values: ArraySlice<T>) throws {
        if _wireIsRaw(T.self) {
            values.withUnsafeBufferPointer { _writeRawElements($0, owner: values) }
        } else {
            try encode(Array(values))
        }
    }

    /// `encodeArray` for a buffer: one `memcpy` when `T` is a `WireRawElement`.
    @inlinable
    public mutating func encodeArray<T: Encodable>(_ values: UnsafeBufferPointer<T>) throws {
        if _wireIsRaw(T.self) {
            _writeRawElements(values)
        } else {
            try encode(Array(values))
        }
    }
}

extension WireReader {
    /// Decodes a value written by `WireWriter.encode`, advancing past it.
    ///
    /// The bytes are untrusted: anything malformed throws a `WireError` (or a
    /// `DecodingError` raised through the type's own `init(from:)`); nothing traps.
    @inlinable
    public mutating func decode<T: Decodable>(_ type: T.Type) throws -> T {
        let state = _WireDecodingState(reader: self)
        defer { offset = state.reader.offset }
        return try state.decodeValue(T.self, path: .root)
    }

    /// Decodes what `WireWriter.encodeArray` wrote. For `WireRawElement` types this is one
    /// allocation of exactly the element count (checked against the bytes left first) and
    /// one copy.
    @inlinable
    public mutating func decodeArray<T: Decodable>(_ type: T.Type) throws -> [T] {
        if _wireIsRaw(T.self) {
            do {
                return try _readRawElements(T.self)
            } catch {
                throw _wirePrefixed(error, verb: "decode", [T].self)
            }
        }
        return try decode([T].self)
    }
}

/// One-call encoding and decoding of a whole message.
public enum Wire {
    /// The bytes of `value`.
    @inlinable
    public static func encode<T: Encodable>(_ value: T) throws -> [UInt8] {
        var writer = WireWriter(capacity: 64)
        try writer.encode(value)
        return writer.bytes
    }

    /// Decodes a `T` from `bytes`, which must hold exactly one value: trailing bytes throw
    /// `WireError` with code `.corrupt`.
    @inlinable
    public static func decode<T: Decodable>(_ type: T.Type, from bytes: [UInt8]) throws -> T {
        try bytes.withUnsafeBytes { raw in
            var reader = WireReader(raw)
            let value = try reader.decode(T.self)
            guard reader.isAtEnd else {
                throw WireError(
                    code: .corrupt,
                    message: "cannot decode \(T.self): corrupt message: \(reader.remaining) bytes left after the value")
            }
            return value
        }
    }
}
