/// The function values the engine's workers know: each distinct value (type name and
/// encoded bytes) gets an id, is sent to a worker once before its first chunk, and is kept
/// until 64 others have been used since (then the workers are told to drop it).
struct FunctionCache {
    static let capacity = 64

    private struct Key: Hashable {
        let typeName: String
        let bytes: [UInt8]
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
        let key = Key(typeName: function.typeName, bytes: function.bytes)
        let definition: FunctionDefinition
        var evicted: [UInt32] = []
        if let existing = definitions[key] {
            definition = existing
        } else {
            definition = function
            definition.id = nextID
            nextID = nextID == UInt32.max - 1 ? 1 : nextID + 1
            definitions[key] = definition
            evicted = evict()
        }
        definition.activeJobs += 1
        return (definition, evicted)
    }

    /// A job using `definition` ended.
    mutating func release(_ definition: FunctionDefinition) {
        definition.activeJobs -= 1
        clock += 1
        definition.lastUsed = clock
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
