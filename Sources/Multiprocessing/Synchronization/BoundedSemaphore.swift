/// A semaphore that cannot be released above its initial value: Python's
/// `multiprocessing.BoundedSemaphore`. Releasing more than was acquired throws
/// `SynchronizationError(.releasedTooManyTimes)` (Python's `ValueError`), which catches
/// unbalanced releases early.
///
/// Underneath: a 32-bit counter in a shared segment and a futex, like `Semaphore`.
public struct BoundedSemaphore: Codable, Sendable {
    let core: SemaphoreCore

    /// The shared memory holding the counter.
    public var segment: SharedSegment { core.segment }

    /// A bounded semaphore with `value` units (default 1), which is also its upper bound.
    public init(value: Int = 1) throws {
        try MPIObjects.refuseIfServing("BoundedSemaphore", use: "Lock, or a Queue holding tokens")
        core = try SemaphoreCore(value: value, bounded: true, kind: "BoundedSemaphore")
    }

    public init(from decoder: any Decoder) throws {
        core = SemaphoreCore(segment: try SharedSegment(from: decoder))
    }

    public func encode(to encoder: any Encoder) throws {
        try core.segment.encode(to: encoder)
    }

    /// Takes one unit, waiting while there is none; returns false if `timeout` seconds
    /// passed first (nil: wait for ever; `blocking: false`: never wait).
    /// The corresponding system call is `futex(FUTEX_WAIT)`.
    @discardableResult
    public func acquire(blocking: Bool = true, timeout: Double? = nil) -> Bool {
        core.acquire(blocking: blocking, timeout: timeout)
    }

    /// Gives `count` units back, waking as many waiters.
    /// - Throws: `SynchronizationError(.releasedTooManyTimes)` above the initial value.
    /// The corresponding system call is `futex(FUTEX_WAKE)`.
    public func release(_ count: Int = 1) throws(SynchronizationError) {
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
    public var value: Int { core.currentValue }
}
