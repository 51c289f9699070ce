/// One value in memory shared between processes, without a lock: Python's
/// `multiprocessing.RawValue` (or `Value(…, lock=False)`).
///
/// Reads and writes are plain memory accesses: use it when one process writes and the
/// others read after a synchronisation (a `Barrier`, an `Event`, a finished task), or guard
/// it with a lock of your own. Concurrent writes, or a read racing a write of a type wider
/// than 8 bytes, may tear. `T`: any `BitwiseCopyable` type, as for `SharedValue`.
public struct RawSharedValue<T: BitwiseCopyable>: Codable, @unchecked Sendable {
    // @unchecked: `address` points into `segment`; synchronising is the user's business.
    /// The shared memory holding the value.
    public let segment: SharedSegment
    /// Where the value lives (valid while this handle or a copy of it exists).
    public let address: UnsafeMutablePointer<T>

    /// A shared value starting at `initial`.
    public init(_ initial: T) throws {
        try MPIObjects.refuseIfServing("RawSharedValue", use: "SharedValue (served by rank 0)")
        self.init(segment: try SharedSegment(size: MemoryLayout<T>.size + MemoryLayout<T>.alignment))
        address.initialize(to: initial)
    }

    private init(segment: SharedSegment) {
        self.segment = segment
        address = segment.base.bindMemory(to: T.self, capacity: 1)
    }

    private enum CodingKeys: String, CodingKey { case segment, size }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        let size = try container.decode(Int.self, forKey: .size)
        guard size == MemoryLayout<T>.size else {
            throw PoolError(.encoding, "a RawSharedValue<\(T.self)> arrived with \(size)-byte elements, not \(MemoryLayout<T>.size)")
        }
        self.init(segment: try container.decode(SharedSegment.self, forKey: .segment))
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        // Wire reads keys in the order they were written: keep this order in init(from:).
        try container.encode(MemoryLayout<T>.size, forKey: .size)
        try container.encode(segment, forKey: .segment)
    }

    /// The value; no lock.
    public var value: T {
        get { address.pointee }
        nonmutating set { address.pointee = newValue }
    }
}
