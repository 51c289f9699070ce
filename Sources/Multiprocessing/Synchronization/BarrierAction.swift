/// What a `Barrier` runs once per pass, in the last party to arrive, before any party goes on:
/// Python's `Barrier(parties, action)`. A value, so that it reaches every process that uses
/// the barrier: its stored properties are its parameters, like a `ParallelFunction`'s, and its
/// type must be `internal` or `public` (a worker finds it by name).
public protocol BarrierAction: Codable, Sendable {
    /// Runs in whichever process arrived last. Throwing breaks the barrier: every party gets
    /// `BrokenBarrierError`.
    func callAsFunction() throws
}

/// How a barrier carries its action to other processes: the action's type by its mangled
/// name, then the action's value. `Barrier` and a manager's `BarrierProxy` share it.
enum BarrierActionCoding {
    /// Refuses an action whose type another process could not find by name.
    static func check(_ action: (any BarrierAction)?, for what: String) throws(SynchronizationError) {
        guard let action else { return }
        let type = type(of: action)
        guard let name = _mangledTypeName(type), _typeByName(name) == type else {
            throw SynchronizationError(
                .invalidArgument,
                """
                the \(what) action \(String(reflecting: type)) cannot be found by name in \
                another process: declare it at file scope as internal or public
                """)
        }
    }

    static func decode<Key: CodingKey>(
        from container: KeyedDecodingContainer<Key>, typeKey: Key, valueKey: Key
    ) throws -> (any BarrierAction)? {
        guard let name = try container.decodeIfPresent(String.self, forKey: typeKey) else { return nil }
        guard let type = _typeByName(name) as? any BarrierAction.Type else {
            throw SynchronizationError(.invalidArgument, "the Barrier action type \(name) is not known in this process")
        }
        return try container.decode(type, forKey: valueKey)
    }

    static func encode<Key: CodingKey>(
        _ action: (any BarrierAction)?, into container: inout KeyedEncodingContainer<Key>, typeKey: Key, valueKey: Key
    ) throws {
        guard let action else { return }
        try container.encode(_mangledTypeName(type(of: action)), forKey: typeKey)
        try container.encode(action, forKey: valueKey)
    }
}
