// Types the encoder writes directly rather than through `encode(to:)`: primitives,
// Optional (a tag byte), and collections (a count, then elements, or raw bytes).

/// A type with its own wire encoding. Checked once per value with a dynamic cast.
@usableFromInline
protocol _WireEncodeSpecial {
    func _wireEncode(into state: _WireEncodingState, path: _WirePath) throws
}

extension Bool: _WireEncodeSpecial {
    @usableFromInline
    func _wireEncode(into state: _WireEncodingState, path: _WirePath) throws { state.writer.write(self) }
}

extension String: _WireEncodeSpecial {
    @usableFromInline
    func _wireEncode(into state: _WireEncodingState, path: _WirePath) throws { state.writeString(self) }
}

extension Double: _WireEncodeSpecial {
    @usableFromInline
    func _wireEncode(into state: _WireEncodingState, path: _WirePath) throws { state.writer.write(self) }
}

extension Float: _WireEncodeSpecial {
    @usableFromInline
    func _wireEncode(into state: _WireEncodingState, path: _WirePath) throws { state.writer.write(self) }
}

extension Int: _WireEncodeSpecial {}
extension Int8: _WireEncodeSpecial {}
extension Int16: _WireEncodeSpecial {}
extension Int32: _WireEncodeSpecial {}
extension Int64: _WireEncodeSpecial {}
extension UInt: _WireEncodeSpecial {}
extension UInt8: _WireEncodeSpecial {}
extension UInt16: _WireEncodeSpecial {}
extension UInt32: _WireEncodeSpecial {}
extension UInt64: _WireEncodeSpecial {}

extension _WireEncodeSpecial where Self: FixedWidthInteger {
    @usableFromInline
    func _wireEncode(into state: _WireEncodingState, path: _WirePath) throws { state.writer.write(self) }
}

extension Optional: _WireEncodeSpecial where Wrapped: Encodable {
    @usableFromInline
    func _wireEncode(into state: _WireEncodingState, path: _WirePath) throws {
        switch self {
        case .none:
            state.writer.write(UInt8(0))
        case .some(let wrapped):
            state.writer.write(UInt8(1))
            try state.encodeValue(wrapped, path: path)
        }
    }
}

extension Array: _WireEncodeSpecial where Element: Encodable {
    @usableFromInline
    func _wireEncode(into state: _WireEncodingState, path: _WirePath) throws {
        try withUnsafeBufferPointer { try state.encodeCollection($0, owner: self, path: path) }
    }
}

extension ContiguousArray: _WireEncodeSpecial where Element: Encodable {
    @usableFromInline
    func _wireEncode(into state: _WireEncodingState, path: _WirePath) throws {
        try withUnsafeBufferPointer { try state.encodeCollection($0, owner: self, path: path) }
    }
}

extension Set: _WireEncodeSpecial where Element: Encodable {
    @usableFromInline
    func _wireEncode(into state: _WireEncodingState, path: _WirePath) throws {
        state.writer.writeVarint(UInt64(count))
        try state.encodeElements(self, path: path)
    }
}

extension Dictionary: _WireEncodeSpecial where Key: Encodable, Value: Encodable {
    @usableFromInline
    func _wireEncode(into state: _WireEncodingState, path: _WirePath) throws {
        state.writer.writeVarint(UInt64(count))
        for (key, value) in self {
            let start = state.writer.count
            try state.encodeValue(key, path: path)
            try state.encodeValue(value, path: path)
            try state.checkProgress(from: start, Self.self)
        }
    }
}

extension _WireEncodingState {
    /// A count and the elements: one copy for raw element types.
    /// `owner` holds the elements (the collection itself), for `WireWriter.defersLargeBlocks`.
    func encodeCollection<T: Encodable>(_ elements: UnsafeBufferPointer<T>, owner: Any, path: _WirePath) throws {
        if _wireIsRaw(T.self) {
            writer._writeRawElements(elements, owner: owner)
        } else {
            writer.writeVarint(UInt64(elements.count))
            try encodeElements(elements, path: path)
        }
    }
}
