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
    nonisolated(unsafe) private static let lock: UnsafeMutablePointer<pthread_rwlock_t> = {
        let lock = UnsafeMutablePointer<pthread_rwlock_t>.allocate(capacity: 1)
        var attributes = pthread_rwlockattr_t()
        pthread_rwlockattr_init(&attributes)
        pthread_rwlockattr_setkind_np(&attributes, Int32(PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP))
        pthread_rwlock_init(lock, &attributes)
        pthread_rwlockattr_destroy(&attributes)
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

    /// Runs `body` (which blocks, perhaps on the supervisor) outside this thread's activity
    /// if it holds it; a thread that does not hold it just runs `body`.
    static func whileBlocked<T>(_ body: () throws -> T) rethrows -> T {
        guard CSystemShims_fork_activity() != 0 else { return try body() }
        leaveActivity()
        defer { enterActivity() }
        return try body()
    }

    /// Runs `body` (which forks) while no library thread is active.
    static func whileForking<T>(_ body: () throws -> T) rethrows -> T {
        pthread_rwlock_wrlock(lock)
        defer { pthread_rwlock_unlock(lock) }
        return try body()
    }
}
