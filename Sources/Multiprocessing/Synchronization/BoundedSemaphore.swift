/// A semaphore that cannot be released above its initial value: Python's
/// `multiprocessing.BoundedSemaphore`. Releasing more than was acquired throws
/// `SynchronizationError(.releasedTooManyTimes)` (Python's `ValueError`), which catches
/// unbalanced releases early.
///
/// Underneath: a 32-bit counter in a shared segment and a futex, like `Semaphore`.
public struct BoundedSemaphore: Codable, Sendable {
    private let local: SemaphoreCore?
    /// Under mpirun: the semaphore rank 0 serves to every rank over MPI messages.
    private let served: MPIServedSemaphore?
    var core: SemaphoreCore { local! }

    /// The shared memory holding the counter; nil for a semaphore served by rank 0 under
    /// mpirun (created there while worker ranks exist: it is then served by messages).
    public var segment: SharedSegment? { local?.segment }

    /// A bounded semaphore with `value` units (default 1), which is also its upper bound.
    public init(value: Int = 1) throws {
        if MPIObjects.isServing {
            guard value >= 0 else {
                throw SynchronizationError(.invalidArgument, "a BoundedSemaphore needs a value of 0 or more, not \(value)")
            }
            local = nil
            served = MPIServedSemaphore(value: value, bounded: true)
            return
        }
        local = try SemaphoreCore(value: value, bounded: true, kind: "BoundedSemaphore")
        served = nil
    }

    private enum CodingKeys: String, CodingKey { case served, segment }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        // Wire reads keys in the order they were written: keep this order in encode(to:).
        let id = try container.decode(UInt64.self, forKey: .served)
        if id != 0 {
            try MPIServedObject.checkDecoding("BoundedSemaphore")
            local = nil
            served = MPIServedSemaphore(id: id)
            return
        }
        local = SemaphoreCore(segment: try container.decode(SharedSegment.self, forKey: .segment))
        served = nil
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        if let served {
            try MPIServedObject.checkEncoding("BoundedSemaphore")
            try container.encode(served.object.id, forKey: .served)
            return
        }
        try container.encode(UInt64(0), forKey: .served)
        try container.encode(core.segment, forKey: .segment)
    }

    /// Takes one unit, waiting while there is none; returns false if `timeout` seconds
    /// passed first (nil: wait for ever; `blocking: false`: never wait).
    /// The corresponding system call is `futex(FUTEX_WAIT)`.
    @discardableResult
    public func acquire(blocking: Bool = true, timeout: Double? = nil) -> Bool {
        if let served { return served.acquire(timeout: blocking ? timeout : 0) }
        return core.acquire(blocking: blocking, timeout: timeout)
    }

    /// Gives `count` units back, waking as many waiters.
    /// - Throws: `SynchronizationError(.releasedTooManyTimes)` above the initial value.
    /// The corresponding system call is `futex(FUTEX_WAKE)`.
    public func release(_ count: Int = 1) throws(SynchronizationError) {
        if let served { return try served.release(count) }
        try core.release(count, kind: "BoundedSemaphore")
    }

    /// Runs `body` holding one unit (Python's `with semaphore:`), giving it back however
    /// `body` ends.
    public func withLock<R>(_ body: () throws -> R) throws -> R {
        acquire()
        defer { try? release() }
        return try body()
    }

    /// The number of units available now: a snapshot. Python's `get_value()`.
    public var value: Int { served?.value ?? core.currentValue }
}
