import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// The function values the engine's workers know: each distinct value (type name and
/// encoded bytes) gets an id, is sent to a worker once before its first chunk, and is kept
/// while it is among the 64 used last and the encodings kept total at most `byteBudget`
/// (1 GiB; the least recently used idle ones go first, and the workers are told to drop
/// them). A worker keeps exactly the values it was sent and not told to drop, so its memory
/// for function values is bounded the same way. A definition in use is never dropped.
struct FunctionCache {
    static let capacity = 64
    static let defaultByteBudget = 1 << 30

    /// A function value by content: its type, length and `contentHash` of its bytes (taken
    /// once, when the definition is made), with the bytes compared only on a hash match — and
    /// not even then when both share one buffer (a value `FunctionEncodings` did not encode
    /// again). A value holding a 100 MB table costs no pass over it on the pool's thread.
    private struct Key: Hashable {
        let typeName: String
        let count: Int
        let hash: UInt64
        let bytes: [UInt8]

        init(_ definition: FunctionDefinition) {
            typeName = definition.typeName
            bytes = definition.bytes
            count = bytes.count
            hash = definition.contentHash
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
                        b.bytes.withUnsafeBytes { y in
                            x.baseAddress == y.baseAddress || memcmp(x.baseAddress!, y.baseAddress!, x.count) == 0
                        }
                    })
        }
    }

    /// A 64-bit hash of `bytes` at memory speed: four independent multiply–xorshift lanes over
    /// 32-byte blocks (FNV's prime), the tail and the length, then a final mix. Not a
    /// cryptographic hash: equal hashes are confirmed by comparing the bytes.
    static func contentHash(_ bytes: [UInt8]) -> UInt64 {
        bytes.withUnsafeBytes { contentHash($0) }
    }

    static func contentHash(_ raw: UnsafeRawBufferPointer) -> UInt64 {
        let prime: UInt64 = 0x0000_0100_0000_01b3
        var lanes: (UInt64, UInt64, UInt64, UInt64) = (
            0xcbf2_9ce4_8422_2325, 0x9e37_79b9_7f4a_7c15, 0xc2b2_ae3d_27d4_eb4f, 0x1656_67b1_9e37_79f9
        )
        let blocks = raw.count / 32
        var offset = 0
        for _ in 0..<blocks {
            lanes.0 = (lanes.0 ^ raw.loadUnaligned(fromByteOffset: offset, as: UInt64.self)) &* prime
            lanes.1 = (lanes.1 ^ raw.loadUnaligned(fromByteOffset: offset + 8, as: UInt64.self)) &* prime
            lanes.2 = (lanes.2 ^ raw.loadUnaligned(fromByteOffset: offset + 16, as: UInt64.self)) &* prime
            lanes.3 = (lanes.3 ^ raw.loadUnaligned(fromByteOffset: offset + 24, as: UInt64.self)) &* prime
            lanes.0 ^= lanes.0 >> 29
            lanes.1 ^= lanes.1 >> 29
            lanes.2 ^= lanes.2 >> 29
            lanes.3 ^= lanes.3 >> 29
            offset += 32
        }
        var hash = mix(lanes.0) ^ (mix(lanes.1) &* 3) ^ (mix(lanes.2) &* 5) ^ (mix(lanes.3) &* 7)
        while offset < raw.count {
            hash = (hash ^ UInt64(raw[offset])) &* prime
            offset += 1
        }
        return mix(hash ^ UInt64(raw.count))
    }

    /// MurmurHash3's 64-bit finaliser: every input bit reaches every output bit.
    private static func mix(_ value: UInt64) -> UInt64 {
        var x = value
        x ^= x >> 33
        x &*= 0xff51_afd7_ed55_8ccd
        x ^= x >> 33
        x &*= 0xc4ce_b9fe_1a85_ec53
        return x ^ (x >> 33)
    }

    private var definitions: [Key: FunctionDefinition] = [:]
    /// Definitions to drop once idle (`evict(equalTo:)` while in use).
    private var forgotten: Set<Key> = []
    private var nextID: UInt32 = 1
    private var clock: UInt64 = 0
    /// Per worker, the ids it has.
    private var defined: [Set<UInt32>]
    /// Per worker, the id `has` last found there (0: none): a map asks for the same one before
    /// every chunk, and this answers without hashing.
    private var lastFound: [UInt32]
    /// Functions whose shared segments could not be sent: the jobs using them fail.
    private(set) var broken: [UInt32: any Error] = [:]

    /// Encoded bytes kept at most, beyond those of definitions in use.
    let byteBudget: Int

    init(workers: Int, byteBudget: Int = FunctionCache.defaultByteBudget) {
        defined = Array(repeating: [], count: workers)
        lastFound = Array(repeating: 0, count: workers)
        self.byteBudget = byteBudget
    }

    /// The cached definition equal to `function` (or `function` itself, now cached), for a
    /// new job. Returns ids to drop from every worker that has them.
    mutating func adopt(_ function: FunctionDefinition) -> (definition: FunctionDefinition, evicted: [UInt32]) {
        let key = Key(function)
        let definition: FunctionDefinition
        var evicted: [UInt32] = []
        forgotten.remove(key) // wanted again
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

    /// A job using `definition` ended. Returns the id to drop from the workers that have it
    /// when the definition was forgotten while in use (`evict(equalTo:)`) and is idle now.
    mutating func release(_ definition: FunctionDefinition) -> [UInt32] {
        definition.activeJobs -= 1
        clock += 1
        definition.lastUsed = clock
        guard definition.activeJobs == 0 else { return [] }
        // Idle: do not keep the objects it mentions alive (a new job brings its own).
        definition.attachments = []
        guard !forgotten.isEmpty, forgotten.remove(Key(definition)) != nil else { return [] }
        return evict(equalTo: definition)
    }

    /// Drops the idle definitions that mention a segment in `gone` (an object dropped
    /// everywhere); returns their ids, to be undefined in the workers that have them.
    mutating func evict(mentioning gone: Set<SegmentID>) -> [UInt32] {
        let victims = definitions.filter { $0.value.activeJobs == 0 && !$0.value.attachmentIDs.isDisjoint(with: gone) }
        return victims.map { remove($0.key) }
    }

    /// Drops the definition equal to `function` (a worker rank's own engine, when rank 0 has
    /// dropped it: `NodeScheduler`); returns its id, to be undefined in the workers that have
    /// it. A definition in use goes when its last job ends (`release`), unless a new job takes
    /// it first.
    mutating func evict(equalTo function: FunctionDefinition) -> [UInt32] {
        let key = Key(function)
        guard let definition = definitions[key] else { return [] }
        guard definition.activeJobs == 0 else {
            forgotten.insert(key)
            return []
        }
        return [remove(key)]
    }

    /// Drops the definition under `key`; returns its id.
    private mutating func remove(_ key: Key) -> UInt32 {
        let id = definitions.removeValue(forKey: key)!.id
        broken.removeValue(forKey: id)
        return id
    }

    /// How many definitions are kept, and how many (definition, worker) pairs the workers hold.
    var counts: (kept: Int, onWorkers: Int) { (definitions.count, defined.reduce(0) { $0 + $1.count }) }

    private mutating func evict() -> [UInt32] {
        var bytes = definitions.values.reduce(0) { $0 + $1.bytes.count }
        guard definitions.count > Self.capacity || bytes > byteBudget else { return [] }
        let idle = definitions.filter { $0.value.activeJobs == 0 }.sorted { $0.value.lastUsed < $1.value.lastUsed }
        var count = definitions.count
        var victims: [UInt32] = []
        for (key, definition) in idle {
            guard count > Self.capacity || bytes > byteBudget else { break }
            victims.append(remove(key))
            count -= 1
            bytes -= definition.bytes.count
        }
        return victims
    }

    mutating func has(_ id: UInt32, on worker: Int) -> Bool {
        if id != 0 && lastFound[worker] == id { return true }
        guard defined[worker].contains(id) else { return false }
        lastFound[worker] = id
        return true
    }
    mutating func record(_ id: UInt32, on worker: Int) { defined[worker].insert(id) }
    /// Drops `id` from `worker`'s set; returns whether it had it.
    mutating func drop(_ id: UInt32, from worker: Int) -> Bool {
        if lastFound[worker] == id { lastFound[worker] = 0 }
        return defined[worker].remove(id) != nil
    }
    /// A new worker in `worker`'s slot knows nothing.
    mutating func forget(worker: Int) {
        defined[worker].removeAll()
        lastFound[worker] = 0
    }
    mutating func markBroken(_ id: UInt32, _ error: any Error) { broken[id] = error }
}

/// A function value's encoding, kept by the definitions made from it (so by the jobs and the
/// pools' caches that hold those) and found again by `FunctionEncodings`.
final class EncodedFunction: @unchecked Sendable {
    let typeName: String
    /// For a value `ValueStability` calls stable: its own bytes (`MemoryLayout.size` of its
    /// type; for an array, the reference to its buffer, not the elements).
    let representation: [UInt8]?
    /// That value itself: it holds every buffer `representation` mentions, so none of them
    /// is freed (and its address reused) or changed in place while this lives — a mutation
    /// of a shared buffer copies it first.
    let value: (any Sendable)?
    let bytes: [UInt8]
    let hash: UInt64
    /// The buffer the last call that matched this encoding wrote into, kept for the next call
    /// (so it goes with this encoding). Guarded by `FunctionEncodings`' lock.
    fileprivate var spare: WireWriter?

    init(typeName: String, representation: [UInt8]?, value: (any Sendable)?, bytes: [UInt8], hash: UInt64) {
        self.typeName = typeName
        self.representation = representation
        self.value = value
        self.bytes = bytes
        self.hash = hash
    }
}

/// Function values are encoded once per value, not once per call.
///
/// - A call whose value has the same type and the same bits as one encoded before — while
///   that encoding is still held — takes its bytes and hash: no encoding, no hashing, no
///   comparison (for a value capturing a 100 MB table, three passes over 100 MB spared).
///   Sound only where the bits say everything: the value's stored properties, down to the
///   leaves, are plain numbers, strings, and structs, tuples, enums, arrays, sets,
///   dictionaries and optionals of such (`ValueStability`). Their buffers are copy-on-write:
///   while the kept value shares one, a mutation through any other copy copies it first, so
///   the same bits are the same contents.
/// - Any other value (one holding a class instance, which may have changed behind the same
///   reference) is encoded on every call — into a buffer kept from the last call, so a large
///   one costs a copy, not fresh pages — and hashed; equal to an encoding still held (type,
///   length, hash, then every byte), it takes that encoding's bytes, so the pool's cache
///   finds its definition without comparing again and the buffer serves the next call.
///
/// The encoding must depend only on the value (synthesized `Codable`'s does; a custom
/// `encode(to:)` that reads global state would be read once).
///
/// Memory: the table holds at most `capacity` entries, each weakly — an encoding lives as
/// long as a definition made from it (a job, or a pool's `FunctionCache`), no longer; one
/// buffer is kept, by the encoding it last matched, and goes with it. Nothing runs when an
/// encoding is freed (it may be freed while this lock is held: a weak reference loaded here
/// can be the last).
enum FunctionEncodings {
    static let capacity = 16

    private struct Entry {
        weak var encoded: EncodedFunction?
        let id: ObjectIdentifier
        var lastUsed: UInt64
    }

    /// A kept buffer worth moving into a new encoding rather than copying out of: at most
    /// twice the bytes it holds, or within 1 MiB of them.
    private static func fits(_ writer: WireWriter) -> Bool {
        writer.bytes.capacity <= 2 * writer.bytes.count || writer.bytes.capacity - writer.bytes.count <= 1 << 20
    }

    private static let lock = ConditionLock(resetInForkedChild: true)
    nonisolated(unsafe) private static var entries: [Entry] = []
    nonisolated(unsafe) private static var clock: UInt64 = 0
    /// The encoding that keeps the spare buffer.
    nonisolated(unsafe) private static weak var spareHolder: EncodedFunction?
    /// Function values encoded so far in this process (for the tests).
    static let encodings = Atomic<Int>(0)

    static func definition<F: ParallelFunction>(of function: F) throws(PoolError) -> FunctionDefinition {
        let name = try FunctionIdentity.name(of: F.self)
        // A value without references is its bits: encoding it costs about as much as comparing.
        let representation =
            _isPOD(F.self) || !ValueStability.isStable(function)
            ? nil : withUnsafeBytes(of: function) { Array($0) }
        if let representation, let known = lookup(name, representation) {
            return FunctionDefinition(typeName: name, bytes: known.bytes, source: known)
        }
        if _isPOD(F.self) {
            do {
                let (bytes, attachments) = try AttachmentContext.collecting { try Wire.encode(function) }
                encodings.add(1, ordering: .relaxed)
                return FunctionDefinition(typeName: name, bytes: bytes, attachments: attachments)
            } catch {
                throw PoolError(.encoding, "cannot encode the function value \(String(reflecting: F.self)): \(error)")
            }
        }
        let (spare, holder) = lock.withLock { () -> (WireWriter?, EncodedFunction?) in
            guard let holder = spareHolder else { return (nil, nil) }
            return (holder.spare.take(), holder)
        }
        var writer = spare ?? WireWriter(capacity: 64)
        let attachments: [SegmentStorage]
        do {
            (_, attachments) = try AttachmentContext.collecting { try writer.encode(function) }
        } catch {
            throw PoolError(.encoding, "cannot encode the function value \(String(reflecting: F.self)): \(error)")
        }
        encodings.add(1, ordering: .relaxed)
        let hash = FunctionCache.contentHash(writer.bytes)
        if let known = lookup(name, hash, writer.bytes) {
            writer.bytes.removeAll(keepingCapacity: true)
            lock.withLock {
                known.spare = writer
                spareHolder = known
            }
            guard let representation else {
                return FunctionDefinition(typeName: name, bytes: known.bytes, attachments: attachments, source: known)
            }
            // A stable value with other bits and the same contents (an equal table built
            // anew): its bits are remembered too, with the bytes already held.
            let encoded = EncodedFunction(typeName: name, representation: representation, value: function, bytes: known.bytes, hash: hash)
            remember(encoded)
            return FunctionDefinition(typeName: name, bytes: known.bytes, attachments: attachments, source: encoded)
        }
        let bytes: [UInt8]
        if fits(writer) {
            bytes = writer.bytes
        } else {
            // A small value in a large kept buffer: copied out, the buffer kept where it was.
            bytes = [UInt8](unsafeUninitializedCapacity: writer.bytes.count) { buffer, initialized in
                writer.bytes.withUnsafeBytes { _ = memcpy(buffer.baseAddress!, $0.baseAddress!, $0.count) }
                initialized = writer.bytes.count
            }
            writer.bytes.removeAll(keepingCapacity: true)
            if let holder {
                lock.withLock {
                    if spareHolder === holder, holder.spare == nil { holder.spare = writer }
                }
            }
        }
        let encoded = EncodedFunction(
            typeName: name, representation: representation, value: representation == nil ? nil : function,
            bytes: bytes, hash: hash)
        remember(encoded)
        return FunctionDefinition(typeName: name, bytes: bytes, attachments: attachments, source: encoded)
    }

    /// The live encoding of a value of type `typeName` with these bits.
    private static func lookup(_ typeName: String, _ representation: [UInt8]) -> EncodedFunction? {
        lock.withLock {
            for index in entries.indices {
                guard let encoded = entries[index].encoded, encoded.typeName == typeName,
                    encoded.representation == representation
                else { continue }
                clock += 1
                entries[index].lastUsed = clock
                return encoded
            }
            return nil
        }
    }

    /// The live encoding of type `typeName` equal to `bytes` (hash, then every byte).
    private static func lookup(_ typeName: String, _ hash: UInt64, _ bytes: [UInt8]) -> EncodedFunction? {
        // The bytes are compared outside the lock (a large value takes milliseconds).
        let candidates = lock.withLock {
            entries.compactMap { entry -> EncodedFunction? in
                guard let encoded = entry.encoded, encoded.hash == hash, encoded.bytes.count == bytes.count,
                    encoded.typeName == typeName
                else { return nil }
                return encoded
            }
        }
        let match = candidates.first { encoded in
            bytes.isEmpty
                || encoded.bytes.withUnsafeBytes { a in
                    bytes.withUnsafeBytes { b in memcmp(a.baseAddress!, b.baseAddress!, a.count) == 0 }
                }
        }
        if let match {
            lock.withLock {
                clock += 1
                if let index = entries.firstIndex(where: { $0.id == ObjectIdentifier(match) }) { entries[index].lastUsed = clock }
            }
        }
        return match
    }

    private static func remember(_ encoded: EncodedFunction) {
        lock.withLock {
            entries.removeAll { $0.encoded == nil }
            if entries.count >= capacity, let oldest = entries.indices.min(by: { entries[$0].lastUsed < entries[$1].lastUsed }) {
                entries.remove(at: oldest)
            }
            clock += 1
            entries.append(Entry(encoded: encoded, id: ObjectIdentifier(encoded), lastUsed: clock))
        }
    }
}
