/// A counting semaphore shared between processes: Python's `multiprocessing.Semaphore`.
///
/// `acquire()` takes one unit, waiting while the value is 0; `release()` gives units back.
/// Any thread of any process may release (a semaphore has no owner), so a process that dies
/// after `acquire()` does not give its unit back: use a `Lock` where that matters.
///
/// Underneath: a 32-bit counter in a shared segment and a futex; no system call unless a
/// waiter sleeps.
public struct Semaphore: Codable, Sendable {
    private let local: SemaphoreCore?
    /// Under mpirun: the semaphore rank 0 serves to every rank over MPI messages.
    private let served: MPIServedSemaphore?
    var core: SemaphoreCore { local! }

    /// The shared memory holding the counter; nil for a semaphore served by rank 0 under
    /// mpirun (created there while worker ranks exist: it is then served by messages).
    public var segment: SharedSegment? { local?.segment }

    /// A semaphore with `value` units (default 1).
    public init(value: Int = 1) throws {
        if MPIObjects.isServing {
            guard value >= 0 else {
                throw SynchronizationError(.invalidArgument, "a Semaphore needs a value of 0 or more, not \(value)")
            }
            local = nil
            served = MPIServedSemaphore(value: value, bounded: false)
            return
        }
        local = try SemaphoreCore(value: value, bounded: false, kind: "Semaphore")
        served = nil
    }

    private enum CodingKeys: String, CodingKey { case served, segment }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        // Wire reads keys in the order they were written: keep this order in encode(to:).
        let id = try container.decode(UInt64.self, forKey: .served)
        if id != 0 {
            try MPIServedObject.checkDecoding("Semaphore")
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
            try MPIServedObject.checkEncoding("Semaphore")
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
    /// The corresponding system call is `futex(FUTEX_WAKE)`.
    public func release(_ count: Int = 1) throws(SynchronizationError) {
        if let served { return try served.release(count) }
        try core.release(count, kind: "Semaphore")
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

/// This module's `Semaphore`, under a name `Glibc` does not also use (Glibc's overlay has a
/// `Semaphore` typealias, so where both are imported the bare name is ambiguous).
public typealias _MultiprocessingSemaphore = Semaphore

extension Multiprocessing {
    /// The process-shared `Semaphore`: write `Multiprocessing.Semaphore` where `Glibc` (or
    /// Foundation, which re-exports it) is imported too and the bare name is ambiguous.
    public typealias Semaphore = _MultiprocessingSemaphore
}
