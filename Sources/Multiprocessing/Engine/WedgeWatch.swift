#if canImport(Glibc)
import Glibc
#endif

/// Watches one worker process for a wedge: a chunk it holds that it has not taken for
/// `limit` ns, its process asleep (not running, not waiting for a device, not held by a
/// debugger) and having used under 1 % of a CPU meanwhile (ARCHITECTURE.md §6, "Wedged
/// workers"). The pool's engine keeps one per local worker (`PoolEngine.replaceWedgedWorkers`)
/// and so does a worker rank for the local workers it relays (`RankRelay`): the same rule on
/// both sides of mpirun.
struct WedgeWatch {
    /// Since when (and at what CPU time of its process) the worker has been seen not to take
    /// the chunk numbered `chunk`, the first it holds.
    private var stall: (chunk: UInt32, since: UInt64, cpu: UInt64)?

    /// How long a worker may hold a chunk untaken, asleep, before it counts as wedged (ns):
    /// `SWIFTMP_WEDGE_SECONDS` (a positive number of seconds; tests shorten it, a slow file
    /// system may need more), else 30 s.
    static let defaultLimitNanoseconds: UInt64 = {
        if let text = getenv("SWIFTMP_WEDGE_SECONDS").map({ String(cString: $0) }), let seconds = Double(text),
            seconds > 0, seconds < 1e9
        {
            return UInt64(seconds * 1e9)
        }
        return 30_000_000_000
    }()

    /// Forgets what was seen (the worker took its chunk, ended, or cannot be watched).
    mutating func forget() { stall = nil }

    /// One look at the worker. `first`: the first chunk it holds unanswered; `taken`: the last
    /// chunk it took (its progress word); `activity`: its process's state and CPU time (read
    /// only when the chunk is not taken);
    /// `away`: the watcher did not look for a while (what it saw before no longer counts).
    /// Returns how long (ns) the worker has been wedged once that is `limit` or more, else nil.
    mutating func look(
        first: UInt32?, taken: UInt32, activity: () -> ProcessActivity?, now: UInt64, away: Bool, limit: UInt64
    ) -> UInt64? {
        guard let first, !WorkerProgress.isAtOrAfter(taken, first), let activity = activity() else {
            stall = nil
            return nil
        }
        guard let stall, stall.chunk == first, !away, !activity.isRunningOrHeld else {
            stall = (first, now, activity.cpuNanoseconds)
            return nil
        }
        let waited = now &- stall.since
        guard waited >= limit else { return nil }
        if activity.cpuNanoseconds &- stall.cpu > waited / 100 {
            self.stall = (first, now, activity.cpuNanoseconds)
            return nil
        }
        self.stall = nil
        return waited
    }
}
