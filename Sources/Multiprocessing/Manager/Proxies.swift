/// A dictionary held by a `Manager`'s server process (under mpirun, by rank 0): every process
/// that has the proxy (a pool function's property, a `Process` target's property) sees the
/// same contents.
/// Keys are compared by their encoding. Python's `Manager().dict()`.
public struct DictProxy<Key: Codable & Hashable & Sendable, Value: Codable & Sendable>: Codable, Sendable {
    let address: ManagerAddress
    let id: UInt64

    private func call(_ operation: ManagerOperation, _ arguments: (inout WireWriter) throws -> Void = { _ in }) throws -> (ManagerStatus, [UInt8]) {
        try ProxyCall.perform(address, id, operation, arguments)
    }

    /// The value for `key`, or nil.
    public func get(_ key: Key) throws -> Value? {
        let (status, reply) = try call(.dictGet) { try ProxyCall.writeEncoded(key, &$0) }
        return status == .missing ? nil : try ProxyCall.readEncoded(Value.self, reply)
    }

    /// Stores `value` for `key`.
    public func set(_ key: Key, _ value: Value) throws {
        _ = try call(.dictSet) { writer in
            try ProxyCall.writeEncoded(key, &writer)
            try ProxyCall.writeEncoded(value, &writer)
        }
    }

    /// Removes `key`; returns whether it was there.
    @discardableResult
    public func removeValue(forKey key: Key) throws -> Bool {
        try call(.dictDelete) { try ProxyCall.writeEncoded(key, &$0) }.0 == .ok
    }

    /// The number of entries.
    public func count() throws -> Int { try ProxyCall.readCount(try call(.dictCount).1) }

    /// A snapshot of the whole dictionary.
    public func snapshot() throws -> [Key: Value] {
        let (_, reply) = try call(.dictItems)
        return try ProxyCall.readPairs(reply).reduce(into: [:]) { result, pair in
            result[try Wire.decode(Key.self, from: pair.0)] = try Wire.decode(Value.self, from: pair.1)
        }
    }

    public func removeAll() throws { _ = try call(.dictClear) }
}

/// A list held by a `Manager`'s server process. Negative indices count from the end, as in
/// Python. Python's `Manager().list()`.
public struct ListProxy<Element: Codable & Sendable>: Codable, Sendable {
    let address: ManagerAddress
    let id: UInt64

    private func call(_ operation: ManagerOperation, _ arguments: (inout WireWriter) throws -> Void = { _ in }) throws -> (ManagerStatus, [UInt8]) {
        try ProxyCall.perform(address, id, operation, arguments)
    }

    public func append(_ element: Element) throws {
        _ = try call(.listAppend) { try ProxyCall.writeEncoded(element, &$0) }
    }

    /// The element at `index`; throws `ManagerError(.invalidRequest)` when out of range.
    public func get(_ index: Int) throws -> Element {
        let (status, reply) = try call(.listGet) { $0.write(Int64(index)) }
        guard status == .ok else { throw ManagerError(.invalidRequest, "list index \(index) out of range") }
        return try ProxyCall.readEncoded(Element.self, reply)
    }

    public func set(_ index: Int, _ element: Element) throws {
        let (status, _) = try call(.listSet) { writer in
            writer.write(Int64(index))
            try ProxyCall.writeEncoded(element, &writer)
        }
        guard status == .ok else { throw ManagerError(.invalidRequest, "list index \(index) out of range") }
    }

    @discardableResult
    public func remove(at index: Int) throws -> Element {
        let (status, reply) = try call(.listRemove) { $0.write(Int64(index)) }
        guard status == .ok else { throw ManagerError(.invalidRequest, "list index \(index) out of range") }
        return try ProxyCall.readEncoded(Element.self, reply)
    }

    public func count() throws -> Int { try ProxyCall.readCount(try call(.listCount).1) }

    /// A snapshot of the whole list.
    public func snapshot() throws -> [Element] {
        let (_, reply) = try call(.listItems)
        return try reply.withUnsafeBytes { raw in
            var reader = WireReader(raw)
            let count = try reader.read(UInt64.self)
            guard count <= UInt64(raw.count) else { throw WireError.corrupt("list of \(count) items") }
            return try (0..<Int(count)).map { _ in try Wire.decode(Element.self, from: Array(try reader.readLengthPrefixed())) }
        }
    }

    public func removeAll() throws { _ = try call(.listClear) }
}

/// Named values held by a `Manager` — Python's `Manager().Namespace()`.
public struct NamespaceProxy: Codable, Sendable {
    let address: ManagerAddress
    let id: UInt64

    /// The value stored under `name`, or nil.
    public func get<T: Codable>(_ name: String, as type: T.Type = T.self) throws -> T? {
        let (status, reply) = try ProxyCall.perform(address, id, .namespaceGet) { $0.write(name) }
        return status == .missing ? nil : try ProxyCall.readEncoded(T.self, reply)
    }

    public func set<T: Codable>(_ name: String, _ value: T) throws {
        _ = try ProxyCall.perform(address, id, .namespaceSet) { writer in
            writer.write(name)
            try ProxyCall.writeEncoded(value, &writer)
        }
    }
}

/// The request/reply plumbing the proxies share: to a manager server process over its
/// socket, or (`address.served` ≠ 0) to the manager rank 0 of an mpirun job serves itself.
enum ProxyCall {
    static func perform(_ address: ManagerAddress, _ id: UInt64, _ operation: ManagerOperation,
                        _ arguments: (inout WireWriter) throws -> Void) throws -> (ManagerStatus, [UInt8]) {
        var encoded = WireWriter()
        try arguments(&encoded)
        let (status, reply) = address.served == 0
            ? try ManagerConnection.to(address).request(operation, object: id) { writer in
                encoded.bytes.withUnsafeBytes { writer.writeRaw($0) }
            }
            : try MPIServedManager.request(address.served, operation, object: id, encoded.bytes)
        if status == .invalid {
            throw ManagerError(.invalidRequest, "the manager rejected the request (was the object released or the manager shut down?)")
        }
        return (status, reply)
    }

    static func writeEncoded<T: Encodable>(_ value: T, _ writer: inout WireWriter) throws {
        let bytes = try Wire.encode(value)
        bytes.withUnsafeBytes { writer.writeLengthPrefixed($0) }
    }

    static func readEncoded<T: Decodable>(_ type: T.Type, _ reply: [UInt8]) throws -> T {
        try reply.withUnsafeBytes { raw in
            var reader = WireReader(raw)
            return try Wire.decode(T.self, from: Array(try reader.readLengthPrefixed()))
        }
    }

    static func readCount(_ reply: [UInt8]) throws -> Int {
        try reply.withUnsafeBytes { raw in
            var reader = WireReader(raw)
            return Int(try reader.read(UInt64.self))
        }
    }

    static func readPairs(_ reply: [UInt8]) throws -> [([UInt8], [UInt8])] {
        try reply.withUnsafeBytes { raw in
            var reader = WireReader(raw)
            let count = try reader.read(UInt64.self)
            guard count <= UInt64(raw.count) else { throw WireError.corrupt("dictionary of \(count) entries") }
            return try (0..<Int(count)).map { _ in
                (Array(try reader.readLengthPrefixed()), Array(try reader.readLengthPrefixed()))
            }
        }
    }
}
