// Types the decoder reads directly rather than through `init(from:)`; the inverse of
// `WireSpecialEncoding.swift`.

/// A type with its own wire decoding. Checked once per value with a dynamic cast.
@usableFromInline
protocol _WireDecodeSpecial {
    static func _wireDecode(from state: _WireDecodingState, path: _WirePath) throws -> Self
}

extension Bool: _WireDecodeSpecial {
    @usableFromInline
    static func _wireDecode(from state: _WireDecodingState, path: _WirePath) throws -> Bool {
        try state.reader.read(Bool.self)
    }
}

extension String: _WireDecodeSpecial {
    @usableFromInline
    static func _wireDecode(from state: _WireDecodingState, path: _WirePath) throws -> String {
        try state.readString()
    }
}

extension Double: _WireDecodeSpecial {
    @usableFromInline
    static func _wireDecode(from state: _WireDecodingState, path: _WirePath) throws -> Double {
        try state.reader.read(Double.self)
    }
}

extension Float: _WireDecodeSpecial {
    @usableFromInline
    static func _wireDecode(from state: _WireDecodingState, path: _WirePath) throws -> Float {
        try state.reader.read(Float.self)
    }
}

extension Int: _WireDecodeSpecial {}
extension Int8: _WireDecodeSpecial {}
extension Int16: _WireDecodeSpecial {}
extension Int32: _WireDecodeSpecial {}
extension Int64: _WireDecodeSpecial {}
extension UInt: _WireDecodeSpecial {}
extension UInt8: _WireDecodeSpecial {}
extension UInt16: _WireDecodeSpecial {}
extension UInt32: _WireDecodeSpecial {}
extension UInt64: _WireDecodeSpecial {}

extension _WireDecodeSpecial where Self: FixedWidthInteger {
    @usableFromInline
    static func _wireDecode(from state: _WireDecodingState, path: _WirePath) throws -> Self {
        try state.reader.read(Self.self)
    }
}

extension Optional: _WireDecodeSpecial where Wrapped: Decodable {
    @usableFromInline
    static func _wireDecode(from state: _WireDecodingState, path: _WirePath) throws -> Wrapped? {
        guard try state.readTag(Self.self) else { return nil }
        return try state.decodeValue(Wrapped.self, path: path)
    }
}

extension Array: _WireDecodeSpecial where Element: Decodable {
    @usableFromInline
    static func _wireDecode(from state: _WireDecodingState, path: _WirePath) throws -> [Element] {
        if _wireIsRaw(Element.self) {
            return try state.reader._readRawElements(Element.self)
        }
        let count = try state.reader.readCount(minimumElementSize: 1, of: Self.self)
        var array: [Element] = []
        array.reserveCapacity(count)
        try state.decodeElements(Element.self, count: count, path: path) { array.append($0) }
        return array
    }
}

extension ContiguousArray: _WireDecodeSpecial where Element: Decodable {
    @usableFromInline
    static func _wireDecode(from state: _WireDecodingState, path: _WirePath) throws -> Self {
        ContiguousArray(try [Element]._wireDecode(from: state, path: path))
    }
}

extension Set: _WireDecodeSpecial where Element: Decodable {
    @usableFromInline
    static func _wireDecode(from state: _WireDecodingState, path: _WirePath) throws -> Self {
        let count = try state.reader.readCount(minimumElementSize: 1, of: Self.self)
        var set = Set(minimumCapacity: count)
        try state.decodeElements(Element.self, count: count, path: path) { set.insert($0) }
        return set
    }
}

extension Dictionary: _WireDecodeSpecial where Key: Decodable, Value: Decodable {
    @usableFromInline
    static func _wireDecode(from state: _WireDecodingState, path: _WirePath) throws -> Self {
        let count = try state.reader.readCount(minimumElementSize: 1, of: Self.self)
        var dictionary = Self(minimumCapacity: count)
        for _ in 0..<count {
            let start = state.reader.offset
            let key = try state.decodeValue(Key.self, path: path)
            let value = try state.decodeValue(Value.self, path: path)
            try state.checkProgress(from: start, Self.self)
            dictionary[key] = value
        }
        return dictionary
    }
}
