/// A semaphore that cannot be released above its initial value: Python's
/// `multiprocessing.BoundedSemaphore`. Releasing more than was acquired throws
/// `SynchronizationError(.releasedTooManyTimes)` (Python's `ValueError`), which catches
/// unbalanced releases early.
///
/// Underneath: a 32-bit counter in a shared segment and a futex, like `Semaphore`.
public struct BoundedSemaphore: Codable, Sendable {
    let storage: SemaphoreStorage
    var core: SemaphoreCore { storage.core }

    /// The shared memory holding the counter; nil for a semaphore served by rank 0 under
    /// mpirun (created there while worker ranks exist: it is then served by messages).
    public var segment: SharedSegment? { storage.segment }

    /// A bounded semaphore with `value` units (default 1), which is also its upper bound.
    public init(value: Int = 1) throws {
        storage = try SemaphoreStorage(value: value, bounded: true, kind: "BoundedSemaphore")
    }

    public init(from decoder: any Decoder) throws {
        storage = try SemaphoreStorage(from: decoder, kind: "BoundedSemaphore")
    }

    public func encode(to encoder: any Encoder) throws {
        try storage.encode(to: encoder)
    }

    /// Takes one unit, waiting while there is none; returns false if `timeout` seconds
    /// passed first (nil: wait for ever; `blocking: false`: never wait).
    /// The corresponding system call is `futex(FUTEX_WAIT)`.
    @discardableResult
    public func acquire(blocking: Bool = true, timeout: Double? = nil) -> Bool {
        storage.acquire(blocking: blocking, timeout: timeout)
    }

    /// Gives `count` units back, waking as many waiters.
    /// - Throws: `SynchronizationError(.releasedTooManyTimes)` above the initial value.
    /// The corresponding system call is `futex(FUTEX_WAKE)`.
    public func release(_ count: Int = 1) throws(SynchronizationError) {
        try storage.release(count)
    }

    /// Runs `body` holding one unit (Python's `with semaphore:`), giving it back however
    /// `body` ends.
    public func withLock<R>(_ body: () throws -> R) throws -> R {
        acquire()
        defer { try? release() }
        return try body()
    }

    /// The number of units available now: a snapshot. Python's `get_value()`.
    public var value: Int { storage.value }
}
