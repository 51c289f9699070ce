#if canImport(Glibc)
import Glibc
#endif

/// The state of one started child, shared with the supervisor thread that reaps it.
final class ProcessState: @unchecked Sendable {
    let lock = ConditionLock()
    let daemon: Bool
    private(set) var pid: pid_t = 0
    private(set) var exit: ChildExit?

    init(daemon: Bool) {
        self.daemon = daemon
    }

    func started(_ pid: pid_t) {
        lock.withLock { self.pid = pid }
    }

    func ended(_ exit: ChildExit) {
        lock.withLock {
            self.exit = exit
            lock.broadcast()
        }
        ProcessRegistry.remove(self)
    }

    /// Waits until the child ended or `deadline` (monotonic ns) passes; true if it ended.
    func waitForExit(until deadline: UInt64?) -> Bool {
        lock.withLock {
            while exit == nil {
                if let deadline, monotonicNanoseconds() >= deadline { return false }
                lock.wait(until: deadline)
            }
            return true
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
    private static let lock = ConditionLock()
    nonisolated(unsafe) private static var live: [ObjectIdentifier: ProcessState] = [:]
    nonisolated(unsafe) private static var installed = false
    nonisolated(unsafe) private static var ownerPID: pid_t = 0

    static func add(_ state: ProcessState) {
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
