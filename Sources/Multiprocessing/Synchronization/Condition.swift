/// A condition variable shared between processes: Python's `multiprocessing.Condition`.
///
/// Hold its lock, test the shared state, and `wait` while it is not what you need; whoever
/// changes the state does so holding the lock and calls `notify` or `notifyAll`:
///
/// ```swift
/// try condition.withLock {
///     _ = try condition.wait(for: { queueLength.value > 0 }, timeout: 5)
/// }
/// ```
///
/// The lock is a `Lock` (Python's default is an `RLock`: here a `wait` must release the lock
/// completely, which a `Lock` always does). `wait` may return true without a `notify` meant
/// for this waiter (a spurious wake-up, as for every condition variable): re-check the state,
/// or use `wait(for:timeout:)`, which does.
///
/// Underneath: a futex on a sequence counter that `notify` increments — not a process-shared
/// `pthread_cond_t`, which cannot be destroyed safely after a waiter was killed.
///
/// **Under mpirun** (rank 0 of a job with worker ranks, unless `SWIFTMP_MPI_OBJECTS=local`)
/// the condition and its lock are served by rank 0 over MPI messages: tasks on any worker
/// rank and threads of rank 0 wait and notify through rank 0, which releases the lock and
/// parks a waiter in one step (no notify is lost); `segment` is nil then.
public struct Condition: Codable, Sendable {
    /// The lock that protects the state the condition is about.
    public let lock: Lock
    /// The shared memory holding the sequence counter; nil for a condition served by rank 0.
    public let segment: SharedSegment?
    private let served: MPIServedCondition?
    private var sequence: UnsafeMutablePointer<UInt32> { segment!.word(0) }
    private var sleepers: UnsafeMutablePointer<UInt32> { segment!.word(1) }

    /// A condition over `lock`, or over a new `Lock` when nil.
    public init(lock: Lock? = nil) throws {
        if MPIObjects.isServing {
            let lock = try lock ?? Lock()
            guard let servedLock = lock.served else {
                throw MPIObjectError(.unavailable, "a Condition created under mpirun is served by rank 0 and needs a Lock "
                    + "created under mpirun too (this one lives in local shared memory): pass nil or a Lock made by rank 0")
            }
            self.init(lock: lock, segment: nil, served: MPIServedCondition(lock: servedLock))
            return
        }
        try self.init(lock: lock ?? Lock(), segment: SharedSegment(size: 8), served: nil)
    }

    private init(lock: Lock, segment: SharedSegment?, served: MPIServedCondition?) {
        self.lock = lock
        self.segment = segment
        self.served = served
    }

    private enum CodingKeys: String, CodingKey { case lock, served, segment }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        let lock = try container.decode(Lock.self, forKey: .lock)
        let id = try container.decode(UInt64.self, forKey: .served)
        if id != 0 {
            try MPIServedObject.checkDecoding("Condition")
            guard let servedLock = lock.served else {
                throw MPIObjectError(.notServed, "a Condition served by rank 0 arrived with a lock that is not served")
            }
            self.init(lock: lock, segment: nil, served: MPIServedCondition(id: id, lock: servedLock))
            return
        }
        self.init(lock: lock, segment: try container.decode(SharedSegment.self, forKey: .segment), served: nil)
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        // Wire reads keys in the order they were written: keep this order in init(from:).
        try container.encode(lock, forKey: .lock)
        if let served {
            try MPIServedObject.checkEncoding("Condition")
            try container.encode(served.object.id, forKey: .served)
            return
        }
        try container.encode(UInt64(0), forKey: .served)
        try container.encode(segment!, forKey: .segment)
    }

    // MARK: the lock

    /// Acquires the underlying lock. See `Lock.acquire`.
    @discardableResult
    public func acquire(blocking: Bool = true, timeout: Double? = nil) throws(SynchronizationError) -> Bool {
        try lock.acquire(blocking: blocking, timeout: timeout)
    }

    /// Releases the underlying lock. See `Lock.release`.
    public func release() throws(SynchronizationError) {
        try lock.release()
    }

    /// Runs `body` holding the underlying lock (Python's `with condition:`).
    public func withLock<R>(_ body: () throws -> R) throws -> R {
        try lock.withLock(body)
    }

    // MARK: waiting

    /// Releases the lock, sleeps until notified or `timeout` seconds pass (nil: for ever),
    /// and acquires the lock again before returning. Returns false on timeout.
    /// - Throws: `SynchronizationError(.notHeld)` if this thread does not hold the lock.
    ///
    /// The corresponding system call is `futex(FUTEX_WAIT)`.
    public func wait(timeout: Double? = nil) throws(SynchronizationError) -> Bool {
        guard lock.isHeldByCurrentThread else {
            throw SynchronizationError(.notHeld, "Condition.wait() without holding its lock: acquire it first (withLock { … })")
        }
        if let served { return try served.wait(timeout: timeout) }
        let deadline = Deadline(seconds: timeout)
        let seen = SharedAtomic.load(sequence)
        SharedAtomic.add(sleepers, 1)
        try lock.release()
        var notified = false
        while true {
            if SharedAtomic.load(sequence) != seen { notified = true; break }
            if !Futex.wait(sequence, while: seen, until: deadline) {
                notified = SharedAtomic.load(sequence) != seen
                break
            }
        }
        SharedAtomic.subtract(sleepers, 1)
        try lock.acquire()
        return notified
    }

    /// Waits until `predicate` (evaluated holding the lock) is true or `timeout` seconds pass
    /// in all; returns the predicate's last value. Python's `wait_for`.
    public func wait(for predicate: () throws -> Bool, timeout: Double? = nil) throws -> Bool {
        let deadline = Deadline(seconds: timeout)
        var result = try predicate()
        while !result {
            if timeout != nil {
                let left = deadline.remaining
                if left <= 0 { break }
                _ = try wait(timeout: Double(left) * 1e-9)
            } else {
                _ = try wait()
            }
            result = try predicate()
        }
        return result
    }

    /// The processes and threads inside `wait` now (for tests that must know a waiter is
    /// asleep before they wake it). Under mpirun, counted by rank 0 (the waiters not yet
    /// notified): nil on a worker rank.
    package var waiterCount: Int? {
        if let served { return served.waiterCount }
        return Int(SharedAtomic.load(sleepers))
    }

    /// Wakes up to `n` waiters (at least one if any waits). Call it holding the lock.
    /// - Throws: `SynchronizationError(.notHeld)` if this thread does not hold the lock.
    ///
    /// The corresponding system call is `futex(FUTEX_WAKE)`.
    public func notify(n: Int = 1) throws(SynchronizationError) {
        guard lock.isHeldByCurrentThread else {
            throw SynchronizationError(.notHeld, "Condition.notify() without holding its lock: acquire it first (withLock { … })")
        }
        if let served {
            if n > 0 { try served.notify(n) }
            return
        }
        guard n > 0, SharedAtomic.load(sleepers) > 0 else { return }
        SharedAtomic.add(sequence, 1)
        Futex.wake(sequence, count: Int32(clamping: n))
    }

    /// Wakes every waiter. Call it holding the lock. Python's `notify_all`.
    public func notifyAll() throws(SynchronizationError) {
        try notify(n: Int(Int32.max))
    }
}
