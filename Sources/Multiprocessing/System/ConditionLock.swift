import CSystemShims

#if canImport(Glibc)
import Glibc
#endif

/// A mutex with a condition variable (monotonic clock), for threads of one process.
final class ConditionLock: @unchecked Sendable {
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    private let condition: UnsafeMutablePointer<pthread_cond_t>
    /// False for a lock in the C table of locks reset after fork (never freed).
    private let ownsMemory: Bool

    /// With `resetInForkedChild`, a child forked by `ChildLauncher.fork` gets this lock new
    /// and unlocked, whatever another thread of the parent was doing with it at the fork: for
    /// process-wide locks (statics, never deinitialised) that a child may take, and that the
    /// forking thread never holds while it forks.
    init(resetInForkedChild: Bool = false) {
        if resetInForkedChild {
            var mutex: UnsafeMutableRawPointer?
            var condition: UnsafeMutableRawPointer?
            guard CSystemShims_fork_reset_lock_slot(&mutex, &condition) == 0, let mutex, let condition else {
                fatalError("swiftmp: more than 64 process-wide locks to reset after fork")
            }
            self.mutex = mutex.assumingMemoryBound(to: pthread_mutex_t.self)
            self.condition = condition.assumingMemoryBound(to: pthread_cond_t.self)
            ownsMemory = false
            return
        }
        mutex = .allocate(capacity: 1)
        condition = .allocate(capacity: 1)
        ownsMemory = true
        pthread_mutex_init(mutex, nil)
        var attributes = pthread_condattr_t()
        pthread_condattr_init(&attributes)
        pthread_condattr_setclock(&attributes, CLOCK_MONOTONIC)
        pthread_cond_init(condition, &attributes)
        pthread_condattr_destroy(&attributes)
    }

    deinit {
        guard ownsMemory else { return }
        pthread_cond_destroy(condition)
        pthread_mutex_destroy(mutex)
        condition.deallocate()
        mutex.deallocate()
    }

    func lock() { pthread_mutex_lock(mutex) }
    func tryLock() -> Bool { pthread_mutex_trylock(mutex) == 0 }
    func unlock() { pthread_mutex_unlock(mutex) }

    @inline(__always)
    func withLock<T>(_ body: () throws -> T) rethrows -> T {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return try body()
    }

    func broadcast() { pthread_cond_broadcast(condition) }

    /// Waits (lock held) until signalled or `deadline` (monotonic nanoseconds) passes;
    /// returns false on time-out. Spurious wake-ups return true: re-check the predicate.
    @discardableResult
    func wait(until deadline: UInt64?) -> Bool {
        guard let deadline else {
            pthread_cond_wait(condition, mutex)
            return true
        }
        var ts = timespec(tv_sec: Int(deadline / 1_000_000_000), tv_nsec: Int(deadline % 1_000_000_000))
        return pthread_cond_timedwait(condition, mutex, &ts) != ETIMEDOUT
    }
}

/// Monotonic time in nanoseconds.
@inline(__always)
func monotonicNanoseconds() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) &* 1_000_000_000 &+ UInt64(ts.tv_nsec)
}

/// A deadline `seconds` from now, or nil for none. Negative or NaN timeouts mean "now".
func deadline(after seconds: Double?) -> UInt64? {
    guard let seconds else { return nil }
    if !(seconds > 0) { return monotonicNanoseconds() }
    if seconds > 1e9 { return nil }
    return monotonicNanoseconds() &+ UInt64(seconds * 1e9)
}

private final class ThreadBody {
    let body: @Sendable () -> Void
    init(_ body: @escaping @Sendable () -> Void) { self.body = body }
}

/// Starts a detached thread running `body`. When `body` returns, what it captured is released
/// inside `ForkGuard` activity: that may run deinits (a pool's engine and backend), and a
/// fork must never catch this thread inside the Swift runtime.
func spawnThread(named name: String, _ body: @escaping @Sendable () -> Void) throws(SystemError) {
    typealias Box = ThreadBody
    let threadName = String(name.prefix(15))
    let box = Unmanaged.passRetained(
        Box({
            _ = CSystemShims_set_name(threadName)
            body()
        })
    ).toOpaque()
    var thread = pthread_t()
    var attributes = pthread_attr_t()
    pthread_attr_init(&attributes)
    pthread_attr_setdetachstate(&attributes, Int32(PTHREAD_CREATE_DETACHED))
    defer { pthread_attr_destroy(&attributes) }
    let result = pthread_create(
        &thread, &attributes,
        { context in
            let box = Unmanaged<ThreadBody>.fromOpaque(context!)
            box.takeUnretainedValue().body()
            ForkGuard.enterActivity()
            box.release()
            ForkGuard.leaveActivity()
            return nil
        }, box)
    if result != 0 {
        Unmanaged<AnyObject>.fromOpaque(box).release()
        throw SystemError("pthread_create", errno: result)
    }
}

/// Writes a line to standard error (unbuffered, safe in a child before `_exit`).
func printError(_ message: String) {
    var line = message
    if !line.hasSuffix("\n") { line += "\n" }
    line.withUTF8 { bytes in _ = write(2, bytes.baseAddress, bytes.count) }
}
