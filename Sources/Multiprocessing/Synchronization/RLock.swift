#if canImport(Glibc)
import Glibc
#endif

/// A re-entrant lock shared between processes: Python's `multiprocessing.RLock`.
///
/// The holder (one thread of one process) may acquire it again; it is free once released as
/// many times as acquired. Robust like `Lock`: if the holding process dies, the next
/// acquirer gets it with a count of one (`acquireReportingRecovery()` says so).
///
/// Underneath: a robust, process-shared, recursive `pthread_mutex_t` in a shared segment.
public struct RLock: Codable, Sendable {
    /// The shared memory holding the mutex.
    public let segment: SharedSegment?
    let mutex: SharedMutex?
    /// Under mpirun: the lock rank 0 serves to every rank over MPI messages (owned by the
    /// acquiring thread on rank 0, by the task on a worker rank).
    let served: MPIServedLock?

    /// A new, unlocked re-entrant lock.
    public init() throws {
        (segment, mutex, served) = try MutexParts.make(kind: .recursive, name: "an RLock")
    }

    public init(from decoder: any Decoder) throws {
        (segment, mutex, served) = try MutexParts.decode(kind: "RLock", from: decoder)
    }

    public func encode(to encoder: any Encoder) throws {
        try ServedOrLocalCoding.encode(servedID: served?.object.id, segment: segment, kind: "RLock", to: encoder)
    }

    /// Acquires the lock (again, if this thread holds it), saying whether its previous holder
    /// died holding it. `timeout` in seconds; nil waits for ever; `blocking: false` tries once.
    ///
    /// The corresponding C functions are `pthread_mutex_lock`, `pthread_mutex_trylock` and
    /// `pthread_mutex_timedlock`.
    public func acquireReportingRecovery(blocking: Bool = true, timeout: Double? = nil) throws(SynchronizationError) -> Lock.Acquisition {
        guard let mutex else { return try served!.acquire(timeout: blocking ? timeout : 0) }
        do {
            switch try mutex.lock(timeout: blocking ? timeout : 0) {
            case .acquired: return .acquired
            case .acquiredFromDeadOwner: return .acquiredFromDeadOwner
            case .timedOut: return .timedOut
            }
        } catch {
            throw SynchronizationError(error, "cannot acquire an RLock")
        }
    }

    /// Acquires the lock; returns false if the timeout passed. Python's `RLock.acquire`.
    @discardableResult
    public func acquire(blocking: Bool = true, timeout: Double? = nil) throws(SynchronizationError) -> Bool {
        try acquireReportingRecovery(blocking: blocking, timeout: timeout).isAcquired
    }

    /// Releases one level of the lock.
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
                release() of an RLock this thread does not hold: only the thread that \
                acquired it may release it, as many times as it acquired it
                """)
        } catch {
            throw SynchronizationError(error, "cannot release an RLock")
        }
    }

    /// Runs `body` holding the lock, releasing it however `body` ends.
    public func withLock<R>(_ body: () throws -> R) throws -> R {
        try acquire()
        defer { try? release() }
        return try body()
    }

    /// Whether some thread, in any process, holds the lock now: a snapshot.
    public var isLocked: Bool { mutex.map { $0.ownerThreadID != 0 } ?? served!.state.locked }

    /// Whether the calling thread holds the lock.
    public var isHeldByCurrentThread: Bool { mutex.map { $0.isHeldByCurrentThread } ?? served!.state.mine }
}
