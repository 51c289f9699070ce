import CSystemShims

#if canImport(Glibc)
import Glibc
#endif

/// What a process knows about itself: Python's `multiprocessing.current_process()`.
public struct ProcessIdentity: Sendable, Equatable, CustomStringConvertible {
    /// `"MainProcess"` in the program's own process; a `Process`'s `name` in its child;
    /// `"PoolWorker-N"` in a pool's worker.
    public var name: String
    /// The process id.
    public var pid: Int32
    /// True in the program's own process, false in a child this library started.
    public var isMain: Bool
    /// Whether this process is a daemon child (terminated when its parent exits).
    public var daemon: Bool

    public var description: String {
        "<\(name) pid=\(pid)\(isMain ? "" : " parent=\(getppid())")\(daemon ? " daemon" : "")>"
    }
}

extension Multiprocessing {
    /// The process this code runs in. Python's `current_process()`.
    public static var currentProcess: ProcessIdentity {
        CurrentProcess.identity
    }

    /// The process that started this one: nil in the program's own process; in a child this
    /// library started (a `Process` child, a pool worker; any start method, nested or not)
    /// the parent's pid and name as the parent saw itself (`"MainProcess"`, or its
    /// `Process` name). For a `.forkserver` child it is the process that asked for it, not
    /// the fork server. Python's `parent_process()`. A target on an MPI rank sees nil.
    public static var parentProcess: ProcessIdentity? {
        CurrentProcess.parent
    }

    /// The live children this process started with `Process` (not pool workers), after
    /// reaping those that ended: Python's `active_children()`. A child is listed from
    /// `start()` until it is seen to end (here, by `join`, `isAlive`, `exitCode` or the
    /// supervisor). Children started on MPI ranks are not listed.
    public static func activeChildren() -> [Process] {
        ProcessRegistry.activeChildren()
    }
}

/// Set once at the start of a child role, before any user code runs.
enum CurrentProcess {
    private static let lock = ConditionLock(resetInForkedChild: true)
    nonisolated(unsafe) private static var childName: String?
    nonisolated(unsafe) private static var childDaemon = false
    nonisolated(unsafe) private static var childOrdinal = ""
    /// Set in a child right after `ChildLauncher.fork`: the process it was forked from, and
    /// the pid of the child it was recorded in (a record inherited by a further fork that did
    /// not go through `ChildLauncher.fork` — the fork server's — is not its parent).
    nonisolated(unsafe) private static var forkedFrom: (parent: ProcessIdentity, child: pid_t)?
    /// The identity of a `.fork` child of a `Process`, recorded by its parent right before the
    /// fork (`prepareForkedChild`), and the parent's pid. The child writes none of it, only its
    /// pid in C (`CSystemShims_mark_forked_child`, on a page it writes anyway): each page a new
    /// child writes is copied, and each lock, runtime function and string it touches on the
    /// way is a page fault of its own (Benchmarks/reports/process-start.md).
    nonisolated(unsafe) private static var pendingChild: (parent: ProcessIdentity, name: String, daemon: Bool, forker: pid_t)?

    /// The environment variable carrying the parent's identity to a spawned child (and
    /// through the fork server, which is spawned, to its children): "pid isMain daemon name".
    static let parentVariable = "SWIFTMP_PARENT"

    /// Worked out when asked, not at the child's start: a forked child that never asks
    /// reads no environment (a libc function the parent never called costs a forked child
    /// a lazy symbol lookup: tens of µs).
    static var parent: ProcessIdentity? {
        let (isChild, forked) = lock.withLock { () -> (Bool, ProcessIdentity?) in
            if let child = forkedChild { return (true, child.parent) }
            guard childName != nil else { return (false, nil) }
            if let forkedFrom, forkedFrom.child == getpid() { return (true, forkedFrom.parent) }
            return (true, nil)
        }
        guard isChild else { return nil }
        if let forked { return forked }
        return getenv(parentVariable).flatMap { parseParent(String(cString: $0)) }
            ?? ProcessIdentity(name: "unknown", pid: getppid(), isMain: false, daemon: false)
    }

    /// `parentVariable=…` for a child spawned by this process.
    static var parentEnvironmentEntry: String {
        let me = identity
        return "\(parentVariable)=\(me.pid) \(me.isMain ? 1 : 0) \(me.daemon ? 1 : 0) \(me.name)"
    }

    /// In a child right after `ChildLauncher.fork`: records `parent` (this process's identity
    /// before the fork).
    static func forked(from parent: ProcessIdentity) {
        lock.withLock { forkedFrom = (parent, getpid()) }
    }

    /// In a child forked by a pool's fork template (`ForkServer.serve`): the template's
    /// record (the pool's process, its parent) is this child's too. Nothing in a child of
    /// the spawned fork server, which has no record.
    static func forkedAgain() {
        lock.withLock {
            if let record = forkedFrom { forkedFrom = (record.parent, getpid()) }
        }
    }

    static var identity: ProcessIdentity {
        lock.withLock { identityLocked }
    }

    /// `identity`, the lock held.
    private static var identityLocked: ProcessIdentity {
        if let child = forkedChild {
            return ProcessIdentity(name: child.name, pid: getpid(), isMain: false, daemon: child.daemon)
        }
        return ProcessIdentity(
            name: childName ?? "MainProcess", pid: getpid(), isMain: childName == nil, daemon: childDaemon)
    }

    /// `pendingChild` if this process is the child it describes (lock held): it was marked
    /// after the fork, and it is not the parent that recorded it. A process forked from that
    /// child in another way (a pool worker) has another pid than the mark it inherited.
    private static var forkedChild: (parent: ProcessIdentity, name: String, daemon: Bool, forker: pid_t)? {
        guard let pending = pendingChild else { return nil }
        let pid = getpid()
        guard pending.forker != pid, CSystemShims_forked_child_pid() == pid else { return nil }
        return pending
    }

    /// In a parent about to fork a `Process` child (`ProcessLauncher`): records the child's
    /// identity, which the child takes as its own once marked (`CSystemShims_mark_forked_child`).
    /// Also initialises this type's lock here rather than in every child.
    static func prepareForkedChild(named name: String, daemon: Bool) {
        lock.withLock {
            let me = identityLocked
            // A forked child about to fork a child of its own: its own identity moves to the
            // fields a spawned child has, before its record is replaced.
            if let child = forkedChild {
                childName = child.name
                childDaemon = child.daemon
                forkedFrom = (child.parent, getpid())
            }
            pendingChild = (me, name, daemon, getpid())
        }
    }

    /// Marks this process as a child named `name`. Its parent is the process it was forked
    /// from by `ChildLauncher.fork`, or else the one named in `parentVariable` (`parent`).
    /// `ordinal`: its place among the program's `Process`es ("" for a pool worker).
    static func becomeChild(named name: String, daemon: Bool, ordinal: String = "") {
        lock.withLock {
            childName = name
            childDaemon = daemon
            childOrdinal = ordinal
        }
    }

    /// This process's place among the program's processes, as Python's `_identity`: "" in
    /// the main program (and a pool worker), "3" in its third `Process`, "3:1" in that one's
    /// first. A new `Process` appends its number (`Process.ordinal`).
    static var ordinal: String {
        lock.withLock { childName == nil ? "" : childOrdinal }
    }

    private static func parseParent(_ text: String) -> ProcessIdentity? {
        let parts = text.split(separator: " ", maxSplits: 3, omittingEmptySubsequences: false)
        guard parts.count == 4, let pid = Int32(parts[0]) else { return nil }
        return ProcessIdentity(name: String(parts[3]), pid: pid, isMain: parts[1] == "1", daemon: parts[2] == "1")
    }
}
