import CSystemShims
#if canImport(Glibc)
import Glibc
#endif

/// The state of one started child, shared with the supervisor thread that reaps it.
final class ProcessState: @unchecked Sendable {
    let lock = ConditionLock()
    let daemon: Bool
    private(set) var pid: pid_t = 0
    private(set) var exit: ChildExit?
    /// Our own copy of the child's pidfd (-1 if none, e.g. a fork server's child): `join`
    /// polls it, so it learns of the exit without waiting for the supervisor thread.
    private var pidfd: Int32 = -1
    /// Whether this state reaps the child itself (a forked child, which the supervisor
    /// thread does not watch): `join`, `isAlive`, `exitCode` and the next `start` reap it
    /// through the pidfd, as Python's `join`, `is_alive` and `start` do.
    private var reaps = false

    init(daemon: Bool) {
        self.daemon = daemon
    }

    deinit { if pidfd >= 0 { systemClose(pidfd) } }

    func started(_ pid: pid_t, pidfd: Int32 = -1, reaps: Bool = false) {
        lock.withLock {
            self.pid = pid
            self.pidfd = pidfd
            self.reaps = reaps
        }
    }

    /// Reaps the child if it ended (a self-reaping state; no wait). Returns whether it ended.
    @discardableResult
    func poll() -> Bool {
        let (ended, changed) = lock.withLock { () -> (Bool, Bool) in
            if exit != nil { return (true, false) }
            guard reaps, pidfd >= 0 else { return (false, false) }
            var status: Int32 = 0
            var child: pid_t = 0
            if CSystemShims_waitid_pidfd(pidfd, WNOHANG, &status, &child) == 0 {
                if child == 0 { return (false, false) }  // still running
                exit = ChildExit(waitStatus: status)
            } else if errno == EINTR {
                return (false, false)
            } else {
                // ECHILD: reaped behind our back (waitpid(-1) elsewhere in the program).
                exit = .exited(255)
            }
            lock.broadcast()
            return (true, true)
        }
        if changed { ProcessRegistry.remove(self) }
        return ended
    }

    /// Records the child's end (the first report wins: a joiner that saw it through the
    /// pidfd, or the supervisor that reaped it).
    func ended(_ exit: ChildExit) {
        lock.withLock {
            if self.exit == nil { self.exit = exit }
            lock.broadcast()
        }
        ProcessRegistry.remove(self)
    }

    /// Waits until the child ended or `deadline` (monotonic ns) passes; true if it ended.
    func waitForExit(until deadline: UInt64?) -> Bool {
        let (fd, done) = lock.withLock { (pidfd, exit != nil) }
        if done { return true }
        if fd >= 0, let ended = waitOnPidfd(fd, until: deadline) { return ended }
        return lock.withLock {
            while exit == nil {
                if let deadline, monotonicNanoseconds() >= deadline { return false }
                lock.wait(until: deadline)
            }
            return true
        }
    }

    /// Polls the pidfd (yielding for up to 1 ms, then sleeping), then reaps the child (a
    /// self-reaping state) or reads its exit status without reaping (`WNOWAIT`: the
    /// supervisor reaps). nil: fall back to waiting for the supervisor (it reaped first).
    private func waitOnPidfd(_ fd: Int32, until deadline: UInt64?) -> Bool? {
        let yieldUntil = monotonicNanoseconds() &+ 1_000_000
        while true {
            if lock.withLock({ exit != nil }) { return true }
            let now = monotonicNanoseconds()
            var timeout: Int64 = deadline.map { $0 > now ? Int64($0 - now) : 0 } ?? -1
            // Yield only within the caller's deadline (join(timeout: 0) must not wait).
            let yielding = now < yieldUntil && deadline.map { now < $0 } ?? true
            if yielding { timeout = 0 }
            var entry = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let ready = CSystemShims_ppoll(&entry, 1, timeout)
            if ready > 0, lock.withLock({ reaps }) {
                if poll() { return true }
                continue  // EINTR
            }
            if ready > 0 {
                var status: Int32 = 0
                var pid: pid_t = 0
                if CSystemShims_waitid_pidfd(fd, WNOHANG | WNOWAIT, &status, &pid) == 0, pid != 0 {
                    ended(ChildExit(waitStatus: status))
                    return true
                }
                return nil
            }
            if ready == 0 {
                if yielding { sched_yield(); continue }
                return lock.withLock { exit != nil }
            }
            if errno != EINTR { return nil }
        }
    }

    /// Sends `signal` unless the child already ended.
    func send(_ signal: Int32) {
        lock.withLock {
            if pid > 0 && exit == nil { _ = Glibc.kill(pid, signal) }
        }
    }
}

/// The children started by this process and not yet ended, for the exit handler: as in
/// Python, daemon children are terminated (SIGTERM, then SIGKILL after 1 s) and non-daemon
/// children are waited for when the program exits normally (`exit` or the end of `main`).
enum ProcessRegistry {
    private static let lock = ConditionLock(resetInForkedChild: true)
    nonisolated(unsafe) private static var live: [ObjectIdentifier: ProcessState] = [:]
    nonisolated(unsafe) private static var installed = false
    nonisolated(unsafe) private static var ownerPID: pid_t = 0

    static func add(_ state: ProcessState) {
        // Reap children that ended without being joined (Python's `start` does the same).
        for child in lock.withLock({ Array(live.values) }) { child.poll() }
        lock.withLock {
            if !installed || ownerPID != getpid() {
                installed = true
                ownerPID = getpid()
                live.removeAll()
                atexit { ProcessRegistry.atExit() }
            }
            live[ObjectIdentifier(state)] = state
        }
    }

    static func remove(_ state: ProcessState) {
        _ = lock.withLock { live.removeValue(forKey: ObjectIdentifier(state)) }
    }

    private static func atExit() {
        let children = lock.withLock { ownerPID == getpid() ? Array(live.values) : [] }
        guard !children.isEmpty else { return }
        fflush(nil)
        for child in children where child.daemon { child.send(SIGTERM) }
        let grace = monotonicNanoseconds() &+ 1_000_000_000
        for child in children where child.daemon {
            if !child.waitForExit(until: grace) {
                child.send(SIGKILL)
                _ = child.waitForExit(until: monotonicNanoseconds() &+ 1_000_000_000)
            }
        }
        for child in children where !child.daemon { _ = child.waitForExit(until: nil) }
    }
}
