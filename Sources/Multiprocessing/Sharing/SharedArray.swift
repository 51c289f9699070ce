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
///
/// **Under mpirun** (rank 0 of a job with worker ranks, unless `SWIFTMP_MPI_OBJECTS=local`)
/// the elements are served by rank 0 over MPI messages, with a served `Lock`, like
/// `SharedValue`: a subscript read or write is one message (atomic by itself), and `withLock`
/// copies every element in, runs `body` on the copy holding the lock, and writes back what
/// changed. `segment` is nil then.
public struct SharedArray<T: BitwiseCopyable>: RandomAccessCollection, Codable, @unchecked Sendable {
    // @unchecked: `base` points into `segment`, shared memory guarded by `lock`.
    /// The lock guarding the elements. Python's `get_lock()`.
    public let lock: Lock
    /// The shared memory holding the elements; nil for an array served by rank 0 under mpirun.
    public let segment: SharedSegment?
    /// The number of elements (fixed).
    public let count: Int
    /// nil for an array served by rank 0 under mpirun.
    @usableFromInline let base: UnsafeMutablePointer<T>?
    /// Under mpirun: the elements' bytes in rank 0, read and written by messages.
    @usableFromInline let served: MPIServedValue?

    /// An array of `count` copies of `value`, guarded by `lock` (a new `Lock` when nil).
    public init(repeating value: T, count: Int, lock: Lock? = nil) throws {
        try self.init(count: count, lock: lock) { $0.initialize(repeating: value) }
    }

    /// An array holding `elements`, guarded by `lock` (a new `Lock` when nil).
    public init<C: Collection>(_ elements: C, lock: Lock? = nil) throws where C.Element == T {
        try self.init(count: elements.count, lock: lock) { _ = $0.initialize(from: elements) }
    }

    /// `count` elements that `fill` initializes (in shared memory, or in a buffer whose
    /// bytes rank 0 then serves).
    private init(count: Int, lock: Lock?, fill: (UnsafeMutableBufferPointer<T>) -> Void) throws {
        guard MPIObjects.isServing else {
            try self.init(count: count, lock: lock)
            fill(UnsafeMutableBufferPointer(start: base!, count: count))
            return
        }
        guard count >= 0 else {
            throw SynchronizationError(.invalidArgument, "a SharedArray needs a count ≥ 0, not \(count)")
        }
        let (size, overflow) = count.multipliedReportingOverflow(by: MemoryLayout<T>.stride)
        guard !overflow else {
            throw SynchronizationError(.invalidArgument, "a SharedArray of \(count) \(T.self) is too large")
        }
        let lock = try lock ?? Lock()
        guard lock.served != nil else {
            throw MPIObjectError(
                .unavailable,
                "a SharedArray created under mpirun is served by rank 0 and needs a Lock "
                    + "created under mpirun too (this one lives in local shared memory): pass nil or a Lock made by rank 0")
        }
        let buffer = UnsafeMutableBufferPointer<T>.allocate(capacity: Swift.max(count, 1))
        defer { buffer.deallocate() }
        fill(UnsafeMutableBufferPointer(rebasing: buffer[0..<count]))
        let bytes = Array(UnsafeRawBufferPointer(start: buffer.baseAddress, count: size))
        self.init(lock: lock, served: MPIServedValue(bytes: bytes), count: count)
    }

    private init(lock: Lock, served: MPIServedValue, count: Int) {
        self.lock = lock
        segment = nil
        self.count = count
        base = nil
        self.served = served
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
        served = nil
    }

    private enum CodingKeys: String, CodingKey { case lock, segment, count, stride, served }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        let stride = try container.decode(Int.self, forKey: .stride)
        guard stride == MemoryLayout<T>.stride else {
            throw PoolError(.encoding, "a SharedArray<\(T.self)> arrived with \(stride)-byte elements, not \(MemoryLayout<T>.stride)")
        }
        let id = try container.decode(UInt64.self, forKey: .served)
        if id != 0 {
            try MPIServedObject.checkDecoding("SharedArray")
            let count = try container.decode(Int.self, forKey: .count)
            guard count >= 0 else { throw PoolError(.encoding, "a SharedArray arrived with \(count) elements") }
            self.init(lock: try container.decode(Lock.self, forKey: .lock), served: MPIServedValue(id: id), count: count)
            return
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
        if let served {
            try MPIServedObject.checkEncoding("SharedArray", id: served.object.id)
            try container.encode(served.object.id, forKey: .served)
            try container.encode(count, forKey: .count)
            try container.encode(lock, forKey: .lock)
            return
        }
        try container.encode(UInt64(0), forKey: .served)
        try container.encode(segment!, forKey: .segment)
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
            // Served: rank 0 reads and writes an element whole, so one message needs no lock.
            guard let base else { return served!.element(index, as: T.self) }
            return lock.withReentrantAccess { base[index] }
        }
        nonmutating set {
            precondition(index >= 0 && index < count, "SharedArray index \(index) out of range 0..<\(count)")
            guard let base else { return served!.setElement(index, newValue) }
            lock.withReentrantAccess { base[index] = newValue }
        }
    }

    /// Runs `body` on all the elements holding the lock.
    @inlinable @discardableResult
    public func withLock<R, E: Error>(_ body: (UnsafeMutableBufferPointer<T>) throws(E) -> R) throws(E) -> R {
        try lock.withReentrantAccess { () throws(E) -> R in
            guard let base else { return try served!.withElements(T.self, count: count, body) }
            return try body(UnsafeMutableBufferPointer(start: base, count: count))
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
        try self.init(repeating: .zero, count: count, lock: lock)
    }
}
