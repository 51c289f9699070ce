import CSystemShims
#if canImport(Glibc)
import Glibc
#endif

/// How a reader waits for a socket that has nothing to read yet: it spins (pausing) for
/// 50 µs, then yields the CPU until 1 ms, then sleeps in `poll`. A sleeping wake-up costs
/// 20–130 µs on each side of a round trip on small VMs (more on an idle machine, whose
/// cores drop into deep idle states), so a peer that answers within microseconds must find
/// its reader awake. Used by `Connection` and by the manager's client and server.
struct ReadinessWait {
    static let spinNanoseconds: UInt64 = 50_000
    static let yieldNanoseconds: UInt64 = 1_000_000

    private var started: UInt64 = 0

    /// Something arrived: the next wait spins again.
    mutating func reset() { started = 0 }

    /// Waits once: a pause, a yield, or (after the spin and yield phases) `poll` on `fd`
    /// for `events` until something happens or `sleepNanoseconds` pass (-1: no limit).
    /// Returns true when the caller should try its non-blocking read again.
    @discardableResult
    mutating func pause(_ fd: Int32, events: Int16 = Int16(POLLIN), sleepNanoseconds: Int64 = -1) -> Bool {
        let now = monotonicNanoseconds()
        if started == 0 { started = now }
        let waited = now &- started
        if waited < Self.spinNanoseconds {
            CSystemShims_cpu_relax()
            return true
        }
        if waited < Self.spinNanoseconds &+ Self.yieldNanoseconds {
            sched_yield()
            return true
        }
        return pollOnce(fd, events: events, timeoutNanoseconds: sleepNanoseconds)
    }
}
