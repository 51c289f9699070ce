import CSystemShims
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Who runs the engine's rounds: the pool's thread, or a caller driving its own `apply`
/// (ARCHITECTURE.md §6, "Callers drive their own `apply`"). Whoever holds the baton owns every
/// piece of engine and backend state; the other side keeps its hands off.
///
/// A synchronous `apply` on an idle pool takes the baton and runs the rounds itself until its
/// result is there, so a hot round trip costs no hand-off between the caller and the pool's
/// thread (two thread wake-ups of 4–5 µs each on this machine). While callers drive, the
/// pool's thread sleeps here instead of in the backend (`sleepWhileDriven`): a submission, a
/// caller leaving work behind, or `idleCheckNanoseconds` (the backend's idle duties: MPI
/// object requests) wake it.
final class EngineBaton: @unchecked Sendable {
    private let mutex = ConditionLock()
    /// A caller waits for the pool's thread to let go (it does so at its next idle wait).
    private let callerWaitingFlag = Atomic<Bool>(false)
    /// A caller holds the baton.
    private let drivingFlag = Atomic<Bool>(false)
    /// When a caller last let go (monotonic ns; 0: never).
    private let lastDriven = Atomic<UInt64>(0)
    /// The pool's thread sleeps on this word while callers drive (1: sleeping).
    private let word = UnsafeMutablePointer<UInt32>.allocate(capacity: 1)
    private let sleeping = UnsafeMutablePointer<UInt32>.allocate(capacity: 1)

    /// After a caller drove, the pool's thread leaves the baton to callers this long when it
    /// idles (the next `apply` then takes it without waiting for the thread).
    static let drivenWindowNanoseconds: UInt64 = 50_000_000

    init() {
        word.initialize(to: 0)
        sleeping.initialize(to: 0)
    }

    deinit {
        word.deallocate()
        sleeping.deallocate()
    }

    // MARK: the pool's thread

    func tryTakeForThread() -> Bool { mutex.tryLock() }
    func releaseByThread() { mutex.unlock() }

    /// Whether a caller waits for the baton now.
    var callerWaiting: Bool { callerWaitingFlag.load(ordering: .sequentiallyConsistent) }

    /// Whether an idle pool's thread should leave the baton to callers: one waits for it,
    /// one holds it, or one drove within `drivenWindowNanoseconds`.
    func callersDrive(now: UInt64 = monotonicNanoseconds()) -> Bool {
        if callerWaiting || drivingFlag.load(ordering: .sequentiallyConsistent) { return true }
        let last = lastDriven.load(ordering: .relaxed)
        return last != 0 && now &- last < Self.drivenWindowNanoseconds
    }

    /// The pool's thread, without the baton: sleeps until `wakeThread()`, `ready()`, or the
    /// timeout.
    func sleepWhileDriven(timeoutNanoseconds: Int64, ready: () -> Bool) {
        let seen = CSystemShims_load_u32_seqcst(word)
        CSystemShims_store_u32_seqcst(sleeping, 1)
        if !ready() && timeoutNanoseconds > 0 {
            ForkGuard.whileBlocked { _ = CSystemShims_futex_wait(word, seen, timeoutNanoseconds) }
        }
        CSystemShims_store_u32_seqcst(sleeping, 0)
    }

    /// Wakes `sleepWhileDriven` (cheap when the pool's thread does not sleep there).
    func wakeThread() {
        _ = CSystemShims_fetch_add_u32(word, 1)
        if CSystemShims_load_u32_seqcst(sleeping) != 0 { _ = CSystemShims_futex_wake(word, 1) }
    }

    // MARK: a caller

    /// Takes the baton for a caller: at once when the pool's thread sleeps or is between
    /// rounds, else after asking it to let go (`askThread` cuts its idle wait short).
    func takeForCaller(askThread: () -> Void) {
        if mutex.tryLock() {
            drivingFlag.store(true, ordering: .sequentiallyConsistent)
            return
        }
        callerWaitingFlag.store(true, ordering: .sequentiallyConsistent)
        askThread()
        mutex.lock()
        callerWaitingFlag.store(false, ordering: .sequentiallyConsistent)
        drivingFlag.store(true, ordering: .sequentiallyConsistent)
    }

    func releaseByCaller() {
        lastDriven.store(monotonicNanoseconds(), ordering: .relaxed)
        drivingFlag.store(false, ordering: .sequentiallyConsistent)
        mutex.unlock()
    }
}
