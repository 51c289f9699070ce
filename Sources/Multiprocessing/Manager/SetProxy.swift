/// A set held by a `Manager` — Python's `Manager().set()`: every process with the proxy sees
/// the same elements. Elements are compared by their encoding (as a `DictProxy`'s keys).
public struct SetProxy<Element: Codable & Hashable & Sendable>: Codable, Sendable {
    let address: ManagerAddress
    let id: UInt64

    private func call(_ operation: ManagerOperation, _ arguments: (inout WireWriter) throws -> Void = { _ in }) throws -> (ManagerStatus, [UInt8]) {
        try ProxyCall.perform(address, id, operation, arguments)
    }

    private func ask(_ operation: ManagerOperation, _ element: Element) throws -> Bool {
        try call(operation) { try ProxyCall.writeEncoded(element, &$0) }.1.first == 1
    }

    /// Adds `element`; returns whether it was not there yet. Python's `add`.
    @discardableResult
    public func insert(_ element: Element) throws -> Bool { !(try ask(.setInsert, element)) }

    /// Removes `element`; returns whether it was there. Python's `discard` (and `remove`,
    /// which raises `KeyError` where this returns false).
    @discardableResult
    public func remove(_ element: Element) throws -> Bool { try ask(.setRemove, element) }

    /// Whether `element` is in the set. Python's `in`.
    public func contains(_ element: Element) throws -> Bool { try ask(.setContains, element) }

    /// The number of elements. Python's `len`.
    public func count() throws -> Int { try ProxyCall.readCount(try call(.setCount).1) }

    /// Removes and returns an element, or nil when the set is empty (Python's `pop` raises
    /// `KeyError`).
    public func popFirst() throws -> Element? {
        let (status, reply) = try call(.setPop)
        return status == .missing ? nil : try ProxyCall.readEncoded(Element.self, reply)
    }

    /// Adds every element of `elements` (in one step). Python's `update`.
    public func formUnion<S: Sequence>(_ elements: S) throws where S.Element == Element {
        let items = Array(elements)
        _ = try call(.setUpdate) { writer in
            writer.write(UInt64(items.count))
            for item in items { try ProxyCall.writeEncoded(item, &writer) }
        }
    }

    public func removeAll() throws { _ = try call(.setClear) }

    /// A snapshot of the whole set: one request.
    public func snapshot() throws -> Set<Element> {
        let (_, reply) = try call(.setItems)
        return try reply.withUnsafeBytes { raw in
            var reader = WireReader(raw)
            let count = try reader.read(UInt64.self)
            guard count <= UInt64(raw.count) else { throw WireError.corrupt("set of \(count) elements") }
            var elements = Set<Element>()
            for _ in 0..<count { elements.insert(try Wire.decode(Element.self, from: Array(try reader.readLengthPrefixed()))) }
            return elements
        }
    }
}
