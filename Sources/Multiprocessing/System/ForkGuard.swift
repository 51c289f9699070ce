import CSystemShims

#if canImport(Glibc)
import Glibc
#endif

/// Keeps the library's own threads out of the Swift runtime while `fork()` runs.
///
/// A child forked while another thread of the parent holds a runtime lock (generic metadata
/// instantiation, for one) hangs for ever when it needs that lock (measured: 13–37 % of
/// children). Our pool threads hold this lock for reading whenever they run code and let go
/// only while they sleep; the supervisor takes it for writing around `fork()`. Writers are
/// preferred, so a busy pool cannot starve a fork.
enum ForkGuard {
    nonisolated(unsafe) private static let attributes: UnsafeMutablePointer<pthread_rwlockattr_t> = {
        let attributes = UnsafeMutablePointer<pthread_rwlockattr_t>.allocate(capacity: 1)
        pthread_rwlockattr_init(attributes)
        pthread_rwlockattr_setkind_np(attributes, Int32(PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP))
        return attributes
    }()

    /// In C, on the page a new `Process` child writes anyway (each page it writes is copied).
    nonisolated(unsafe) private static let lock: UnsafeMutablePointer<pthread_rwlock_t> = {
        let lock = CSystemShims_fork_guard_lock().assumingMemoryBound(to: pthread_rwlock_t.self)
        pthread_rwlock_init(lock, attributes)
        return lock
    }()

    /// Initialised as `lock` was and never used: a forked child's `lock` is made a copy of it
    /// (`CSystemShims_forked_child_reset`).
    nonisolated(unsafe) private static let pristine: UnsafeMutablePointer<pthread_rwlock_t> = {
        let lock = UnsafeMutablePointer<pthread_rwlock_t>.allocate(capacity: 1)
        pthread_rwlock_init(lock, attributes)
        return lock
    }()

    /// A library thread starts running code.
    @inline(__always)
    static func enterActivity() {
        pthread_rwlock_rdlock(lock)
        CSystemShims_set_fork_activity(1)
    }

    /// A library thread is about to sleep or to wait for the supervisor.
    @inline(__always)
    static func leaveActivity() {
        CSystemShims_set_fork_activity(0)
        pthread_rwlock_unlock(lock)
    }

    /// Runs `body` inside this thread's activity, entering it unless the thread holds it
    /// already (a read lock taken twice would wait for a waiting fork that waits for it).
    /// Never call it holding a lock that a thread in activity may wait for.
    static func withActivity<T>(_ body: () throws -> T) rethrows -> T {
        guard CSystemShims_fork_activity() == 0 else { return try body() }
        enterActivity()
        defer { leaveActivity() }
        return try body()
    }

    /// Runs `body` (which blocks, perhaps on the supervisor) outside this thread's activity
    /// if it holds it; a thread that does not hold it just runs `body`.
    static func whileBlocked<T>(_ body: () throws -> T) rethrows -> T {
        guard CSystemShims_fork_activity() != 0 else { return try body() }
        leaveActivity()
        defer { enterActivity() }
        return try body()
    }

    /// Calls `fork` (which calls `fork()` and returns its result and errno) while no library
    /// thread is active. The parent lets go of the lock. The child does not *unlock* it: it
    /// runs on a thread with another id than the one that locked it, and glibc would take
    /// that unlock for a reader's, leaving the lock write-locked for ever (the child's first
    /// fork, or its first pool, would hang). The child makes it new instead, with every other
    /// process-wide lock (`ConditionLock(resetInForkedChild:)`), and drops the bytes the
    /// parent had buffered in `stdout` and `stderr`.
    static func forking(_ fork: () -> (pid: pid_t, errno: Int32)) -> (pid: pid_t, errno: Int32) {
        let lock = lock, pristine = pristine
        pthread_rwlock_wrlock(lock)
        let result = fork()
        if result.pid == 0 {
            CSystemShims_forked_child_reset(lock, pristine)
        } else {
            pthread_rwlock_unlock(lock)
        }
        return result
    }
}
