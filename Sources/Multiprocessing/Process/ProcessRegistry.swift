import CSystemShims
import Synchronization

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
    /// The eventfd behind `sentinel` for a child without a pidfd of ours (-1 until asked).
    private var endSignal: Int32 = -1

    init(daemon: Bool) {
        self.daemon = daemon
    }

    deinit { releaseDescriptors() }

    /// The process that started the child (its descriptors are open there only).
    private let owner = getpid()

    /// Closes the pidfd and the sentinel's eventfd (`Process.close()`); the child must have
    /// ended (been reaped) already. In a forked child that inherited this state (and drops it,
    /// `ProcessRegistry.add`) they are not its own: nothing is closed.
    func releaseDescriptors() {
        lock.withLock {
            closeIfOpenedHere(pidfd, owner: owner)
            closeIfOpenedHere(endSignal, owner: owner)
            pidfd = -1
            endSignal = -1
        }
    }

    /// A descriptor readable once the child ended: its pidfd, or else an eventfd written
    /// when its end is reported (a fork server's child).
    func sentinel() throws(SystemError) -> Int32 {
        lock.lock()
        defer { lock.unlock() }
        if pidfd >= 0 { return pidfd }
        if endSignal < 0 {
            endSignal = try syscallRetrying("eventfd") { CSystemShims_eventfd(0, O_CLOEXEC | O_NONBLOCK) }
            if exit != nil { signalEnd() }
        }
        return endSignal
    }

    /// Makes the sentinel's eventfd readable (lock held).
    private func signalEnd() {
        guard endSignal >= 0 else { return }
        var one: UInt64 = 1
        _ = write(endSignal, &one, 8)
    }

    func started(_ pid: pid_t, pidfd: Int32 = -1, reaps: Bool = false) {
        lock.withLock {
            self.pid = pid
            self.pidfd = pidfd
            self.reaps = reaps
        }
    }

    /// Whether the child ended, without waiting: a self-reaping state reaps it; another one
    /// reads its status without reaping it (`WNOWAIT`: the supervisor thread reaps), so that
    /// once its sentinel is readable (`wait(on:)`), `exitCode` and `isAlive` say it ended,
    /// as Python's do. Returns whether it ended.
    @discardableResult
    func poll() -> Bool {
        let (ended, changed) = lock.withLock { () -> (Bool, Bool) in
            if exit != nil { return (true, false) }
            guard pidfd >= 0 else { return (false, false) }
            var status: Int32 = 0
            var child: pid_t = 0
            guard reaps else {
                guard CSystemShims_waitid_pidfd(pidfd, WNOHANG | WNOWAIT, &status, &child) == 0 else {
                    guard errno == ECHILD else { return (false, false) }
                    // The supervisor reaped it just now: its report (`ended`) is on its way.
                    let deadline = monotonicNanoseconds() &+ 1_000_000_000
                    while exit == nil, monotonicNanoseconds() < deadline { lock.wait(until: deadline) }
                    return (exit != nil, false)
                }
                guard child != 0 else { return (false, false) }
                exit = ChildExit(waitStatus: status)
                signalEnd()
                lock.broadcast()
                return (true, true)
            }
            if CSystemShims_waitid_pidfd(pidfd, WNOHANG, &status, &child) == 0 {
                if child == 0 { return (false, false) } // still running
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
        // Out of the registry first: a joiner woken below sees it gone from activeChildren().
        ProcessRegistry.remove(self)
        lock.withLock {
            if self.exit == nil {
                self.exit = exit
                signalEnd()
            }
            lock.broadcast()
        }
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

    /// Polls the pidfd (yielding for up to 1 ms while the machine has a CPU free for the
    /// child, `SpinGate`; then sleeping), then reaps the child (a self-reaping state) or
    /// reads its exit status without reaping (`WNOWAIT`: the supervisor reaps). nil: fall
    /// back to waiting for the supervisor (it reaped first).
    private func waitOnPidfd(_ fd: Int32, until deadline: UInt64?) -> Bool? {
        // On a machine with more runnable threads than CPUs the yields take the CPU the
        // child needs to end (Process start + join took 1–3 ms instead of 0.4 ms there).
        // Asked only once a first look found the child running: a `.fork` child queued on
        // its parent's CPU (`SameCPUStart`) has usually ended by then, and the answer costs
        // a read of /proc/loadavg every 2 ms.
        let start = monotonicNanoseconds()
        var yieldUntil: UInt64?
        while true {
            if lock.withLock({ exit != nil }) { return true }
            let now = monotonicNanoseconds()
            var timeout: Int64 = deadline.map { $0 > now ? Int64($0 - now) : 0 } ?? -1
            // The first look never waits; yield only within the caller's deadline
            // (join(timeout: 0) must not wait).
            let first = yieldUntil == nil
            let until = yieldUntil ?? start
            let yielding = first || (now < until && deadline.map { now < $0 } ?? true)
            if yielding { timeout = 0 }
            var entry = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let ready = CSystemShims_ppoll(&entry, 1, timeout)
            if ready > 0, lock.withLock({ reaps }) {
                if poll() { return true }
                continue // EINTR
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
                if first {
                    yieldUntil = SpinGate.spinningPays(now: now) ? start &+ 1_000_000 : start
                    continue
                }
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
    /// Each live child's state and its `Process` (kept alive while the child runs, as
    /// Python keeps its children: `activeChildren()` returns them).
    nonisolated(unsafe) private static var live: [ObjectIdentifier: (state: ProcessState, process: Process)] = [:]
    nonisolated(unsafe) private static var installed = false
    nonisolated(unsafe) private static var ownerPID: pid_t = 0
    /// `ownerPID`, read without the lock by `endChildren`: a `Process` child whose target
    /// started no child of its own ends without touching the lock (a page it would copy).
    private static let owner = Atomic<Int32>(0)

    static func add(_ state: ProcessState, process: Process) {
        // Reap children that ended without being joined (Python's `start` does the same).
        reapEnded()
        lock.withLock {
            if !installed || ownerPID != getpid() {
                installed = true
                ownerPID = getpid()
                owner.store(ownerPID, ordering: .releasing)
                live.removeAll()
                atexit { ProcessRegistry.endChildren() }
            }
            live[ObjectIdentifier(state)] = (state, process)
        }
    }

    /// Reaps the children that ended (a self-reaping child is reaped here; the others were
    /// reaped by the supervisor thread and are removed when it reports them).
    private static func reapEnded() {
        for child in lock.withLock({ ownerPID == getpid() ? live.values.map(\.state) : [] }) { child.poll() }
    }

    /// The live children this process started, after reaping those that ended.
    static func activeChildren() -> [Process] {
        reapEnded()
        return lock.withLock {
            guard ownerPID == getpid() else { return [] }
            return live.values.map(\.process).sorted { ($0.pid ?? 0) < ($1.pid ?? 0) }
        }
    }

    static func remove(_ state: ProcessState) {
        _ = lock.withLock { live.removeValue(forKey: ObjectIdentifier(state)) }
    }

    /// At the end of this process (its `exit`, or the end of a `Process` child's target,
    /// which then ends with `_exit`): terminates the daemon children, waits for the others.
    static func endChildren() {
        guard owner.load(ordering: .acquiring) == CSystemShims_process_id() else { return }
        let children = lock.withLock { ownerPID == getpid() ? live.values.map(\.state) : [] }
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
