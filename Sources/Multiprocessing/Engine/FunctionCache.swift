#if canImport(Glibc)
import Glibc
#endif

/// The function values the engine's workers know: each distinct value (type name and
/// encoded bytes) gets an id, is sent to a worker once before its first chunk, and is kept
/// until 64 others have been used since (then the workers are told to drop it).
struct FunctionCache {
    static let capacity = 64

    /// A function value by content: its type, length and a 64-bit hash of its bytes (one pass
    /// over them, eight bytes at a time), with the bytes compared only on a hash match. A value
    /// holding a 100 MB table costs one hash per call, not `Hashable`'s byte-by-byte SipHash
    /// of every lookup.
    private struct Key: Hashable {
        let typeName: String
        let count: Int
        let hash: UInt64
        let bytes: [UInt8]

        init(_ definition: FunctionDefinition) {
            typeName = definition.typeName
            bytes = definition.bytes
            count = bytes.count
            hash = fnv1a(bytes)
        }

        func hash(into hasher: inout Hasher) {
            hasher.combine(typeName)
            hasher.combine(count)
            hasher.combine(hash)
        }

        static func == (a: Key, b: Key) -> Bool {
            a.hash == b.hash && a.count == b.count && a.typeName == b.typeName
                && (a.count == 0
                    || a.bytes.withUnsafeBytes { x in
                        b.bytes.withUnsafeBytes { y in memcmp(x.baseAddress!, y.baseAddress!, x.count) == 0 }
                    })
        }
    }

    private var definitions: [Key: FunctionDefinition] = [:]
    private var nextID: UInt32 = 1
    private var clock: UInt64 = 0
    /// Per worker, the ids it has.
    private var defined: [Set<UInt32>]
    /// Functions whose shared segments could not be sent: the jobs using them fail.
    private(set) var broken: [UInt32: any Error] = [:]

    init(workers: Int) {
        defined = Array(repeating: [], count: workers)
    }

    /// The cached definition equal to `function` (or `function` itself, now cached), for a
    /// new job. Returns ids to drop from every worker that has them.
    mutating func adopt(_ function: FunctionDefinition) -> (definition: FunctionDefinition, evicted: [UInt32]) {
        let key = Key(function)
        let definition: FunctionDefinition
        var evicted: [UInt32] = []
        if let existing = definitions[key] {
            definition = existing
            if existing.attachments.isEmpty { existing.attachments = function.attachments }
        } else {
            definition = function
            definition.id = nextID
            nextID = nextID == UInt32.max - 1 ? 1 : nextID + 1
            definitions[key] = definition
        }
        // In use before anything is evicted: a new definition is never its own victim (it
        // was: never used, it sorted first, and a function past the 64th leaked in workers).
        definition.activeJobs += 1
        evicted = evict()
        return (definition, evicted)
    }

    /// A job using `definition` ended.
    mutating func release(_ definition: FunctionDefinition) {
        definition.activeJobs -= 1
        clock += 1
        definition.lastUsed = clock
        // Idle: do not keep the objects it mentions alive (a new job brings its own).
        if definition.activeJobs == 0 { definition.attachments = [] }
    }

    /// Drops the idle definitions that mention a segment in `gone` (an object dropped
    /// everywhere); returns their ids, to be undefined in the workers that have them.
    mutating func evict(mentioning gone: Set<SegmentID>) -> [UInt32] {
        let victims = definitions.filter { $0.value.activeJobs == 0 && !$0.value.attachmentIDs.isDisjoint(with: gone) }
        for (key, definition) in victims {
            definitions.removeValue(forKey: key)
            broken.removeValue(forKey: definition.id)
        }
        return victims.map { $0.value.id }
    }

    private mutating func evict() -> [UInt32] {
        guard definitions.count > Self.capacity else { return [] }
        let victims = definitions.filter { $0.value.activeJobs == 0 }
            .sorted { $0.value.lastUsed < $1.value.lastUsed }
            .prefix(definitions.count - Self.capacity)
        for (key, definition) in victims {
            definitions.removeValue(forKey: key)
            broken.removeValue(forKey: definition.id)
        }
        return victims.map { $0.value.id }
    }

    func has(_ id: UInt32, on worker: Int) -> Bool { defined[worker].contains(id) }
    mutating func record(_ id: UInt32, on worker: Int) { defined[worker].insert(id) }
    /// Drops `id` from `worker`'s set; returns whether it had it.
    mutating func drop(_ id: UInt32, from worker: Int) -> Bool { defined[worker].remove(id) != nil }
    /// A new worker in `worker`'s slot knows nothing.
    mutating func forget(worker: Int) { defined[worker].removeAll() }
    mutating func markBroken(_ id: UInt32, _ error: any Error) { broken[id] = error }
}
