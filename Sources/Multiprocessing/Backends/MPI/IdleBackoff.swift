import CSystemShims

#if canImport(Glibc)
import Glibc
#endif

/// Test-then-sleep pacing for a loop that polls MPI (ARCHITECTURE.md §8: a rank must not burn a
/// core while it waits). After activity it spins for 50 µs (latency), then yields the CPU
/// until 300 µs, then sleeps 20 µs, doubling up to 1 ms (or the caller's `longest`).
///
/// A spin's pause is short (`spinPauses`): the loop's own probe is most of a turn (under
/// `mpi_yield_when_idle` a probe that finds nothing yields the CPU), and a message is seen
/// on average half a turn after it arrived. With 32 pauses (~0.75 µs here) a hot `apply`
/// under mpirun -np 3 waited ~2 µs for each of its two hops; with 2, ~0.8 µs
/// (`Benchmarks/engine-ab.md`, session 13).
///
/// MPI cannot wake a sleeper when a message arrives, so a poller's latency is its sleep's
/// real length: the thread that sleeps first sets its timer slack to 1 µs
/// (`PR_SET_TIMERSLACK`; the default 50 µs made a 20 µs sleep last 70–120 µs here).
struct IdleBackoff {
    static let spinNanoseconds: UInt64 = 50_000
    static let spinPauses = 2
    static let yieldNanoseconds: UInt64 = 300_000
    static let firstSleep: Int64 = 20_000
    static let longestSleep: Int64 = 1_000_000

    private var lastActivity = monotonicNanoseconds()
    private var nextSleep: Int64 = 0
    /// The thread whose timer slack this backoff has tightened.
    private var tightened: pthread_t?
    static let timerSlackNanoseconds: UInt = 1_000

    /// Something happened: the next pauses are short again.
    mutating func noteActivity() {
        lastActivity = monotonicNanoseconds()
        nextSleep = 0
    }

    /// Pauses once, never past `deadline` (monotonic ns). `sleep` does the sleeping (by
    /// default `nanosleep`; a `WakeWord` lets another thread cut it short).
    /// `eager: false` skips the spin and yield: nothing is expected soon (long tasks).
    mutating func pause(
        until deadline: UInt64 = .max, longest: Int64 = IdleBackoff.longestSleep,
        eager: Bool = true, sleep: (Int64) -> Void = IdleBackoff.nanosleep
    ) {
        let now = monotonicNanoseconds()
        let idle = eager ? now &- lastActivity : .max
        if idle < Self.spinNanoseconds {
            for _ in 0..<Self.spinPauses { CSystemShims_cpu_relax() }
            return
        }
        if idle < Self.yieldNanoseconds {
            sched_yield()
            return
        }
        tightenTimerSlack()
        nextSleep = nextSleep == 0 ? min(Self.firstSleep, longest) : min(longest, nextSleep * 2)
        let left = deadline > now ? Int64(clamping: deadline - now) : 0
        sleep(min(nextSleep, left))
    }

    /// Once per thread that sleeps here. A failure (never expected: the value is valid) only
    /// leaves the default slack, so it is not retried.
    private mutating func tightenTimerSlack() {
        let me = pthread_self()
        if let tightened, pthread_equal(tightened, me) != 0 { return }
        tightened = me
        _ = CSystemShims_set_timer_slack(Self.timerSlackNanoseconds)
    }

    static func nanosleep(_ nanoseconds: Int64) {
        guard nanoseconds > 0 else { return }
        var request = timespec(tv_sec: Int(nanoseconds / 1_000_000_000), tv_nsec: Int(nanoseconds % 1_000_000_000))
        _ = Glibc.nanosleep(&request, nil)
    }
}
