import CSystemShims
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// The one long-lived thread that starts and reaps this process's children.
///
/// Why one thread: `PR_SET_PDEATHSIG` fires when the *thread* that forked a child exits,
/// not the process; children started here die with the process and never earlier. Why
/// pidfds: only a parent can reap its child, and `waitpid(-1)` or a SIGCHLD handler would
/// steal children of other code in the process. Each child is watched through its own
/// pidfd and reaped by pid when it exits; the owner's callback then runs on this thread.
///
/// Exception: a `Process` forked with `.fork` from the main thread (which lives as long as
/// the process) is forked there and reaped by its `Process` through its own pidfd
/// (`ProcessState`), without this thread; one forked from another thread is forked here and
/// reaped the same way. So this thread also holds `ForkGuard`'s read side while it runs
/// code: the main thread may fork at any time.
final class ProcessSupervisor: @unchecked Sendable {
    static let shared = ProcessSupervisor()

    private let lock = ConditionLock(resetInForkedChild: true) // the one instance lives for ever
    private var requests: [@Sendable () -> Void] = []
    private var watches: [Int32: Watch] = [:] // by pidfd
    private var sources: [Int32: @Sendable (Int32) -> Bool] = [:] // extra descriptors to poll
    private var started = false
    /// The process the thread was started in: a forked child has no supervisor thread (fork
    /// copies only the calling thread) and starts its own.
    private var startedIn: pid_t = 0
    private var startError: SystemError?
    private var wakeFD: Int32 = -1
    /// The supervisor thread's id, written by that thread when it starts and read by any
    /// thread (`perform`, `watch`) to tell whether it is that thread: an atomic, as a plain
    /// variable read there while the thread starts is a data race (ThreadSanitizer).
    private let threadIDWord = Atomic<pid_t>(0)
    var threadID: pid_t { threadIDWord.load(ordering: .relaxed) }
    /// Whether the supervisor thread holds `ForkGuard`'s activity (read) side: it does while
    /// it runs its own code and callbacks, so another thread (the main thread starting a
    /// `Process`) never forks while it might hold a Swift runtime lock. Only that thread
    /// touches this.
    private var active = false

    private struct Watch {
        let pid: pid_t
        let onExit: @Sendable (ChildExit) -> Void
    }

    private init() {}

    /// How long a caller of `perform` yields before it sleeps; how long the loop keeps
    /// polling (yielding) for more work after it did some, before it sleeps.
    static let callerYieldNanoseconds: UInt64 = 2_000_000
    static let loopYieldNanoseconds: UInt64 = 300_000

    private func ensureStarted() throws(SystemError) {
        lock.lock()
        defer { lock.unlock() }
        if started && startedIn == getpid() { return }
        if started {
            // Inherited from a parent by fork: nothing here is ours.
            requests.removeAll()
            watches.removeAll()
            sources.removeAll()
            started = false
            startError = nil
        }
        if let startError { throw startError }
        do throws(SystemError) {
            wakeFD = try syscallRetrying("eventfd") { CSystemShims_eventfd(0, O_CLOEXEC | O_NONBLOCK) }
            try spawnThread(named: "swiftmp-super") { [self] in self.loop() }
            started = true
            startedIn = getpid()
        } catch {
            startError = error
            throw error
        }
    }

    /// Runs `body` on the supervisor thread soon, without waiting for it: work that need not
    /// hold up the caller (a file read at a pool's start). Does nothing if the thread cannot
    /// start.
    func post(_ body: @escaping @Sendable () -> Void) {
        guard (try? ensureStarted()) != nil else { return }
        lock.withLock { requests.append(body) }
        wake()
    }

    /// Runs `body` on the supervisor thread and returns its result.
    func perform<T: Sendable>(_ body: @escaping @Sendable () throws -> T) throws -> T {
        try ensureStarted()
        if CSystemShims_gettid() == threadID {
            // Called back on this thread: the body may fork (ForkGuard's write side), so it
            // runs outside our activity.
            let wasActive = active
            if wasActive { leaveActivity() }
            defer { if wasActive { enterActivity() } }
            return try body()
        }
        let slot = ResultSlot<T>()
        let done = ConditionLock()
        lock.withLock {
            requests.append {
                let result = Result { try body() }
                done.withLock {
                    slot.result = result
                    done.broadcast()
                }
            }
        }
        wake()
        // The work (a fork) takes a few hundred µs; a sleeping wake-up costs 20–130 µs more
        // on a busy machine, so poll (yielding the CPU) for a while first.
        let spinUntil = monotonicNanoseconds() &+ ProcessSupervisor.callerYieldNanoseconds
        while monotonicNanoseconds() < spinUntil {
            if let result = done.withLock({ slot.result }) { return try result.get() }
            sched_yield()
        }
        return try done.withLock {
            while slot.result == nil { done.wait(until: nil) }
            return try slot.result!.get()
        }
    }

    /// Watches `pid` (a child of this process, started on this thread): when it exits it is
    /// reaped and `onExit` runs on the supervisor thread.
    /// With `duplicate`, returns a copy of the child's pidfd for the caller (who closes it):
    /// a joiner can poll it and learn of the exit without waiting for this thread.
    /// A child that cannot be watched (out of descriptors) is killed and reaped before this
    /// throws: left running, it would never be reported ended.
    @discardableResult
    func watch(pid: pid_t, duplicate: Bool = false, onExit: @escaping @Sendable (ChildExit) -> Void) throws(SystemError) -> Int32 {
        let pidfd: Int32
        do {
            try ensureStarted()
            pidfd = try syscallRetrying("pidfd_open") { CSystemShims_pidfd_open(pid, 0) }
        } catch {
            ChildLauncher.killAndReap(pid)
            throw error
        }
        _ = fcntl(pidfd, F_SETFD, FD_CLOEXEC)
        let copy = duplicate ? fcntl(pidfd, F_DUPFD_CLOEXEC, 0) : -1
        lock.withLock { watches[pidfd] = Watch(pid: pid, onExit: onExit) }
        if CSystemShims_gettid() != threadID { wake() } // on this thread: the loop polls it next
        return copy
    }

    /// Polls `fd` on the supervisor thread; `handler` runs when it is readable (or hung up)
    /// and returns false to stop watching it.
    func addSource(_ fd: Int32, handler: @escaping @Sendable (Int32) -> Bool) throws(SystemError) {
        try ensureStarted()
        lock.withLock { sources[fd] = handler }
        wake()
    }

    private func wake() {
        var one: UInt64 = 1
        _ = write(wakeFD, &one, 8)
    }

    private func enterActivity() {
        ForkGuard.enterActivity()
        active = true
    }

    private func leaveActivity() {
        active = false
        ForkGuard.leaveActivity()
    }

    private func loop() {
        threadIDWord.store(CSystemShims_gettid(), ordering: .relaxed)
        var descriptors: [pollfd] = []
        enterActivity()
        while true {
            let (work, watched, extra) = lock.withLock { () -> ([@Sendable () -> Void], [Int32], [Int32]) in
                let work = requests
                requests.removeAll()
                return (work, Array(watches.keys), Array(sources.keys))
            }
            if !work.isEmpty {
                // Requests fork (ForkGuard's write side): run them outside our activity.
                leaveActivity()
                for item in work { item() }
                enterActivity()
                continue
            }
            descriptors.removeAll(keepingCapacity: true)
            descriptors.append(pollfd(fd: wakeFD, events: Int16(POLLIN), revents: 0))
            for fd in watched { descriptors.append(pollfd(fd: fd, events: Int16(POLLIN), revents: 0)) }
            for fd in extra { descriptors.append(pollfd(fd: fd, events: Int16(POLLIN), revents: 0)) }
            // Right after some work more tends to follow (start, then the child's exit, then
            // the next start): look again without sleeping for a short while.
            // Polling and sleeping run no Swift runtime code: a fork may happen meanwhile.
            leaveActivity()
            var ready: Int32 = 0
            let yieldUntil = monotonicNanoseconds() &+ ProcessSupervisor.loopYieldNanoseconds
            while true {
                ready = pollDescriptors(&descriptors, timeoutMilliseconds: 0)
                if ready != 0 || monotonicNanoseconds() >= yieldUntil { break }
                sched_yield()
            }
            if ready == 0 { ready = pollDescriptors(&descriptors, timeoutMilliseconds: -1) }
            enterActivity()
            if ready < 0 { continue } // EINTR
            if descriptors[0].revents != 0 {
                var value: UInt64 = 0
                _ = read(wakeFD, &value, 8)
            }
            // By index: iterating a slice of `descriptors` kept its buffer referenced, so the
            // `removeAll(keepingCapacity:)` of the next pass allocated a new one, and in a
            // release build the old one was never freed — 128 B more heap per worker that
            // ended (a long run's soak: 384 KB over 3 000 replacements).
            for index in 1..<descriptors.count where descriptors[index].revents != 0 {
                let entry = descriptors[index]
                if watched.contains(entry.fd) {
                    reap(pidfd: entry.fd)
                } else if let handler = lock.withLock({ sources[entry.fd] }) {
                    if !handler(entry.fd) { _ = lock.withLock { sources.removeValue(forKey: entry.fd) } }
                }
            }
        }
    }

    private func reap(pidfd: Int32) {
        guard let watch = lock.withLock({ watches[pidfd] }) else { return }
        var status: Int32 = 0
        var pid: pid_t = 0
        let r = CSystemShims_waitid_pidfd(pidfd, WNOHANG, &status, &pid)
        if r == 0 && pid == 0 { return } // not yet
        _ = lock.withLock { watches.removeValue(forKey: pidfd) }
        systemClose(pidfd)
        // r != 0: someone else reaped it (ECHILD); report it as ended without a status.
        watch.onExit(r == 0 ? ChildExit(waitStatus: status) : .exited(255))
    }
}

private final class ResultSlot<T>: @unchecked Sendable {
    var result: Result<T, any Error>?
}
