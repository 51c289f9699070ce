import CSystemShims
import Glibc
@_spi(Reflection) import Swift

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

    /// A name made by `name(of:)` as the user wrote the type (`MyApp.Square`, `[Swift.Int]`),
    /// not the runtime's mangling (`5MyApp6SquareV`) — for messages only: the name is never
    /// looked up (it may come from a file or another build). A registered name is shown as
    /// registered; anything that is not a mangling, as it is.
    static func readableName(_ name: String) -> String {
        let registered = "registered:"
        if name.hasPrefix(registered) { return String(name.dropFirst(registered.count)) }
        // Manglings made by `_mangledTypeName` are printable ASCII; bytes outside it (symbolic
        // references, a corrupt file) are never handed to the demangler.
        guard !name.isEmpty, name.utf8.allSatisfy({ (0x21...0x7E).contains($0) }) else { return name }
        let demangled = name.utf8CString.withUnsafeBufferPointer {
            CSystemShims_swift_demangle_type($0.baseAddress, $0.count - 1)
        }
        guard let demangled else { return name }
        defer { free(demangled) }
        return String(cString: demangled)
    }

    /// Resolves a name made by `name(of:)` in this process.
    static func resolve(_ name: String) -> (any ParallelFunction.Type)? {
        if name.hasPrefix("registered:") { return FunctionRegistry.lookup(name) }
        return _typeByName(name) as? any ParallelFunction.Type
    }
}

/// Whether a value's bits stand for all of its contents while a copy of it is kept: true
/// when everything it holds, down to the leaves, is a plain number, `Bool`, `String` or
/// `Character`, or a struct, tuple or enum of such, or an `Array`, `ContiguousArray`,
/// `ArraySlice`, `Set`, `Dictionary` or `Optional` of such. Those buffers are copy-on-write:
/// while a kept copy shares one, a mutation through another copy copies it first.
/// Anything else — a class instance, a closure, a pointer, a type with a custom mirror
/// (which may hide what it holds), an existential whose value is not so listed — may change
/// behind the same bits, and makes the answer false. `FunctionEncodings` relies on it.
enum ValueStability {
    /// Nodes looked at before giving up (false): a value this deep is encoded each time.
    static let nodeLimit = 256

    /// Whether `value` is stable, from its parts (a `Mirror` walk), whatever its type's verdict.
    static func isStableValue(_ value: Any) -> Bool {
        var budget = nodeLimit
        return isStable(value, budget: &budget)
    }

    /// What a type's stored fields say, before any value of it is looked at.
    enum Verdict: Equatable {
        /// Every value of the type is stable.
        case stable
        /// No value is known to be (a class instance, a closure, a pointer among its fields).
        case unstable
        /// It depends on the value: an enum, an optional, an existential, an array of
        /// elements that are not all stable (an empty one is) — `isStable` looks at it.
        case perInstance
    }

    private static let verdictLock = ConditionLock(resetInForkedChild: true)
    nonisolated(unsafe) private static var verdicts: [ObjectIdentifier: Verdict] = [:]

    /// `T`'s verdict, worked out once per type from its fields' types (`_forEachField`),
    /// so that a call with a value of a stable type looks at none of its parts.
    static func verdict<T>(for type: T.Type) -> Verdict {
        let key = ObjectIdentifier(type)
        if let known = verdictLock.withLock({ verdicts[key] }) { return known }
        var budget = nodeLimit
        let verdict = typeVerdict(type, budget: &budget)
        verdictLock.withLock { verdicts[key] = verdict }
        return verdict
    }

    /// Whether `value` is stable: from its type's verdict, or looked at when that depends on it.
    static func isStable<T>(_ value: T) -> Bool {
        switch verdict(for: T.self) {
        case .stable: return true
        case .unstable: return false
        case .perInstance: return isStableValue(value)
        }
    }

    /// Holds one `T`: its one field's kind is `T`'s kind.
    private struct Holder<T> { var value: T }

    static func typeVerdict<T>(_ type: T.Type, budget: inout Int) -> Verdict {
        var kind: _MetadataKind?
        _ = _forEachField(of: Holder<T>.self) { _, _, _, fieldKind in
            kind = fieldKind
            return false
        }
        guard let kind else { return .perInstance }
        return typeVerdict(type, kind: kind, budget: &budget)
    }

    private static func typeVerdict(_ type: Any.Type, kind: _MetadataKind, budget: inout Int) -> Verdict {
        budget -= 1
        guard budget >= 0 else { return .perInstance }
        if leaves.contains(ObjectIdentifier(type)) { return .stable }
        if let container = type as? any _StableContainer.Type {
            return container._elementsAreStable ? .stable : .perInstance
        }
        switch kind {
        case .struct, .tuple:
            var verdict = Verdict.stable
            var fields = 0
            let walked = _forEachField(of: type) { _, _, fieldType, fieldKind in
                fields += 1
                switch typeVerdict(fieldType, kind: fieldKind, budget: &budget) {
                case .stable: break
                case .perInstance: verdict = .perInstance
                case .unstable:
                    verdict = .unstable
                    return false
                }
                return true
            }
            if verdict == .unstable { return .unstable }
            // Without field records (or fields the walk does not show), look at values.
            guard walked, fields > 0 || size(of: type) == 0 else { return .perInstance }
            return verdict
        case .enum, .optional, .existential:
            return .perInstance
        default:
            // Classes, closures, metatypes, raw pointers' builtin words.
            return .unstable
        }
    }

    private static func size<T>(of _: T.Type) -> Int { MemoryLayout<T>.size }
    private static func podType<T>(_ type: T.Type) -> Bool { _isPOD(type) }

    private static let leaves: Set<ObjectIdentifier> = [
        ObjectIdentifier(Bool.self), ObjectIdentifier(Int.self), ObjectIdentifier(Int8.self),
        ObjectIdentifier(Int16.self), ObjectIdentifier(Int32.self), ObjectIdentifier(Int64.self),
        ObjectIdentifier(UInt.self), ObjectIdentifier(UInt8.self), ObjectIdentifier(UInt16.self),
        ObjectIdentifier(UInt32.self), ObjectIdentifier(UInt64.self), ObjectIdentifier(Float.self),
        ObjectIdentifier(Double.self), ObjectIdentifier(String.self), ObjectIdentifier(Character.self),
        ObjectIdentifier(Unicode.Scalar.self),
    ]

    static func isStable(_ value: Any, budget: inout Int) -> Bool {
        budget -= 1
        guard budget >= 0 else { return false }
        let type = type(of: value)
        if leaves.contains(ObjectIdentifier(type)) { return true }
        if let container = value as? any _StableContainer { return container._isStable(budget: &budget) }
        // A custom mirror shows what its author chose, not what the value holds.
        if type is AnyClass || value is any CustomReflectable { return false }
        let mirror = Mirror(reflecting: value)
        switch mirror.displayStyle {
        case .struct?, .tuple?, .enum?, .optional?:
            // No children shown but bytes with references in them: a type built without
            // reflection metadata hides its fields.
            if mirror.children.isEmpty { return size(of: type) == 0 || podType(type) }
            return mirror.children.allSatisfy { isStable($0.value, budget: &budget) }
        default:
            // Classes, closures, metatypes, pointers' raw words: not known to be values.
            return false
        }
    }

    /// Whether every value of `type` is stable, from its type alone: a leaf, or a listed
    /// container of such.
    static func isStableType(_ type: Any.Type) -> Bool {
        if leaves.contains(ObjectIdentifier(type)) { return true }
        if let container = type as? any _StableContainer.Type { return container._elementsAreStable }
        return false
    }

    /// Whether `element` — one element of an array of plain-data elements (`_isPOD`) — is a
    /// struct or tuple of plain numbers, so that every element of its type is: a struct's
    /// stored properties are the same in every instance (an enum's payload is not).
    static func isPlainStruct(_ element: Any, budget: inout Int) -> Bool {
        budget -= 1
        guard budget >= 0 else { return false }
        let type = type(of: element)
        if leaves.contains(ObjectIdentifier(type)) { return true }
        if type is AnyClass || element is any CustomReflectable { return false }
        let mirror = Mirror(reflecting: element)
        guard mirror.displayStyle == .struct || mirror.displayStyle == .tuple else { return false }
        return mirror.children.allSatisfy { isPlainStruct($0.value, budget: &budget) }
    }
}

/// The containers `ValueStability` looks into by type, without walking their elements.
protocol _StableContainer {
    static var _elementsAreStable: Bool { get }
    func _isStable(budget: inout Int) -> Bool
}

extension Optional: _StableContainer {
    static var _elementsAreStable: Bool { ValueStability.isStableType(Wrapped.self) }
    func _isStable(budget: inout Int) -> Bool {
        guard let wrapped = self else { return true }
        return ValueStability.isStable(wrapped, budget: &budget)
    }
}

extension Array: _StableContainer {
    static var _elementsAreStable: Bool { ValueStability.isStableType(Element.self) }
    func _isStable(budget: inout Int) -> Bool {
        if Self._elementsAreStable || isEmpty { return true }
        return _isPOD(Element.self) && ValueStability.isPlainStruct(self[0], budget: &budget)
    }
}

extension ContiguousArray: _StableContainer {
    static var _elementsAreStable: Bool { ValueStability.isStableType(Element.self) }
    func _isStable(budget: inout Int) -> Bool {
        if Self._elementsAreStable || isEmpty { return true }
        return _isPOD(Element.self) && ValueStability.isPlainStruct(self[0], budget: &budget)
    }
}

extension ArraySlice: _StableContainer {
    static var _elementsAreStable: Bool { ValueStability.isStableType(Element.self) }
    func _isStable(budget: inout Int) -> Bool {
        if Self._elementsAreStable || isEmpty { return true }
        return _isPOD(Element.self) && ValueStability.isPlainStruct(self[startIndex], budget: &budget)
    }
}

extension Set: _StableContainer {
    static var _elementsAreStable: Bool { ValueStability.isStableType(Element.self) }
    func _isStable(budget: inout Int) -> Bool { isEmpty || Self._elementsAreStable }
}

extension Dictionary: _StableContainer {
    static var _elementsAreStable: Bool {
        ValueStability.isStableType(Key.self) && ValueStability.isStableType(Value.self)
    }
    func _isStable(budget: inout Int) -> Bool { isEmpty || Self._elementsAreStable }
}
