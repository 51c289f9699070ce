/// A fixed-size array in memory shared between processes, without a lock: Python's
/// `multiprocessing.RawArray`.
///
/// The fastest way to share bulk numeric data: workers write disjoint parts (e.g. the rows
/// of an image) through `buffer` or the subscript, and the parent reads them once the tasks
/// are done. Nothing is synchronised: concurrent writes to the same element race.
/// `T`: any `BitwiseCopyable` type, as for `SharedValue`.
///
/// "Raw" means without a lock, not without checks: the subscript checks its index in every
/// build, as `Array`'s does (an index out of range stops the process with the index and the
/// range). `buffer` is the unchecked way: an `UnsafeMutableBufferPointer`, whose subscript
/// checks only in debug builds — in a release build an index out of range there reads or
/// writes whatever memory lies beyond the segment. The check costs nothing in a loop over
/// the indices in order (it is hoisted) and ~4 % of an access at indices the optimiser cannot
/// see (`swiftmp bench rawarray`).
public struct RawSharedArray<T: BitwiseCopyable>: RandomAccessCollection, Codable, @unchecked Sendable {
    // @unchecked: `buffer` points into `segment`; synchronising is the user's business.
    /// The shared memory holding the elements.
    public let segment: SharedSegment
    /// The elements (valid while this handle or a copy of it exists), unchecked in release
    /// builds: an index out of range is not caught there. The subscript checks.
    public let buffer: UnsafeMutableBufferPointer<T>

    /// An array of `count` copies of `value`.
    public init(repeating value: T, count: Int) throws {
        try MPIObjects.refuseIfServing(
            "RawSharedArray", use: "SharedArray (served by rank 0; its `withLock` gives the whole buffer), a Queue, or Pool.map to gather an array")
        try self.init(count: count)
        buffer.initialize(repeating: value)
    }

    /// An array holding `elements`.
    public init<C: Collection>(_ elements: C) throws where C.Element == T {
        try MPIObjects.refuseIfServing(
            "RawSharedArray", use: "SharedArray (served by rank 0; its `withLock` gives the whole buffer), a Queue, or Pool.map to gather an array")
        try self.init(count: elements.count)
        _ = buffer.initialize(from: elements)
    }

    private init(count: Int) throws {
        guard count >= 0 else {
            throw SynchronizationError(.invalidArgument, "a RawSharedArray needs a count ≥ 0, not \(count)")
        }
        let (bytes, overflow) = count.multipliedReportingOverflow(by: MemoryLayout<T>.stride)
        guard !overflow else {
            throw SynchronizationError(.invalidArgument, "a RawSharedArray of \(count) \(T.self) is too large")
        }
        self.init(segment: try SharedSegment(size: Swift.max(bytes, 1)), count: count)
    }

    private init(segment: SharedSegment, count: Int) {
        self.segment = segment
        buffer = UnsafeMutableBufferPointer(start: segment.base.bindMemory(to: T.self, capacity: Swift.max(count, 1)), count: count)
    }

    private enum CodingKeys: String, CodingKey { case segment, count, stride }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        let stride = try container.decode(Int.self, forKey: .stride)
        guard stride == MemoryLayout<T>.stride else {
            throw PoolError(.encoding, "a RawSharedArray<\(T.self)> arrived with \(stride)-byte elements, not \(MemoryLayout<T>.stride)")
        }
        let segment = try container.decode(SharedSegment.self, forKey: .segment)
        let count = try container.decode(Int.self, forKey: .count)
        guard count >= 0, count * stride <= segment.size else {
            throw PoolError(.encoding, "a RawSharedArray of \(count) elements arrived with a \(segment.size)-byte segment")
        }
        self.init(segment: segment, count: count)
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        // Wire reads keys in the order they were written: keep this order in init(from:).
        try container.encode(MemoryLayout<T>.stride, forKey: .stride)
        try container.encode(segment, forKey: .segment)
        try container.encode(buffer.count, forKey: .count)
    }

    public var count: Int { buffer.count }
    public var startIndex: Int { 0 }
    public var endIndex: Int { buffer.count }

    /// The element at `index`; no lock. An index outside `0..<count` stops the process (in
    /// every build, as `Array`'s subscript does); `buffer` is the unchecked alternative.
    public subscript(index: Int) -> T {
        get {
            checkIndex(index)
            return buffer[index]
        }
        nonmutating set {
            checkIndex(index)
            buffer[index] = newValue
        }
    }

    @inline(__always)
    private func checkIndex(_ index: Int) {
        // One unsigned comparison covers both ends (a negative index is a huge UInt).
        precondition(UInt(bitPattern: index) < UInt(bitPattern: buffer.count), "RawSharedArray index \(index) out of range 0..<\(buffer.count)")
    }
}

extension RawSharedArray where T: AdditiveArithmetic {
    /// An array of `count` zeros. Python's `RawArray(typecode, count)`.
    public init(count: Int) throws {
        try MPIObjects.refuseIfServing(
            "RawSharedArray", use: "SharedArray (served by rank 0; its `withLock` gives the whole buffer), a Queue, or Pool.map to gather an array")
        try self.init(repeating: .zero, count: count)
    }
}
