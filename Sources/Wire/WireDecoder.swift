// The binary `Decoder`, reading what `WireEncoder.swift` writes. The input is untrusted:
// every count is checked against the bytes left before anything is reserved, every
// element must consume at least one byte (so no loop outlives the message), nesting is
// limited to `wireMaximumDepth`, and everything malformed throws.
//
// Keyed containers are read as a stream: asking for keys in the order they were encoded
// (what synthesized `Codable` does) walks the entries once. Keys already passed can be
// asked for again; a key that is not the next one is taken to be absent.

/// Something whose encoded extent ends where the reader cannot tell on its own: a value's
/// decoder, or a keyed or unkeyed container that hands out nested containers.
protocol _WireReadExtent: AnyObject {
    /// The offset just past the encoded bytes; throws if parts were left unread.
    func endOffset() throws -> Int
}

/// Shared state of one decoding: the reader and the nesting depth.
/// Used by one thread and never re-entrantly, so properties skip dynamic exclusivity checks.
@usableFromInline
final class _WireDecodingState {
    @exclusivity(unchecked) @usableFromInline var reader: WireReader
    @exclusivity(unchecked) var depth = 0
    /// An error found where the `Decoder` API cannot throw (`allKeys`); thrown when the
    /// value being decoded is finished.
    @exclusivity(unchecked) var pendingError: (any Error)?

    @usableFromInline
    init(reader: WireReader) {
        self.reader = reader
    }

    /// Decodes one value at the reader's position and leaves the reader just past it.
    @usableFromInline
    func decodeValue<T: Decodable>(_ type: T.Type, path: _WirePath) throws -> T {
        depth += 1
        defer { depth -= 1 }
        guard depth <= wireMaximumDepth else {
            throw WireError.corrupt("cannot decode \(T.self): values are nested more than \(wireMaximumDepth) deep")
        }
        if let special = T.self as? any _WireDecodeSpecial.Type {
            do {
                guard let value = try special._wireDecode(from: self, path: path) as? T else {
                    throw WireError.corrupt("cannot decode \(T.self): a special-cased value had another type")
                }
                return value
            } catch let error as WireError {
                throw _wirePrefixed(error, verb: "decode", T.self)
            }
        }
        return try decodePlain(T.self, path: path)
    }

    /// Decodes a value known not to be special-cased, through its `init(from:)`.
    func decodePlain<T: Decodable>(_ type: T.Type, path: _WirePath) throws -> T {
        let decoder = _WireDecoder(state: self, path: path)
        let start = reader.offset
        do {
            let value = try T(from: decoder)
            reader.offset = try decoder.endOffset()
            if reader.offset == start && !decoder.askedForContainer {
                try skipUnreadEncoding(of: value)
            }
            if let error = pendingError {
                pendingError = nil
                throw error
            }
            return value
        } catch let error as WireError {
            throw _wirePrefixed(error, verb: "decode", T.self)
        }
    }

    /// After an `init(from:)` that read nothing and asked for no container: skips what the
    /// value's `encode(to:)` wrote anyway. Synthesized `Codable` for a type without stored
    /// properties is lopsided — `encode(to:)` opens an empty keyed container (one count
    /// byte here), `init(from:)` opens none — so without this the entries after such a
    /// value (an empty `BarrierAction`, a marker type) would be read from the wrong place.
    /// Encoding the decoded value again says exactly how many bytes to pass; they must match.
    private func skipUnreadEncoding<T: Decodable>(of value: T) throws {
        guard let encodable = value as? any Encodable else { return }
        let expected = try Wire.encode(encodable)
        guard !expected.isEmpty, expected.count <= reader.remaining else { return }
        let matches = expected.withUnsafeBytes { bytes in
            reader.buffer[reader.offset..<(reader.offset + bytes.count)].elementsEqual(bytes)
        }
        if matches { reader.offset += expected.count }
    }

    /// Decodes `count` elements (after the caller read and checked the count), requiring
    /// each to consume at least one byte.
    func decodeElements<Element: Decodable>(
        _ type: Element.Type, count: Int, path: _WirePath, _ body: (Element) throws -> Void
    ) throws {
        for _ in 0..<count {
            let start = reader.offset
            let element = try decodeValue(Element.self, path: path)
            try checkProgress(from: start, Element.self)
            try body(element)
        }
    }

    func checkProgress(from start: Int, _ type: Any.Type) throws(WireError) {
        if reader.offset <= start {
            throw WireError.corrupt("cannot decode \(type): an element took no bytes")
        }
    }

    func readString() throws(WireError) -> String {
        let length = try reader.readCount(minimumElementSize: 1, of: String.self)
        let raw = try reader.readRaw(count: length)
        guard let string = String(validating: raw.bindMemory(to: UInt8.self), as: UTF8.self) else {
            throw WireError.corrupt("cannot decode String: not valid UTF-8")
        }
        return string
    }

    func readTag(_ type: Any.Type) throws(WireError) -> Bool {
        switch try reader.read(UInt8.self) {
        case 0: return false
        case 1: return true
        case let other: throw WireError.corrupt("cannot decode \(type): Optional tag byte was \(other), not 0 or 1")
        }
    }
}

/// The `Decoder` handed to a value's `init(from:)`.
final class _WireDecoder: Decoder, _WireReadExtent {
    let state: _WireDecodingState
    let path: _WirePath
    var codingPath: [any CodingKey] { path.array }
    var userInfo: [CodingUserInfoKey: Any] { [:] }
    @exclusivity(unchecked) private var keyed: _KeyedReadState?
    @exclusivity(unchecked) private var unkeyed: _UnkeyedReadState?
    @exclusivity(unchecked) private var usedSingleValue = false

    init(state: _WireDecodingState, path: _WirePath) {
        self.state = state
        self.path = path
    }

    func container<Key: CodingKey>(keyedBy type: Key.Type) throws -> KeyedDecodingContainer<Key> {
        if keyed == nil {
            guard unkeyed == nil else {
                throw WireError.corrupt("cannot decode \(Key.self): asked for a keyed container after an unkeyed one")
            }
            keyed = try _KeyedReadState(state: state, keyType: Key.self)
        }
        return KeyedDecodingContainer(_WireKeyedDecoder<Key>(read: keyed!, path: path))
    }

    func unkeyedContainer() throws -> any UnkeyedDecodingContainer {
        if unkeyed == nil {
            guard keyed == nil else {
                throw WireError.corrupt("asked for an unkeyed container after a keyed one")
            }
            unkeyed = try _UnkeyedReadState(state: state)
        }
        return _WireUnkeyedDecoder(read: unkeyed!, path: path)
    }

    func singleValueContainer() throws -> any SingleValueDecodingContainer {
        usedSingleValue = true
        return _WireSingleValueDecoder(state: state, path: path)
    }

    /// Whether `init(from:)` asked for any container (then it read what it meant to).
    var askedForContainer: Bool { keyed != nil || unkeyed != nil || usedSingleValue }

    func endOffset() throws -> Int {
        if let keyed { return try keyed.endOffset() }
        if let unkeyed { return try unkeyed.endOffset() }
        return state.reader.offset
    }
}

/// A key as stored in the message: an integer, or the position of UTF-8 bytes.
enum _StoredKey {
    case int(Int)
    case string(start: Int, count: Int)
}

struct _StoredEntry {
    var key: _StoredKey
    var valueOffset: Int
}

/// Reading state of one keyed container (shared by copies of the container).
final class _KeyedReadState: _WireReadExtent {
    let state: _WireDecodingState
    let count: Int
    @exclusivity(unchecked) private(set) var consumed = 0
    /// Offset of the next entry not yet parsed (valid when `pendingChild` is nil).
    @exclusivity(unchecked) var cursor: Int
    /// A nested container or decoder handed out for the last entry; its end is the cursor.
    @exclusivity(unchecked) var pendingChild: (any _WireReadExtent)?
    /// Entries already passed, for keys asked for again: the first few inline.
    @exclusivity(unchecked) private var seen0: _StoredEntry?
    @exclusivity(unchecked) private var seen1: _StoredEntry?
    @exclusivity(unchecked) private var seen2: _StoredEntry?
    @exclusivity(unchecked) private var seen3: _StoredEntry?
    @exclusivity(unchecked) private var seenMore: [_StoredEntry] = []
    @exclusivity(unchecked) private var peeked: _StoredEntry?
    /// Keys reported absent while entries were still unread.
    @exclusivity(unchecked) private var absent: [any CodingKey] = []

    enum Location { case next, earlier }

    init(state: _WireDecodingState, keyType: Any.Type) throws {
        self.state = state
        // Each entry holds at least a one-byte key header.
        count = try state.reader.readCount(minimumElementSize: 1, of: keyType)
        cursor = state.reader.offset
    }

    private func remember(_ entry: _StoredEntry) {
        switch consumed {
        case 0: seen0 = entry
        case 1: seen1 = entry
        case 2: seen2 = entry
        case 3: seen3 = entry
        default: seenMore.append(entry)
        }
    }

    /// The entries already passed, in order.
    private var seen: [_StoredEntry] {
        [seen0, seen1, seen2, seen3].compactMap { $0 } + seenMore
    }

    private func firstSeen(matching key: some CodingKey) -> _StoredEntry? {
        for entry in [seen0, seen1, seen2, seen3] {
            guard let entry else { return nil }
            if matches(entry.key, key) { return entry }
        }
        return seenMore.first { matches($0.key, key) }
    }

    private func resolveCursor() throws {
        if let child = pendingChild {
            pendingChild = nil
            cursor = try child.endOffset()
        }
    }

    /// The next unconsumed entry, parsing its key if needed.
    func peekNext() throws -> _StoredEntry? {
        if let peeked { return peeked }
        guard consumed < count else { return nil }
        try resolveCursor()
        state.reader.offset = cursor
        let key = try readKey()
        let entry = _StoredEntry(key: key, valueOffset: state.reader.offset)
        if !absent.isEmpty, absent.contains(where: { matches(key, $0) }) {
            throw WireError.unsupported(
                "a key was asked for before the entries encoded ahead of it were read;"
                    + " Wire reads keyed containers in the order they were encoded")
        }
        peeked = entry
        return entry
    }

    private func readKey() throws(WireError) -> _StoredKey {
        let header = try state.reader.readVarint()
        if header == 0 {
            let zigzag = try state.reader.readVarint()
            let value = Int64(bitPattern: zigzag >> 1) ^ -Int64(bitPattern: zigzag & 1)
            return .int(Int(truncatingIfNeeded: value))
        }
        let length = header - 1
        guard length <= UInt64(state.reader.remaining) else {
            throw WireError.truncated(needed: Int(clamping: length), remaining: state.reader.remaining)
        }
        let start = state.reader.offset
        state.reader.offset += Int(length)
        return .string(start: start, count: Int(length))
    }

    func matches(_ stored: _StoredKey, _ key: some CodingKey) -> Bool {
        switch stored {
        case .int(let int):
            return key.intValue == int
        case .string(let start, let count):
            if key.intValue != nil { return false }
            var string = key.stringValue
            return string.withUTF8 { utf8 in
                utf8.count == count
                    && (count == 0
                        || state.reader.buffer.baseAddress!.advanced(by: start)
                            .assumingMemoryBound(to: UInt8.self)
                            .withMemoryRebound(to: UInt8.self, capacity: count) { stored in
                                UnsafeBufferPointer(start: stored, count: count).elementsEqual(utf8)
                            })
            }
        }
    }

    /// Puts the reader at the value of `key`; nil when the container has no such entry.
    func locate(_ key: some CodingKey) throws -> Location? {
        if let next = try peekNext(), matches(next.key, key) {
            peeked = nil
            remember(next)
            consumed += 1
            state.reader.offset = next.valueOffset
            return .next
        }
        if let entry = firstSeen(matching: key) {
            state.reader.offset = entry.valueOffset
            return .earlier
        }
        if consumed < count { absent.append(key) }
        return nil
    }

    /// After a value at the `.next` location was read: the following entry starts here.
    func finished(_ location: Location) {
        if location == .next { cursor = state.reader.offset }
    }

    func contains(_ key: some CodingKey) throws -> Bool {
        if let next = try peekNext(), matches(next.key, key) { return true }
        if firstSeen(matching: key) != nil { return true }
        if consumed < count { absent.append(key) }
        return false
    }

    func allKeys<Key: CodingKey>(_: Key.Type) -> [Key] {
        var stored = seen.map(\.key)
        do {
            if let next = try peekNext() { stored.append(next.key) }
            if stored.count < count {
                throw WireError.unsupported(
                    "cannot decode \(Key.self): allKeys of a keyed container with several unread entries;"
                        + " Wire can list the keys only up to the next unread one")
            }
        } catch {
            if state.pendingError == nil { state.pendingError = error }
        }
        return stored.compactMap { key in
            switch key {
            case .int(let int):
                return Key(intValue: int)
            case .string(let start, let count):
                let bytes = UnsafeRawBufferPointer(rebasing: state.reader.buffer[start..<(start + count)])
                guard let string = String(validating: bytes.bindMemory(to: UInt8.self), as: UTF8.self) else {
                    return nil
                }
                return Key(stringValue: string)
            }
        }
    }

    func endOffset() throws -> Int {
        try resolveCursor()
        guard peeked == nil, consumed == count else {
            throw WireError.unsupported(
                "\(count - consumed) of \(count) keyed entries were not decoded;"
                    + " Wire needs every encoded entry to be read")
        }
        return cursor
    }
}

struct _WireKeyedDecoder<Key: CodingKey>: KeyedDecodingContainerProtocol {
    let read: _KeyedReadState
    let path: _WirePath
    var codingPath: [any CodingKey] { path.array }
    var allKeys: [Key] { read.allKeys(Key.self) }

    func contains(_ key: Key) -> Bool {
        do {
            return try read.contains(key)
        } catch {
            if read.state.pendingError == nil { read.state.pendingError = error }
            return false
        }
    }

    private func required(_ key: Key, _ type: Any.Type) throws -> _KeyedReadState.Location {
        guard let location = try read.locate(key) else {
            throw DecodingError.keyNotFound(
                key,
                DecodingError.Context(
                    codingPath: codingPath,
                    debugDescription: "cannot decode \(type): no entry for key \"\(key.stringValue)\""
                        + " (Wire reads keyed containers in the order they were encoded)"))
        }
        return location
    }

    @inline(__always)
    private func primitive<T>(_ key: Key, _ body: (inout WireReader) throws(WireError) -> T) throws -> T {
        let location = try required(key, T.self)
        do {
            let value = try body(&read.state.reader)
            read.finished(location)
            return value
        } catch {
            throw _wireInContext(error, "\(T.self) for key \"\(key.stringValue)\"")
        }
    }

    func decodeNil(forKey key: Key) throws -> Bool {
        guard let location = try read.locate(key) else { return true }
        let state = read.state
        guard state.reader.remaining > 0, state.reader.buffer[state.reader.offset] == 0 else {
            return false
        }
        state.reader.offset += 1
        read.finished(location)
        return true
    }

    func decode(_ type: Bool.Type, forKey key: Key) throws -> Bool { try primitive(key) { r throws(WireError) in try r.read(Bool.self) } }
    func decode(_ type: String.Type, forKey key: Key) throws -> String {
        let location = try required(key, String.self)
        let value = try read.state.readString()
        read.finished(location)
        return value
    }
    func decode(_ type: Double.Type, forKey key: Key) throws -> Double { try primitive(key) { r throws(WireError) in try r.read(Double.self) } }
    func decode(_ type: Float.Type, forKey key: Key) throws -> Float { try primitive(key) { r throws(WireError) in try r.read(Float.self) } }
    func decode(_ type: Int.Type, forKey key: Key) throws -> Int { try primitive(key) { r throws(WireError) in try r.read(Int.self) } }
    func decode(_ type: Int8.Type, forKey key: Key) throws -> Int8 { try primitive(key) { r throws(WireError) in try r.read(Int8.self) } }
    func decode(_ type: Int16.Type, forKey key: Key) throws -> Int16 { try primitive(key) { r throws(WireError) in try r.read(Int16.self) } }
    func decode(_ type: Int32.Type, forKey key: Key) throws -> Int32 { try primitive(key) { r throws(WireError) in try r.read(Int32.self) } }
    func decode(_ type: Int64.Type, forKey key: Key) throws -> Int64 { try primitive(key) { r throws(WireError) in try r.read(Int64.self) } }
    func decode(_ type: UInt.Type, forKey key: Key) throws -> UInt { try primitive(key) { r throws(WireError) in try r.read(UInt.self) } }
    func decode(_ type: UInt8.Type, forKey key: Key) throws -> UInt8 { try primitive(key) { r throws(WireError) in try r.read(UInt8.self) } }
    func decode(_ type: UInt16.Type, forKey key: Key) throws -> UInt16 { try primitive(key) { r throws(WireError) in try r.read(UInt16.self) } }
    func decode(_ type: UInt32.Type, forKey key: Key) throws -> UInt32 { try primitive(key) { r throws(WireError) in try r.read(UInt32.self) } }
    func decode(_ type: UInt64.Type, forKey key: Key) throws -> UInt64 { try primitive(key) { r throws(WireError) in try r.read(UInt64.self) } }

    func decode<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T {
        let location = try required(key, T.self)
        let value = try read.state.decodeValue(T.self, path: path.appending(key))
        read.finished(location)
        return value
    }

    // Every `decodeIfPresent` reads the Optional tag byte that `encodeIfPresent` wrote.
    func decodeIfPresent<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T? {
        guard let location = try read.locate(key) else { return nil }
        let value = try read.state.decodeValue(T?.self, path: path.appending(key))
        read.finished(location)
        return value
    }
    func decodeIfPresent(_ type: Bool.Type, forKey key: Key) throws -> Bool? { try optional(key) }
    func decodeIfPresent(_ type: String.Type, forKey key: Key) throws -> String? { try optional(key) }
    func decodeIfPresent(_ type: Double.Type, forKey key: Key) throws -> Double? { try optional(key) }
    func decodeIfPresent(_ type: Float.Type, forKey key: Key) throws -> Float? { try optional(key) }
    func decodeIfPresent(_ type: Int.Type, forKey key: Key) throws -> Int? { try optional(key) }
    func decodeIfPresent(_ type: Int8.Type, forKey key: Key) throws -> Int8? { try optional(key) }
    func decodeIfPresent(_ type: Int16.Type, forKey key: Key) throws -> Int16? { try optional(key) }
    func decodeIfPresent(_ type: Int32.Type, forKey key: Key) throws -> Int32? { try optional(key) }
    func decodeIfPresent(_ type: Int64.Type, forKey key: Key) throws -> Int64? { try optional(key) }
    func decodeIfPresent(_ type: UInt.Type, forKey key: Key) throws -> UInt? { try optional(key) }
    func decodeIfPresent(_ type: UInt8.Type, forKey key: Key) throws -> UInt8? { try optional(key) }
    func decodeIfPresent(_ type: UInt16.Type, forKey key: Key) throws -> UInt16? { try optional(key) }
    func decodeIfPresent(_ type: UInt32.Type, forKey key: Key) throws -> UInt32? { try optional(key) }
    func decodeIfPresent(_ type: UInt64.Type, forKey key: Key) throws -> UInt64? { try optional(key) }

    private func optional<T: Decodable>(_ key: Key) throws -> T? {
        try decodeIfPresent(T.self, forKey: key)
    }

    func nestedContainer<NestedKey: CodingKey>(
        keyedBy type: NestedKey.Type, forKey key: Key
    ) throws -> KeyedDecodingContainer<NestedKey> {
        let location = try required(key, NestedKey.self)
        let nested = try _KeyedReadState(state: read.state, keyType: NestedKey.self)
        if location == .next { read.pendingChild = nested }
        return KeyedDecodingContainer(_WireKeyedDecoder<NestedKey>(read: nested, path: path.appending(key)))
    }

    func nestedUnkeyedContainer(forKey key: Key) throws -> any UnkeyedDecodingContainer {
        let location = try required(key, [Any].self)
        let nested = try _UnkeyedReadState(state: read.state)
        if location == .next { read.pendingChild = nested }
        return _WireUnkeyedDecoder(read: nested, path: path.appending(key))
    }

    func superDecoder() throws -> any Decoder { try superDecoder(key: _WireKey.super) }
    func superDecoder(forKey key: Key) throws -> any Decoder { try superDecoder(key: key) }

    private func superDecoder(key: some CodingKey) throws -> any Decoder {
        guard let location = try read.locate(key) else {
            throw DecodingError.keyNotFound(
                key,
                DecodingError.Context(
                    codingPath: codingPath, debugDescription: "no entry for the superclass"))
        }
        let decoder = _WireDecoder(state: read.state, path: path.appending(key))
        if location == .next { read.pendingChild = decoder }
        return decoder
    }
}

/// Reading state of one unkeyed container (shared by copies of the container).
final class _UnkeyedReadState: _WireReadExtent {
    let state: _WireDecodingState
    let count: Int
    @exclusivity(unchecked) var index = 0
    @exclusivity(unchecked) var cursor: Int
    @exclusivity(unchecked) var pendingChild: (any _WireReadExtent)?

    init(state: _WireDecodingState) throws {
        self.state = state
        count = try state.reader.readCount(minimumElementSize: 1, of: [Any].self)
        cursor = state.reader.offset
    }

    /// Puts the reader at the next element.
    func next(_ type: Any.Type) throws -> Int {
        if let child = pendingChild {
            pendingChild = nil
            cursor = try child.endOffset()
        }
        guard index < count else {
            throw WireError.corrupt("cannot decode \(type): the unkeyed container's \(count) elements are all read")
        }
        state.reader.offset = cursor
        return cursor
    }

    /// After an element was read: requires progress and moves on.
    func advance(from start: Int, _ type: Any.Type) throws(WireError) {
        try state.checkProgress(from: start, type)
        cursor = state.reader.offset
        index += 1
    }

    func endOffset() throws -> Int {
        if let child = pendingChild {
            pendingChild = nil
            cursor = try child.endOffset()
        }
        guard index == count else {
            throw WireError.unsupported(
                "\(count - index) of \(count) unkeyed elements were not decoded; Wire needs every element to be read")
        }
        return cursor
    }
}

struct _WireUnkeyedDecoder: UnkeyedDecodingContainer {
    let read: _UnkeyedReadState
    let path: _WirePath
    var codingPath: [any CodingKey] { path.array }
    var count: Int? { read.count }
    var isAtEnd: Bool { read.index >= read.count }
    var currentIndex: Int { read.index }

    @inline(__always)
    private func primitive<T>(_ body: (inout WireReader) throws(WireError) -> T) throws -> T {
        let start = try read.next(T.self)
        do {
            let value = try body(&read.state.reader)
            try read.advance(from: start, T.self)
            return value
        } catch {
            throw _wireInContext(error, "\(T.self) at index \(read.index)")
        }
    }

    mutating func decodeNil() throws -> Bool {
        let start = try read.next(Never?.self)
        let state = read.state
        guard state.reader.remaining > 0, state.reader.buffer[start] == 0 else { return false }
        state.reader.offset += 1
        try read.advance(from: start, Never?.self)
        return true
    }

    mutating func decode(_ type: Bool.Type) throws -> Bool { try primitive { r throws(WireError) in try r.read(Bool.self) } }
    mutating func decode(_ type: String.Type) throws -> String {
        let start = try read.next(String.self)
        let value = try read.state.readString()
        try read.advance(from: start, String.self)
        return value
    }
    mutating func decode(_ type: Double.Type) throws -> Double { try primitive { r throws(WireError) in try r.read(Double.self) } }
    mutating func decode(_ type: Float.Type) throws -> Float { try primitive { r throws(WireError) in try r.read(Float.self) } }
    mutating func decode(_ type: Int.Type) throws -> Int { try primitive { r throws(WireError) in try r.read(Int.self) } }
    mutating func decode(_ type: Int8.Type) throws -> Int8 { try primitive { r throws(WireError) in try r.read(Int8.self) } }
    mutating func decode(_ type: Int16.Type) throws -> Int16 { try primitive { r throws(WireError) in try r.read(Int16.self) } }
    mutating func decode(_ type: Int32.Type) throws -> Int32 { try primitive { r throws(WireError) in try r.read(Int32.self) } }
    mutating func decode(_ type: Int64.Type) throws -> Int64 { try primitive { r throws(WireError) in try r.read(Int64.self) } }
    mutating func decode(_ type: UInt.Type) throws -> UInt { try primitive { r throws(WireError) in try r.read(UInt.self) } }
    mutating func decode(_ type: UInt8.Type) throws -> UInt8 { try primitive { r throws(WireError) in try r.read(UInt8.self) } }
    mutating func decode(_ type: UInt16.Type) throws -> UInt16 { try primitive { r throws(WireError) in try r.read(UInt16.self) } }
    mutating func decode(_ type: UInt32.Type) throws -> UInt32 { try primitive { r throws(WireError) in try r.read(UInt32.self) } }
    mutating func decode(_ type: UInt64.Type) throws -> UInt64 { try primitive { r throws(WireError) in try r.read(UInt64.self) } }

    mutating func decode<T: Decodable>(_ type: T.Type) throws -> T {
        let start = try read.next(T.self)
        let value = try read.state.decodeValue(T.self, path: path.appending(_WireKey(intValue: read.index)))
        try read.advance(from: start, T.self)
        return value
    }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type) throws -> KeyedDecodingContainer<NestedKey> {
        _ = try read.next(NestedKey.self)
        let nestedPath = path.appending(_WireKey(intValue: read.index))
        let nested = try _KeyedReadState(state: read.state, keyType: NestedKey.self)
        read.index += 1
        read.pendingChild = nested
        return KeyedDecodingContainer(_WireKeyedDecoder<NestedKey>(read: nested, path: nestedPath))
    }

    mutating func nestedUnkeyedContainer() throws -> any UnkeyedDecodingContainer {
        _ = try read.next([Any].self)
        let nestedPath = path.appending(_WireKey(intValue: read.index))
        let nested = try _UnkeyedReadState(state: read.state)
        read.index += 1
        read.pendingChild = nested
        return _WireUnkeyedDecoder(read: nested, path: nestedPath)
    }

    mutating func superDecoder() throws -> any Decoder {
        _ = try read.next(Any.self)
        let decoder = _WireDecoder(state: read.state, path: path.appending(_WireKey(intValue: read.index)))
        read.index += 1
        read.pendingChild = decoder
        return decoder
    }
}

struct _WireSingleValueDecoder: SingleValueDecodingContainer {
    let state: _WireDecodingState
    let path: _WirePath
    var codingPath: [any CodingKey] { path.array }

    private func primitive<T>(_ body: (inout WireReader) throws(WireError) -> T) throws -> T {
        do throws(WireError) {
            return try body(&state.reader)
        } catch {
            throw _wireInContext(error, "\(T.self)")
        }
    }

    func decodeNil() -> Bool {
        guard state.reader.remaining > 0, state.reader.buffer[state.reader.offset] == 0 else { return false }
        state.reader.offset += 1
        return true
    }

    func decode(_ type: Bool.Type) throws -> Bool { try primitive { r throws(WireError) in try r.read(Bool.self) } }
    func decode(_ type: String.Type) throws -> String { try state.readString() }
    func decode(_ type: Double.Type) throws -> Double { try primitive { r throws(WireError) in try r.read(Double.self) } }
    func decode(_ type: Float.Type) throws -> Float { try primitive { r throws(WireError) in try r.read(Float.self) } }
    func decode(_ type: Int.Type) throws -> Int { try primitive { r throws(WireError) in try r.read(Int.self) } }
    func decode(_ type: Int8.Type) throws -> Int8 { try primitive { r throws(WireError) in try r.read(Int8.self) } }
    func decode(_ type: Int16.Type) throws -> Int16 { try primitive { r throws(WireError) in try r.read(Int16.self) } }
    func decode(_ type: Int32.Type) throws -> Int32 { try primitive { r throws(WireError) in try r.read(Int32.self) } }
    func decode(_ type: Int64.Type) throws -> Int64 { try primitive { r throws(WireError) in try r.read(Int64.self) } }
    func decode(_ type: UInt.Type) throws -> UInt { try primitive { r throws(WireError) in try r.read(UInt.self) } }
    func decode(_ type: UInt8.Type) throws -> UInt8 { try primitive { r throws(WireError) in try r.read(UInt8.self) } }
    func decode(_ type: UInt16.Type) throws -> UInt16 { try primitive { r throws(WireError) in try r.read(UInt16.self) } }
    func decode(_ type: UInt32.Type) throws -> UInt32 { try primitive { r throws(WireError) in try r.read(UInt32.self) } }
    func decode(_ type: UInt64.Type) throws -> UInt64 { try primitive { r throws(WireError) in try r.read(UInt64.self) } }
    func decode<T: Decodable>(_ type: T.Type) throws -> T {
        try state.decodeValue(T.self, path: path)
    }
}
