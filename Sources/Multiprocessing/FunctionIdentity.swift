/// How a worker finds the type of a `ParallelFunction` it receives.
///
/// The default is the type's mangled name (`_mangledTypeName` / `_typeByName`), which works
/// for every `internal` or `public` type — generic instantiations and types of other modules
/// included — because every process runs the same binary. `private`, `fileprivate` and
/// function-local types have no name a lookup can find; make them `internal`, or register
/// them here before the pool's workers start (which helps only workers that inherit this
/// process's memory: the `.fork` start method).
public enum FunctionRegistry {
    private static let lock = ConditionLock(resetInForkedChild: true)
    nonisolated(unsafe) private static var types: [String: any ParallelFunction.Type] = [:]

    /// Registers `type` under `name` (default: its full name as Swift prints it).
    public static func register<F: ParallelFunction>(_ type: F.Type, as name: String? = nil) {
        let key = "registered:" + (name ?? String(reflecting: type))
        lock.withLock { types[key] = type }
    }

    static func lookup(_ key: String) -> (any ParallelFunction.Type)? {
        lock.withLock { types[key] }
    }

    static func key<F: ParallelFunction>(of type: F.Type) -> String? {
        lock.withLock { types.first(where: { $0.value == type })?.key }
    }
}

enum FunctionIdentity {
    /// The name a worker can resolve back to `F`, or an error that says how to fix it.
    private static let cacheLock = ConditionLock(resetInForkedChild: true)
    nonisolated(unsafe) private static var resolvable: [ObjectIdentifier: String] = [:]

    static func name<F: ParallelFunction>(of type: F.Type) throws(PoolError) -> String {
        // The round trip through the runtime's type lookup costs microseconds; once a type
        // has passed it, remember it.
        if let known = cacheLock.withLock({ resolvable[ObjectIdentifier(type)] }) { return known }
        if let mangled = _mangledTypeName(type),
            let back = _typeByName(mangled), back == type
        {
            cacheLock.withLock { resolvable[ObjectIdentifier(type)] = mangled }
            return mangled
        }
        if let key = FunctionRegistry.key(of: type) { return key }
        throw PoolError(
            .unresolvableFunction,
            """
            \(String(reflecting: type)) cannot be found by name in a worker process: it is \
            private, fileprivate or local to a function (or generic over such a type). \
            Declare it at file scope as internal or public.
            """)
    }

    /// Resolves a name made by `name(of:)` in this process.
    static func resolve(_ name: String) -> (any ParallelFunction.Type)? {
        if name.hasPrefix("registered:") { return FunctionRegistry.lookup(name) }
        return _typeByName(name) as? any ParallelFunction.Type
    }
}
