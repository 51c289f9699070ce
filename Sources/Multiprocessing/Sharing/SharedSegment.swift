#if canImport(Glibc)
import Glibc
#endif

/// The identity of a shared segment, the same in every process that maps it.
public struct SegmentID: Hashable, Codable, Sendable, CustomStringConvertible {
    public var high: UInt64
    public var low: UInt64

    static func random() -> SegmentID {
        var generator = SystemRandomNumberGenerator()
        return SegmentID(high: generator.next(), low: generator.next())
    }

    public var description: String {
        String(high, radix: 16) + String(low, radix: 16)
    }
}

/// A block of memory shared between processes, anonymous (a memfd): the substrate of locks,
/// shared values, queues. Its handle is `Codable`: a pool function or a `Process` target
/// that stores one as a property finds the same memory in the worker, whatever the start
/// method — forked children inherit the mapping, others receive the descriptor with
/// `SCM_RIGHTS` before the message that mentions it.
public struct SharedSegment: Codable, @unchecked Sendable, Hashable {
    let storage: SegmentStorage

    /// A new zero-filled segment of at least `size` bytes: 1 byte to 1 TiB, and no more than
    /// this process can be given — the machine's memory and swap, or its cgroup's memory limit
    /// (a container's, a Slurm job's `--mem`) — `PoolError(.invalidArgument)` otherwise: such
    /// memory could never be filled (RawSharedArray and SharedArray fill it at once, and a page
    /// past the limit calls the kernel's out-of-memory killer on this or another process).
    public init(size: Int) throws {
        guard size > 0, size <= 1 << 40 else {
            throw PoolError(.invalidArgument, "a shared segment must hold 1 byte to 1 TiB, not \(size)")
        }
        // Below 64 MiB no question (and no file read for every lock or value made).
        if size > 64 << 20 {
            let limit = MemoryLimit.current
            guard size <= limit.bytes else {
                throw PoolError(
                    .invalidArgument,
                    "a shared segment of \(size) bytes is more than \(limit.described): "
                        + "it could never be filled; share less (split the data, or send it in parts through a Queue)")
            }
        }
        let region = try SharedRegion(size: size, name: "swiftmp-shared")
        storage = SegmentStorage(id: .random(), region: region, owned: true)
        SegmentRegistry.register(storage)
    }

    public var id: SegmentID { storage.id }
    public var base: UnsafeMutableRawPointer { storage.region.base }
    public var size: Int { storage.region.size }

    public static func == (a: SharedSegment, b: SharedSegment) -> Bool { a.storage.id == b.storage.id }
    public func hash(into hasher: inout Hasher) { hasher.combine(storage.id) }

    public func encode(to encoder: any Encoder) throws {
        try AttachmentContext.checkSegmentMayTravel()
        var container = encoder.unkeyedContainer()
        try container.encode(storage.id)
        AttachmentContext.record(storage)
    }

    public init(from decoder: any Decoder) throws {
        var container = try decoder.unkeyedContainer()
        let id = try container.decode(SegmentID.self)
        if let known = SegmentRegistry.lookup(id) {
            storage = known
            return
        }
        guard let fd = try AttachmentContext.descriptor(for: id) else {
            throw PoolError(
                .encoding,
                """
                shared memory \(id) is not available in this process: shared objects (locks, \
                shared values, queues) can be passed to a Process or a pool function, not to \
                processes that received them only through a Queue or Pipe
                """)
        }
        // The descriptor stays open: this process may pass the segment on (a Process or a
        // pool of its own, any start method), as its creator does.
        let region = try SharedRegion(adopting: fd)
        let received = SegmentStorage(id: id, region: region, owned: false)
        SegmentRegistry.register(received)
        storage = received
    }
}

/// The mapping behind a `SharedSegment`.
final class SegmentStorage: @unchecked Sendable {
    let id: SegmentID
    let region: SharedRegion
    /// Created here (true) or received from another process.
    let owned: Bool

    init(id: SegmentID, region: SharedRegion, owned: Bool) {
        self.id = id
        self.region = region
        self.owned = owned
    }

    deinit { SegmentRegistry.forget(id) }
}

/// The segments this process maps, by id. Segments created here are held weakly (they go
/// when their last handle goes); segments received from other processes are held until the
/// sender says it dropped them (`release`: a pool worker hears it from its engine), since
/// the sender may mention them again until then.
enum SegmentRegistry {
    private final class Weak { weak var storage: SegmentStorage?; init(_ s: SegmentStorage) { storage = s } }
    private static let lock = ConditionLock(resetInForkedChild: true)
    nonisolated(unsafe) private static var owned: [SegmentID: Weak] = [:]
    nonisolated(unsafe) private static var received: [SegmentID: SegmentStorage] = [:]

    static func register(_ storage: SegmentStorage) {
        lock.withLock {
            if storage.owned {
                owned[storage.id] = Weak(storage)
            } else if received[storage.id] == nil {
                received[storage.id] = storage
            }
        }
    }

    /// How many segments this process holds: created here and alive, received (diagnostics).
    static var counts: (owned: Int, received: Int) {
        lock.withLock { (owned.values.filter { $0.storage != nil }.count, received.count) }
    }

    static func lookup(_ id: SegmentID) -> SegmentStorage? {
        lock.withLock { received[id] ?? owned[id]?.storage }
    }

    /// A received segment its sender dropped: no longer held here (the mapping goes with the
    /// last value in this process that mentions it).
    static func release(_ id: SegmentID) {
        let dropped: SegmentStorage? = lock.withLock { received.removeValue(forKey: id) }
        withExtendedLifetime(dropped) {} // deinit (which takes `lock`) runs outside it
    }

    static func forget(_ id: SegmentID) {
        lock.withLock {
            if owned[id]?.storage == nil { owned[id] = nil }
        }
    }
}
