/// A fixed-size array in memory shared between processes, with a lock: Python's
/// `multiprocessing.Array`.
///
/// ```swift
/// let squares = try SharedArray<Double>(count: 100)     // Python: Array('d', 100)
/// // in a worker: squares[i] = Double(i * i)           (one locked store)
/// try squares.withLock { buffer in buffer.update(repeating: 0) }  // many, under one lock
/// let copy = squares.snapshot()                          // Python: arr[:]
/// ```
///
/// Each subscript access takes the lock (`lock`, Python's `get_lock()`); `withLock` gives the
/// whole buffer under one acquisition, which is much faster for bulk work. Accessors work
/// while this thread already holds the lock. `Array(sharedArray)` reads element by element;
/// `snapshot()` copies all of them under one acquisition. `T`: any `BitwiseCopyable` type,
/// as for `SharedValue`.
public struct SharedArray<T: BitwiseCopyable>: RandomAccessCollection, Codable, @unchecked Sendable {
    // @unchecked: `base` points into `segment`, shared memory guarded by `lock`.
    /// The lock guarding the elements. Python's `get_lock()`.
    public let lock: Lock
    /// The shared memory holding the elements.
    public let segment: SharedSegment
    /// The number of elements (fixed).
    public let count: Int
    @usableFromInline let base: UnsafeMutablePointer<T>

    /// An array of `count` copies of `value`, guarded by `lock` (a new `Lock` when nil).
    public init(repeating value: T, count: Int, lock: Lock? = nil) throws {
        try MPIObjects.refuseIfServing("SharedArray", use: "a Queue to send results to rank 0, or Pool.map to gather an array")
        try self.init(count: count, lock: lock)
        base.initialize(repeating: value, count: count)
    }

    /// An array holding `elements`, guarded by `lock` (a new `Lock` when nil).
    public init<C: Collection>(_ elements: C, lock: Lock? = nil) throws where C.Element == T {
        try MPIObjects.refuseIfServing("SharedArray", use: "a Queue to send results to rank 0, or Pool.map to gather an array")
        try self.init(count: elements.count, lock: lock)
        _ = UnsafeMutableBufferPointer(start: base, count: count).initialize(from: elements)
    }

    private init(count: Int, lock: Lock?) throws {
        guard count >= 0 else {
            throw SynchronizationError(.invalidArgument, "a SharedArray needs a count ≥ 0, not \(count)")
        }
        let (bytes, overflow) = count.multipliedReportingOverflow(by: MemoryLayout<T>.stride)
        guard !overflow else {
            throw SynchronizationError(.invalidArgument, "a SharedArray of \(count) \(T.self) is too large")
        }
        self.init(lock: try lock ?? Lock(), segment: try SharedSegment(size: Swift.max(bytes, 1)), count: count)
    }

    private init(lock: Lock, segment: SharedSegment, count: Int) {
        self.lock = lock
        self.segment = segment
        self.count = count
        base = segment.base.bindMemory(to: T.self, capacity: Swift.max(count, 1))
    }

    private enum CodingKeys: String, CodingKey { case lock, segment, count, stride }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        let stride = try container.decode(Int.self, forKey: .stride)
        guard stride == MemoryLayout<T>.stride else {
            throw PoolError(.encoding, "a SharedArray<\(T.self)> arrived with \(stride)-byte elements, not \(MemoryLayout<T>.stride)")
        }
        let segment = try container.decode(SharedSegment.self, forKey: .segment)
        let count = try container.decode(Int.self, forKey: .count)
        guard count >= 0, count * stride <= segment.size else {
            throw PoolError(.encoding, "a SharedArray of \(count) elements arrived with a \(segment.size)-byte segment")
        }
        self.init(lock: try container.decode(Lock.self, forKey: .lock), segment: segment, count: count)
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        // Wire reads keys in the order they were written: keep this order in init(from:).
        try container.encode(MemoryLayout<T>.stride, forKey: .stride)
        try container.encode(segment, forKey: .segment)
        try container.encode(count, forKey: .count)
        try container.encode(lock, forKey: .lock)
    }

    public var startIndex: Int { 0 }
    public var endIndex: Int { count }

    /// The element at `index`, read or written holding the lock.
    @inlinable
    public subscript(index: Int) -> T {
        get {
            precondition(index >= 0 && index < count, "SharedArray index \(index) out of range 0..<\(count)")
            return lock.withReentrantAccess { base[index] }
        }
        nonmutating set {
            precondition(index >= 0 && index < count, "SharedArray index \(index) out of range 0..<\(count)")
            lock.withReentrantAccess { base[index] = newValue }
        }
    }

    /// Runs `body` on all the elements holding the lock.
    @inlinable @discardableResult
    public func withLock<R, E: Error>(_ body: (UnsafeMutableBufferPointer<T>) throws(E) -> R) throws(E) -> R {
        try lock.withReentrantAccess { () throws(E) -> R in
            try body(UnsafeMutableBufferPointer(start: base, count: count))
        }
    }

    /// A copy of all the elements, taken under one acquisition of the lock. Python's `arr[:]`.
    public func snapshot() -> [T] {
        withLock { Array(UnsafeBufferPointer($0)) }
    }
}

extension SharedArray where T: AdditiveArithmetic {
    /// An array of `count` zeros, guarded by `lock` (a new `Lock` when nil).
    /// Python's `Array(typecode, count)`.
    public init(count: Int, lock: Lock? = nil) throws {
        try MPIObjects.refuseIfServing("SharedArray", use: "a Queue to send results to rank 0, or Pool.map to gather an array")
        try self.init(repeating: .zero, count: count, lock: lock)
    }
}
