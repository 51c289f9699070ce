/// A counting semaphore shared between processes: Python's `multiprocessing.Semaphore`.
///
/// `acquire()` takes one unit, waiting while the value is 0; `release()` gives units back.
/// Any thread of any process may release (a semaphore has no owner), so a process that dies
/// after `acquire()` does not give its unit back: use a `Lock` where that matters.
///
/// Underneath: a 32-bit counter in a shared segment and a futex; no system call unless a
/// waiter sleeps.
public struct Semaphore: Codable, Sendable {
    let storage: SemaphoreStorage
    var core: SemaphoreCore { storage.core }

    /// The shared memory holding the counter; nil for a semaphore served by rank 0 under
    /// mpirun (created there while worker ranks exist: it is then served by messages).
    public var segment: SharedSegment? { storage.segment }

    /// A semaphore with `value` units (default 1).
    public init(value: Int = 1) throws {
        storage = try SemaphoreStorage(value: value, bounded: false, kind: "Semaphore")
    }

    public init(from decoder: any Decoder) throws {
        storage = try SemaphoreStorage(from: decoder, kind: "Semaphore")
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

/// This module's `Semaphore`, under a name `Glibc` does not also use (Glibc's overlay has a
/// `Semaphore` typealias, so where both are imported the bare name is ambiguous).
public typealias _MultiprocessingSemaphore = Semaphore

extension Multiprocessing {
    /// The process-shared `Semaphore`: write `Multiprocessing.Semaphore` where `Glibc` (or
    /// Foundation, which re-exports it) is imported too and the bare name is ambiguous.
    public typealias Semaphore = _MultiprocessingSemaphore
}
