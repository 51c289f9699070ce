#if canImport(Glibc)
import Glibc
#endif

/// A lock shared between processes: Python's `multiprocessing.Lock`, robust against a holder
/// that dies.
///
/// Create it in the parent and store it in a `ParallelFunction` (a pool task or a `Process`
/// target): every worker then uses the same lock, whatever the start method.
///
/// ```swift
/// struct Increment: ParallelFunction {
///     var counter: SharedValue<Int>
///     func callAsFunction(_ n: Int) throws { for _ in 0..<n { try counter.withLock { $0 += 1 } } }
/// }
/// ```
///
/// **Robust.** If the holding process dies (SIGKILL, a crash, `_exit`) the lock does not stay
/// locked: the next acquirer gets it, and `acquireReportingRecovery()` tells it so
/// (`.acquiredFromDeadOwner`), because the state the lock protected may be half-updated.
/// `acquire()` and `withLock` take such a lock silently, like an ordinary acquisition.
///
/// **Owned.** Unlike Python's (a semaphore underneath), only the thread that acquired the
/// lock may release it — that is how the system knows whose death frees it. Releasing a lock
/// this thread does not hold throws `SynchronizationError(.notHeld)`. Acquiring it again from
/// the thread that holds it returns false when not blocking or with a timeout (as Python's,
/// which would wait for the timeout in vain), and throws `.wouldDeadlock` without a timeout
/// instead of waiting for ever.
///
/// Underneath: a robust, process-shared, error-checking `pthread_mutex_t` in a shared segment;
/// ~20 ns to acquire and release when uncontended.
public struct Lock: Codable, Sendable {
    /// The shared memory holding the mutex; nil for a lock served by rank 0 of an mpirun job
    /// (created there while worker ranks exist: see "Under mpirun" below).
    public let segment: SharedSegment?
    @usableFromInline let mutex: SharedMutex?
    /// Under mpirun: the lock rank 0 serves to every rank over MPI messages.
    let served: MPIServedLock?

    /// A new, unlocked lock.
    ///
    /// **Under mpirun** (rank 0 of a job with worker ranks, unless `SWIFTMP_MPI_OBJECTS=local`)
    /// the lock is served by rank 0: a task on any worker rank that stores it acquires and
    /// releases it by messages to rank 0 (answered while an MPI pool is live), and a worker
    /// rank's task owns what it acquires. It cannot reach local child processes.
    public init() throws {
        (segment, mutex, served) = try MutexParts.make(kind: .errorChecking, name: "a Lock")
    }

    public init(from decoder: any Decoder) throws {
        (segment, mutex, served) = try MutexParts.decode(kind: "Lock", from: decoder)
    }

    public func encode(to encoder: any Encoder) throws {
        try ServedOrLocalCoding.encode(servedID: served?.object.id, segment: segment, kind: "Lock", to: encoder)
    }

    /// How an acquisition went.
    public enum Acquisition: Sendable, Equatable {
        /// The lock is now held by this thread.
        case acquired
        /// The lock is now held by this thread, taken over from a holder that died while it
        /// held it: repair or discard the state it protects.
        case acquiredFromDeadOwner
        /// Not acquired: the timeout passed (or, non-blocking, the lock was held).
        case timedOut

        /// Whether the lock is now held (`.acquired` or `.acquiredFromDeadOwner`).
        public var isAcquired: Bool { self != .timedOut }
        /// Whether the previous holder died holding the lock.
        public var previousOwnerDied: Bool { self == .acquiredFromDeadOwner }
    }

    /// Acquires the lock, saying whether its previous holder died holding it.
    ///
    /// - Parameters:
    ///   - blocking: false: try once, never wait.
    ///   - timeout: the longest wait in seconds; nil waits for ever.
    /// - Returns: `.timedOut` also when this thread holds the lock already and `blocking` is
    ///   false or a timeout is given (waiting for itself could only end in a time-out).
    /// - Throws: `SynchronizationError(.wouldDeadlock)` if this thread holds it already and
    ///   would wait for ever (blocking, no timeout).
    ///
    /// The corresponding C functions are `pthread_mutex_lock`, `pthread_mutex_trylock`,
    /// `pthread_mutex_timedlock` and, after `EOWNERDEAD`, `pthread_mutex_consistent`.
    public func acquireReportingRecovery(blocking: Bool = true, timeout: Double? = nil) throws(SynchronizationError) -> Acquisition {
        guard let mutex else {
            do {
                return try served!.acquire(timeout: blocking ? timeout : 0)
            } catch  where error.code == .wouldDeadlock && (!blocking || timeout != nil) {
                return .timedOut
            }
        }
        do {
            switch try mutex.lock(timeout: blocking ? timeout : 0) {
            case .acquired: return .acquired
            case .acquiredFromDeadOwner: return .acquiredFromDeadOwner
            case .timedOut: return .timedOut
            }
        } catch  where error.errno == EDEADLK {
            if !blocking || timeout != nil { return .timedOut }
            throw SynchronizationError(
                .wouldDeadlock,
                """
                this thread already holds the Lock: acquiring it again would wait for ever; \
                release it first, or use an RLock for re-entrant locking
                """)
        } catch {
            throw SynchronizationError(error, "cannot acquire a Lock")
        }
    }

    /// Acquires the lock; returns false if the timeout passed (or, non-blocking, the lock was
    /// held). Python's `Lock.acquire(block, timeout)`. A lock whose holder died is acquired
    /// normally; use `acquireReportingRecovery` to learn about it.
    @discardableResult
    public func acquire(blocking: Bool = true, timeout: Double? = nil) throws(SynchronizationError) -> Bool {
        try acquireReportingRecovery(blocking: blocking, timeout: timeout).isAcquired
    }

    /// Releases the lock.
    /// - Throws: `SynchronizationError(.notHeld)` if this thread does not hold it.
    ///
    /// The corresponding C function is `pthread_mutex_unlock`.
    public func release() throws(SynchronizationError) {
        guard let mutex else { return try served!.release() }
        do {
            try mutex.unlock()
        } catch  where error.errno == EPERM {
            throw SynchronizationError(
                .notHeld,
                """
                release() of a Lock this thread does not hold: only the thread that acquired \
                it may release it
                """)
        } catch {
            throw SynchronizationError(error, "cannot release a Lock")
        }
    }

    /// Runs `body` holding the lock (Python's `with lock:`), releasing it however `body` ends.
    /// Throws what `body` throws, or the acquisition's `SynchronizationError`.
    public func withLock<R>(_ body: () throws -> R) throws -> R {
        try acquire()
        defer { try? release() }
        return try body()
    }

    /// Runs `body` holding the lock — taking it unless this thread holds it already, in which
    /// case `body` runs and the lock stays held. How `SharedValue` and `SharedArray` use their
    /// lock, so that their accessors work inside `lock.withLock { }` (as Python's, whose
    /// default lock is an `RLock`). Traps only if the mutex memory is corrupt.
    @inlinable
    func withReentrantAccess<R, E: Error>(_ body: () throws(E) -> R) throws(E) -> R {
        guard let mutex else { return try withServedAccess(body) }
        let result = pthread_mutex_lock(mutex.address)
        switch result {
        case EDEADLK:
            return try body()
        case 0:
            break
        case EOWNERDEAD:
            let repaired = pthread_mutex_consistent(mutex.address)
            if repaired != 0 { Lock.corrupt("pthread_mutex_consistent", repaired) }
        default:
            Lock.corrupt("pthread_mutex_lock", result)
        }
        defer { pthread_mutex_unlock(mutex.address) }
        return try body()
    }

    /// `withReentrantAccess` on a served lock; a worker rank that cannot reach rank 0 ends
    /// the job (the accessors using it cannot throw).
    @usableFromInline
    func withServedAccess<R, E: Error>(_ body: () throws(E) -> R) throws(E) -> R {
        guard let served else { preconditionFailure("a Lock has neither a mutex nor a served id") }
        do {
            _ = try served.acquire(timeout: nil)
        } catch  where error.code == .wouldDeadlock {
            return try body() // held by this thread (rank 0) or this task (a worker rank) already
        } catch {
            MPIObjectClient.abort(MPIObjectError(.transport, "\(error)"))
        }
        defer { try? served.release() }
        return try body()
    }

    @usableFromInline
    static func corrupt(_ call: String, _ code: Int32) -> Never {
        preconditionFailure("\(call) failed on a shared value's lock: \(SystemError(call, errno: code)) (its shared memory is corrupt)")
    }

    /// Whether some thread, in any process, holds the lock now: a snapshot.
    public var isLocked: Bool { mutex.map { $0.ownerThreadID != 0 } ?? served!.state.locked }

    /// Whether the calling thread holds the lock.
    public var isHeldByCurrentThread: Bool { mutex.map { $0.isHeldByCurrentThread } ?? served!.state.mine }
}
