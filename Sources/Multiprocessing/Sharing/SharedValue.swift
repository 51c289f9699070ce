/// One value in memory shared between processes, with a lock: Python's
/// `multiprocessing.Value`.
///
/// ```swift
/// let counter = try SharedValue(0)            // Python: Value('i', 0)
/// // in workers (a ParallelFunction that stores `counter`):
/// counter.withLock { $0 += 1 }                // read-modify-write, atomic as a whole
/// print(counter.value)                        // a locked read
/// ```
///
/// `value` and `withLock` take the lock (`lock`, Python's `get_lock()`), and work as well
/// while this thread already holds it: `try counter.lock.withLock { counter.value += 1 }` is
/// fine. `counter.value += 1` on its own is two separate locked accesses, not one — as in
/// Python; use `withLock` for read-modify-write. Robust: a process that died holding the lock
/// does not block the others (the value keeps whatever it last wrote).
///
/// `T` may be any `BitwiseCopyable` type — the numbers Python's typecodes name (`Int32` for
/// `'i'`, `Double` for `'d'`, …), and also structs and tuples of them (`SIMD3<Double>`, a
/// `Particle`): bytes copied into shared memory mean the same in every process, since all run
/// the same binary. Pointers are `BitwiseCopyable` too but mean nothing in another process.
public struct SharedValue<T: BitwiseCopyable>: Codable, @unchecked Sendable {
    // @unchecked: `address` points into `segment`, shared memory guarded by `lock`.
    /// The lock guarding the value. Python's `get_lock()`.
    public let lock: Lock
    /// The shared memory holding the value.
    /// nil for a value served by rank 0 under mpirun.
    public let segment: SharedSegment?
    /// nil for a value served by rank 0 under mpirun.
    @usableFromInline let address: UnsafeMutablePointer<T>?
    /// Under mpirun: the value's bytes in rank 0, read and written by messages.
    @usableFromInline let served: MPIServedValue?

    /// A shared value starting at `initial`, guarded by `lock` (a new `Lock` when nil; pass
    /// one to guard several values together).
    public init(_ initial: T, lock: Lock? = nil) throws {
        if MPIObjects.isServing {
            let lock = try lock ?? Lock()
            guard lock.served != nil else {
                throw MPIObjectError(
                    .unavailable,
                    "a SharedValue created under mpirun is served by rank 0 and needs a Lock "
                        + "created under mpirun too (this one lives in local shared memory): pass nil or a Lock made by rank 0")
            }
            self.init(lock: lock, served: MPIServedValue(bytes: withUnsafeBytes(of: initial) { Array($0) }))
            return
        }
        let segment = try SharedSegment(size: MemoryLayout<T>.size + MemoryLayout<T>.alignment)
        self.init(lock: try lock ?? Lock(), segment: segment)
        address!.initialize(to: initial)
    }

    private init(lock: Lock, served: MPIServedValue) {
        self.lock = lock
        segment = nil
        address = nil
        self.served = served
    }

    private init(lock: Lock, segment: SharedSegment) {
        self.lock = lock
        self.segment = segment
        address = segment.base.bindMemory(to: T.self, capacity: 1)
        served = nil
    }

    private enum CodingKeys: String, CodingKey { case lock, segment, size, served }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        let size = try container.decode(Int.self, forKey: .size)
        guard size == MemoryLayout<T>.size else {
            throw PoolError(.encoding, "a SharedValue<\(T.self)> arrived with \(size)-byte elements, not \(MemoryLayout<T>.size)")
        }
        let id = try container.decode(UInt64.self, forKey: .served)
        let lock = try container.decode(Lock.self, forKey: .lock)
        if id != 0 {
            try MPIServedObject.checkDecoding("SharedValue")
            self.init(lock: lock, served: MPIServedValue(id: id))
            return
        }
        self.init(lock: lock, segment: try container.decode(SharedSegment.self, forKey: .segment))
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        // Wire reads keys in the order they were written: keep this order in init(from:).
        try container.encode(MemoryLayout<T>.size, forKey: .size)
        if let served { try MPIServedObject.checkEncoding("SharedValue", id: served.object.id) }
        try container.encode(served?.object.id ?? 0, forKey: .served)
        try container.encode(lock, forKey: .lock)
        if served == nil { try container.encode(segment!, forKey: .segment) }
    }

    /// The value, read or written holding the lock.
    @inlinable
    public var value: T {
        get {
            // Served: rank 0 reads and writes the value whole, so one message needs no lock.
            guard let address else { return served!.load(T.self) }
            return lock.withReentrantAccess { address.pointee }
        }
        nonmutating set {
            guard let address else { return served!.store(newValue) }
            lock.withReentrantAccess { address.pointee = newValue }
        }
    }

    /// Runs `body` on the value holding the lock: a read-modify-write no other process can
    /// interleave with.
    @inlinable @discardableResult
    public func withLock<R, E: Error>(_ body: (inout T) throws(E) -> R) throws(E) -> R {
        guard let address else {
            return try lock.withReentrantAccess { () throws(E) -> R in
                var value = served!.load(T.self)
                defer { served!.store(value) }
                return try body(&value)
            }
        }
        return try lock.withReentrantAccess { () throws(E) -> R in try body(&address.pointee) }
    }
}
