import CSystemShims

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
/// `notify(n:)` wakes at most `n` of the threads waiting when it is called (`notifyAll`: all
/// of them), never a thread that starts waiting after it, however the waiters' sleeps and
/// wake-ups interleave with it.
///
/// Underneath: a futex on a sequence counter that `notify` increments, and a count of
/// waiters and of wake-ups granted (one 64-bit word, changed by compare-and-swap): `notify(n)`
/// grants at most `n` wake-ups to the waiters registered then, and a waiter returns
/// notified only by taking one. A waiter whose wait times out deregisters; if a wake-up was
/// granted to it meanwhile, it takes it and returns true. Not a process-shared
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
    /// Waiters registered (high 32 bits) and wake-ups granted to them, not yet taken (low 32
    /// bits); granted ≤ waiters. Changed only by compare-and-swap.
    private var state: UnsafeMutablePointer<UInt64> { (segment!.base + 8).assumingMemoryBound(to: UInt64.self) }

    /// A condition over `lock`, or over a new `Lock` when nil.
    public init(lock: Lock? = nil) throws {
        if MPIObjects.isServing {
            let lock = try lock ?? Lock()
            guard let servedLock = lock.served else {
                throw MPIObjectError(
                    .unavailable,
                    "a Condition created under mpirun is served by rank 0 and needs a Lock "
                        + "created under mpirun too (this one lives in local shared memory): pass nil or a Lock made by rank 0")
            }
            self.init(lock: lock, segment: nil, served: try MPIServedCondition(lock: servedLock))
            return
        }
        try self.init(lock: lock ?? Lock(), segment: SharedSegment(size: 16), served: nil)
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
            try MPIServedObject.checkEncoding("Condition", id: served.object.id)
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
        // Registered holding the lock, so every notify after this sees this waiter, and
        // every notify before it has already run (`registeredAt` tells them apart).
        let registeredAt = SharedAtomic.load(sequence)
        _ = CSystemShims_fetch_add_u64(state, 1 << 32)
        do {
            try lock.release()
        } catch {
            _ = leave()
            throw error
        }
        var notified = false
        while true {
            let seen = SharedAtomic.load(sequence)
            // Only a notify since this waiter registered may have granted it a wake-up.
            if seen != registeredAt && takeWakeUp() { notified = true; break }
            if !Futex.wait(sequence, while: seen, until: deadline) {
                notified = leave()
                break
            }
        }
        try lock.acquire()
        return notified
    }

    /// Takes a granted wake-up (deregistering); false if none is left.
    private func takeWakeUp() -> Bool {
        var current = CSystemShims_load_u64_seqcst(state)
        while current & 0xFFFF_FFFF != 0 {
            if CSystemShims_cas_u64(state, &current, current - (1 << 32) - 1) != 0 { return true }
        }
        return false
    }

    /// Deregisters a waiter that timed out; true if a wake-up was granted to it meanwhile
    /// (every waiter still registered has one), which it takes.
    private func leave() -> Bool {
        var current = CSystemShims_load_u64_seqcst(state)
        while true {
            let granted = current & 0xFFFF_FFFF
            let taking: UInt64 = granted == current >> 32 && granted > 0 ? 1 : 0
            if CSystemShims_cas_u64(state, &current, current - (1 << 32) - taking) != 0 { return taking == 1 }
        }
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

    /// The processes and threads inside `wait` now (registered waiters, which every later
    /// notify reaches: for tests that must know a waiter waits before they wake it). Under
    /// mpirun, counted by rank 0 (the waiters not yet notified): nil on a worker rank.
    package var waiterCount: Int? {
        if let served { return served.waiterCount }
        return Int(CSystemShims_load_u64_seqcst(state) >> 32)
    }

    /// Wakes up to `n` of the waiters waiting now (at least one if any waits); never more,
    /// and never one that starts waiting later. Call it holding the lock.
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
        guard n > 0 else { return }
        var current = CSystemShims_load_u64_seqcst(state)
        var grant: UInt64 = 0
        while true {
            let (waiters, granted) = (current >> 32, current & 0xFFFF_FFFF)
            grant = min(UInt64(n), waiters - granted)
            if grant == 0 { return }
            if CSystemShims_cas_u64(state, &current, current + grant) != 0 { break }
        }
        SharedAtomic.add(sequence, 1)
        // Waiters not asleep yet see the new sequence and take a wake-up themselves; a
        // sleeper woken for a wake-up another took sleeps again.
        Futex.wake(sequence, count: Int32(clamping: grant))
    }

    /// Wakes every waiter. Call it holding the lock. Python's `notify_all`.
    public func notifyAll() throws(SynchronizationError) {
        try notify(n: Int(Int32.max))
    }
}
