// The binary `Encoder`. Format (all little-endian):
//   Int/UInt/Float… fixed width; Bool 1 byte; String varint length + UTF-8;
//   Optional tag byte (0 nil, 1 value) + value; arrays, sets, dictionaries varint count +
//   elements (raw bytes for `WireRawElement` arrays); keyed containers varint entry count +
//   per entry a key and the value; unkeyed containers varint count + values.
// Containers are written as a stream: a container is closed when its parent (or an
// earlier container) is written to again, and writing to a closed container throws.

/// Deepest nesting of values the codec encodes or decodes (guards the stack).
@usableFromInline let wireMaximumDepth = 512

/// `error` with `context` (a primitive and where it was) in front, leaving the naming of
/// the enclosing type to `_wirePrefixed`.
func _wireInContext(_ error: WireError, _ context: @autoclosure () -> String) -> WireError {
    if error.message.hasPrefix("cannot ") { return error }
    return WireError(code: error.code, message: "\(context()): \(error.message)")
}

@usableFromInline
func _wirePrefixed(_ error: WireError, verb: String, _ type: Any.Type) -> WireError {
    if error.message.hasPrefix("cannot ") { return error }
    return WireError(code: error.code, message: "cannot \(verb) \(type): \(error.message)")
}

/// One container open for writing: where its varint count goes and how many it holds.
@usableFromInline
struct _OpenContainer {
    var id: Int
    var countOffset: Int
    var count: Int
}

/// The open containers, innermost on top; the top is stored inline so that encoding a
/// value with a single container allocates no array.
struct _ContainerStack {
    var top: _OpenContainer?
    var below: [_OpenContainer] = []

    var count: Int { top == nil ? 0 : below.count + 1 }

    mutating func push(_ container: _OpenContainer) {
        if let top { below.append(top) }
        top = container
    }

    mutating func pop() -> _OpenContainer? {
        let popped = top
        top = below.popLast()
        return popped
    }

    /// Whether the container `id` is open (on top or below).
    func contains(_ id: Int) -> Bool {
        top?.id == id || below.contains { $0.id == id }
    }
}

/// Shared state of one encoding: the bytes and the stack of open containers.
/// Used by one thread and never re-entrantly, so properties skip dynamic exclusivity checks.
@usableFromInline
final class _WireEncodingState {
    @exclusivity(unchecked) @usableFromInline var writer: WireWriter
    @exclusivity(unchecked) var open = _ContainerStack()
    @exclusivity(unchecked) var nextID = 1
    @exclusivity(unchecked) var depth = 0

    @usableFromInline
    init(writer: consuming WireWriter) {
        self.writer = writer
    }

    /// Moves the bytes out (so that the caller's buffer stays uniquely referenced).
    @usableFromInline
    func takeWriter() -> WireWriter {
        var taken = WireWriter(capacity: 0)
        swap(&taken, &writer)
        return taken
    }

    /// Starts a counted container at the end of the buffer and returns its id.
    func beginContainer() -> Int {
        let id = nextID
        nextID += 1
        open.push(_OpenContainer(id: id, countOffset: writer.count, count: 0))
        writer.bytes.append(0)
        return id
    }

    /// Makes container `id` the one being written, closing those opened after it.
    @inline(__always)
    func prepare(_ id: Int, _ type: Any.Type) throws(WireError) {
        if open.top?.id == id { return }
        try prepareSlow(id, type)
    }

    func prepareSlow(_ id: Int, _ type: Any.Type) throws(WireError) {
        guard open.contains(id) else {
            throw WireError.unsupported(
                "cannot encode \(type): a container was written to after a later container or value"
                    + " had been started; Wire writes containers as a stream, in order")
        }
        while let top = open.top, top.id != id { close(downTo: open.count - 1) }
    }

    /// Counts one more element in the top container (after `prepare`).
    @inline(__always)
    func bump() {
        open.top!.count += 1
    }

    /// Closes containers until `height` remain, writing their counts.
    @usableFromInline
    func close(downTo height: Int) {
        while open.count > height, let container = open.pop() {
            let count = UInt64(container.count)
            if count < 0x80 {
                writer.bytes[container.countOffset] = UInt8(count)
            } else {
                var varint = WireWriter(capacity: 10)
                varint.writeVarint(count)
                writer.bytes[container.countOffset] = varint.bytes[0]
                writer.bytes.insert(contentsOf: varint.bytes[1...], at: container.countOffset + 1)
                writer._shiftDeferredBlocks(after: container.countOffset, by: varint.bytes.count - 1)
            }
        }
    }

    /// Encodes one value inline: special-cased types directly, others through `encode(to:)`.
    @usableFromInline
    func encodeValue<T: Encodable>(_ value: T, path: _WirePath) throws {
        depth += 1
        defer { depth -= 1 }
        guard depth <= wireMaximumDepth else {
            throw WireError.unsupported(
                "cannot encode \(T.self): values are nested more than \(wireMaximumDepth) deep")
        }
        if let special = value as? any _WireEncodeSpecial {
            try special._wireEncode(into: self, path: path)
            return
        }
        try encodePlain(value, path: path)
    }

    /// Encodes a value known not to be special-cased, through its `encode(to:)`.
    func encodePlain<T: Encodable>(_ value: T, path: _WirePath) throws {
        let height = open.count
        let encoder = _WireEncoder(state: self, path: path)
        do {
            try value.encode(to: encoder)
        } catch let error as WireError {
            throw _wirePrefixed(error, verb: "encode", T.self)
        }
        close(downTo: height)
    }

    /// Encodes the elements of a sequence after the caller wrote their count.
    func encodeElements<S: Sequence>(_ elements: S, path: _WirePath) throws where S.Element: Encodable {
        let plain = !(S.Element.self is any _WireEncodeSpecial.Type)
        for element in elements {
            let start = writer.count
            if plain {
                depth += 1
                defer { depth -= 1 }
                guard depth <= wireMaximumDepth else {
                    throw WireError.unsupported(
                        "cannot encode \(S.Element.self): values are nested more than \(wireMaximumDepth) deep")
                }
                try encodePlain(element, path: path)
            } else {
                try encodeValue(element, path: path)
            }
            try checkProgress(from: start, S.Element.self)
        }
    }

    /// Elements of a collection must take at least one byte each, so that a decoder can
    /// bound element counts by the bytes left.
    func checkProgress(from start: Int, _ type: Any.Type) throws(WireError) {
        if writer.count == start {
            throw WireError.unsupported(
                "cannot encode \(type): an element of a collection encoded to no bytes"
                    + " (its encode(to:) wrote nothing); Wire needs at least one byte per element")
        }
    }

    func writeKey(_ key: some CodingKey) {
        if let int = key.intValue {
            writer.writeVarint(0)
            writer.writeVarint(UInt64(bitPattern: Int64((int << 1) ^ (int >> (Int.bitWidth - 1)))))
        } else {
            var string = key.stringValue
            string.withUTF8 { utf8 in
                writer.writeVarint(UInt64(utf8.count) + 1)
                writer.bytes.append(contentsOf: utf8)
            }
        }
    }

    func writeString(_ value: String) {
        var value = value
        value.withUTF8 { utf8 in
            writer.writeVarint(UInt64(utf8.count))
            writer.bytes.append(contentsOf: utf8)
        }
    }
}

/// The `Encoder` handed to a value's `encode(to:)`.
final class _WireEncoder: Encoder {
    let state: _WireEncodingState
    let path: _WirePath
    var codingPath: [any CodingKey] { path.array }
    var userInfo: [CodingUserInfoKey: Any] { [:] }
    /// The counted container this encoder opened, if any (a value may ask twice).
    @exclusivity(unchecked) var containerID: Int?
    @exclusivity(unchecked) var containerIsKeyed = false

    init(state: _WireEncodingState, path: _WirePath) {
        self.state = state
        self.path = path
    }

    func container<Key: CodingKey>(keyedBy type: Key.Type) -> KeyedEncodingContainer<Key> {
        KeyedEncodingContainer(
            _WireKeyedEncoder<Key>(
                state: state, id: counted(keyed: true), path: path))
    }

    func unkeyedContainer() -> any UnkeyedEncodingContainer {
        _WireUnkeyedEncoder(state: state, id: counted(keyed: false), path: path)
    }

    func singleValueContainer() -> any SingleValueEncodingContainer {
        _WireSingleValueEncoder(state: state, path: path)
    }

    /// The id of this encoder's container; -1 (a container that throws when used) when the
    /// value asks for a keyed and an unkeyed container both.
    private func counted(keyed: Bool) -> Int {
        if let id = containerID {
            return containerIsKeyed == keyed ? id : -1
        }
        let id = state.beginContainer()
        containerID = id
        containerIsKeyed = keyed
        return id
    }
}

struct _WireKey: CodingKey {
    var stringValue: String
    var intValue: Int?
    init(stringValue: String) { self.stringValue = stringValue }
    init(intValue: Int) {
        self.stringValue = String(intValue)
        self.intValue = intValue
    }
    static let `super` = _WireKey(stringValue: "super")
}

struct _WireKeyedEncoder<Key: CodingKey>: KeyedEncodingContainerProtocol {
    let state: _WireEncodingState
    let id: Int
    let path: _WirePath
    var codingPath: [any CodingKey] { path.array }

    @inline(__always)
    private func begin(_ key: Key) throws(WireError) {
        try state.prepare(id, Key.self)
        state.bump()
        state.writeKey(key)
    }

    mutating func encodeNil(forKey key: Key) throws { try begin(key); state.writer.write(UInt8(0)) }
    mutating func encode(_ value: Bool, forKey key: Key) throws { try begin(key); state.writer.write(value) }
    mutating func encode(_ value: String, forKey key: Key) throws { try begin(key); state.writeString(value) }
    mutating func encode(_ value: Double, forKey key: Key) throws { try begin(key); state.writer.write(value) }
    mutating func encode(_ value: Float, forKey key: Key) throws { try begin(key); state.writer.write(value) }
    mutating func encode(_ value: Int, forKey key: Key) throws { try begin(key); state.writer.write(value) }
    mutating func encode(_ value: Int8, forKey key: Key) throws { try begin(key); state.writer.write(value) }
    mutating func encode(_ value: Int16, forKey key: Key) throws { try begin(key); state.writer.write(value) }
    mutating func encode(_ value: Int32, forKey key: Key) throws { try begin(key); state.writer.write(value) }
    mutating func encode(_ value: Int64, forKey key: Key) throws { try begin(key); state.writer.write(value) }
    mutating func encode(_ value: UInt, forKey key: Key) throws { try begin(key); state.writer.write(value) }
    mutating func encode(_ value: UInt8, forKey key: Key) throws { try begin(key); state.writer.write(value) }
    mutating func encode(_ value: UInt16, forKey key: Key) throws { try begin(key); state.writer.write(value) }
    mutating func encode(_ value: UInt32, forKey key: Key) throws { try begin(key); state.writer.write(value) }
    mutating func encode(_ value: UInt64, forKey key: Key) throws { try begin(key); state.writer.write(value) }

    mutating func encode<T: Encodable>(_ value: T, forKey key: Key) throws {
        try begin(key)
        try state.encodeValue(value, path: path.appending(key))
    }

    // `encodeIfPresent` writes the entry in both cases, with the Optional tag byte, so that
    // `decodeIfPresent` and `decode(T?.self, …)` read the same bytes.
    mutating func encodeIfPresent<T: Encodable>(_ value: T?, forKey key: Key) throws {
        try begin(key)
        try state.encodeValue(value, path: path.appending(key))
    }
    mutating func encodeIfPresent(_ value: Bool?, forKey key: Key) throws { try encodeIfPresent(value as Bool?, key) }
    mutating func encodeIfPresent(_ value: String?, forKey key: Key) throws { try encodeIfPresent(value as String?, key) }
    mutating func encodeIfPresent(_ value: Double?, forKey key: Key) throws { try encodeIfPresent(value as Double?, key) }
    mutating func encodeIfPresent(_ value: Float?, forKey key: Key) throws { try encodeIfPresent(value as Float?, key) }
    mutating func encodeIfPresent(_ value: Int?, forKey key: Key) throws { try encodeIfPresent(value as Int?, key) }
    mutating func encodeIfPresent(_ value: Int8?, forKey key: Key) throws { try encodeIfPresent(value as Int8?, key) }
    mutating func encodeIfPresent(_ value: Int16?, forKey key: Key) throws { try encodeIfPresent(value as Int16?, key) }
    mutating func encodeIfPresent(_ value: Int32?, forKey key: Key) throws { try encodeIfPresent(value as Int32?, key) }
    mutating func encodeIfPresent(_ value: Int64?, forKey key: Key) throws { try encodeIfPresent(value as Int64?, key) }
    mutating func encodeIfPresent(_ value: UInt?, forKey key: Key) throws { try encodeIfPresent(value as UInt?, key) }
    mutating func encodeIfPresent(_ value: UInt8?, forKey key: Key) throws { try encodeIfPresent(value as UInt8?, key) }
    mutating func encodeIfPresent(_ value: UInt16?, forKey key: Key) throws { try encodeIfPresent(value as UInt16?, key) }
    mutating func encodeIfPresent(_ value: UInt32?, forKey key: Key) throws { try encodeIfPresent(value as UInt32?, key) }
    mutating func encodeIfPresent(_ value: UInt64?, forKey key: Key) throws { try encodeIfPresent(value as UInt64?, key) }

    private func encodeIfPresent<T: Encodable>(_ value: T?, _ key: Key) throws {
        try begin(key)
        if let value {
            state.writer.write(UInt8(1))
            try state.encodeValue(value, path: path.appending(key))
        } else {
            state.writer.write(UInt8(0))
        }
    }

    mutating func nestedContainer<NestedKey: CodingKey>(
        keyedBy keyType: NestedKey.Type, forKey key: Key
    ) -> KeyedEncodingContainer<NestedKey> {
        let id = nestedID(key)
        return KeyedEncodingContainer(
            _WireKeyedEncoder<NestedKey>(
                state: state, id: id, path: path.appending(key)))
    }

    mutating func nestedUnkeyedContainer(forKey key: Key) -> any UnkeyedEncodingContainer {
        _WireUnkeyedEncoder(state: state, id: nestedID(key), path: path.appending(key))
    }

    mutating func superEncoder() -> any Encoder { superEncoder(keyed: _WireKey.super) }
    mutating func superEncoder(forKey key: Key) -> any Encoder { superEncoder(keyed: key) }

    private func superEncoder(keyed key: some CodingKey) -> any Encoder {
        do {
            try state.prepare(id, Key.self)
        } catch {
            return _WireEncoder(state: state, path: path.appending(key)).poisoned()
        }
        state.bump()
        state.writeKey(key)
        return _WireEncoder(state: state, path: path.appending(key))
    }

    private func nestedID(_ key: Key) -> Int {
        do {
            try begin(key)
        } catch {
            return -1
        }
        return state.beginContainer()
    }
}

extension _WireEncoder {
    /// An encoder whose containers all throw when used.
    func poisoned() -> _WireEncoder {
        containerID = -1
        return self
    }
}

struct _WireUnkeyedEncoder: UnkeyedEncodingContainer {
    let state: _WireEncodingState
    let id: Int
    let path: _WirePath
    var codingPath: [any CodingKey] { path.array }
    var count = 0

    @inline(__always)
    private mutating func begin() throws(WireError) {
        try state.prepare(id, [Any].self)
        state.bump()
        count += 1
    }

    mutating func encodeNil() throws { try begin(); state.writer.write(UInt8(0)) }
    mutating func encode(_ value: Bool) throws { try begin(); state.writer.write(value) }
    mutating func encode(_ value: String) throws { try begin(); state.writeString(value) }
    mutating func encode(_ value: Double) throws { try begin(); state.writer.write(value) }
    mutating func encode(_ value: Float) throws { try begin(); state.writer.write(value) }
    mutating func encode(_ value: Int) throws { try begin(); state.writer.write(value) }
    mutating func encode(_ value: Int8) throws { try begin(); state.writer.write(value) }
    mutating func encode(_ value: Int16) throws { try begin(); state.writer.write(value) }
    mutating func encode(_ value: Int32) throws { try begin(); state.writer.write(value) }
    mutating func encode(_ value: Int64) throws { try begin(); state.writer.write(value) }
    mutating func encode(_ value: UInt) throws { try begin(); state.writer.write(value) }
    mutating func encode(_ value: UInt8) throws { try begin(); state.writer.write(value) }
    mutating func encode(_ value: UInt16) throws { try begin(); state.writer.write(value) }
    mutating func encode(_ value: UInt32) throws { try begin(); state.writer.write(value) }
    mutating func encode(_ value: UInt64) throws { try begin(); state.writer.write(value) }

    mutating func encode<T: Encodable>(_ value: T) throws {
        try begin()
        let start = state.writer.count
        try state.encodeValue(value, path: path.appending(_WireKey(intValue: count - 1)))
        try state.checkProgress(from: start, T.self)
    }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy keyType: NestedKey.Type) -> KeyedEncodingContainer<NestedKey> {
        let path = self.path.appending(_WireKey(intValue: count))
        return KeyedEncodingContainer(_WireKeyedEncoder<NestedKey>(state: state, id: nestedID(), path: path))
    }

    mutating func nestedUnkeyedContainer() -> any UnkeyedEncodingContainer {
        let path = self.path.appending(_WireKey(intValue: count))
        return _WireUnkeyedEncoder(state: state, id: nestedID(), path: path)
    }

    mutating func superEncoder() -> any Encoder {
        let path = self.path.appending(_WireKey(intValue: count))
        do {
            try begin()
        } catch {
            return _WireEncoder(state: state, path: path).poisoned()
        }
        return _WireEncoder(state: state, path: path)
    }

    private mutating func nestedID() -> Int {
        do {
            try begin()
        } catch {
            return -1
        }
        return state.beginContainer()
    }
}

struct _WireSingleValueEncoder: SingleValueEncodingContainer {
    let state: _WireEncodingState
    let path: _WirePath
    var codingPath: [any CodingKey] { path.array }

    mutating func encodeNil() throws { state.writer.write(UInt8(0)) }
    mutating func encode(_ value: Bool) throws { state.writer.write(value) }
    mutating func encode(_ value: String) throws { state.writeString(value) }
    mutating func encode(_ value: Double) throws { state.writer.write(value) }
    mutating func encode(_ value: Float) throws { state.writer.write(value) }
    mutating func encode(_ value: Int) throws { state.writer.write(value) }
    mutating func encode(_ value: Int8) throws { state.writer.write(value) }
    mutating func encode(_ value: Int16) throws { state.writer.write(value) }
    mutating func encode(_ value: Int32) throws { state.writer.write(value) }
    mutating func encode(_ value: Int64) throws { state.writer.write(value) }
    mutating func encode(_ value: UInt) throws { state.writer.write(value) }
    mutating func encode(_ value: UInt8) throws { state.writer.write(value) }
    mutating func encode(_ value: UInt16) throws { state.writer.write(value) }
    mutating func encode(_ value: UInt32) throws { state.writer.write(value) }
    mutating func encode(_ value: UInt64) throws { state.writer.write(value) }
    mutating func encode<T: Encodable>(_ value: T) throws {
        try state.encodeValue(value, path: path)
    }
}
