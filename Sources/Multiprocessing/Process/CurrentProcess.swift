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
}

/// Set once at the start of a child role, before any user code runs.
enum CurrentProcess {
    private static let lock = ConditionLock(resetInForkedChild: true)
    nonisolated(unsafe) private static var childName: String?
    nonisolated(unsafe) private static var childDaemon = false

    static var identity: ProcessIdentity {
        lock.withLock {
            ProcessIdentity(name: childName ?? "MainProcess", pid: getpid(), isMain: childName == nil,
                            daemon: childDaemon)
        }
    }

    /// Initialises this type's state in a parent about to fork, so that a forked child's
    /// `becomeChild` does not (a lock allocated and initialised in every child otherwise:
    /// ~40 µs of copy-on-write faults here).
    static func prepareForFork() {
        lock.withLock {}
    }

    /// Marks this process as a child named `name`.
    static func becomeChild(named name: String, daemon: Bool) {
        lock.withLock {
            childName = name
            childDaemon = daemon
        }
    }
}
