#if canImport(Glibc)
import Glibc
#endif

/// A system call that failed: which call, the `errno` it left, and `strerror`'s text.
public struct SystemError: Error, CustomStringConvertible, Sendable, Equatable {
    /// The failing C function, e.g. `"mmap"`.
    public var call: String
    /// The `errno` value.
    public var errno: Int32

    public init(_ call: String, errno: Int32) {
        self.call = call
        self.errno = errno
    }

    public var description: String {
        "\(call) failed: \(String(cString: strerror(errno))) (errno \(errno))" + SystemError.advice(for: errno)
    }

    /// What to do about an errno the caller can act on: running out of descriptors.
    static func advice(for errno: Int32) -> String {
        switch errno {
        case EMFILE:
            var limit = rlimit()
            let soft = getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit) == 0 ? " (now \(limit.rlim_cur))" : ""
            return "; this process has as many descriptors open as its limit allows\(soft): each Lock, RLock, "
                + "Semaphore, Event, Condition, Barrier, Queue, SharedValue, SharedArray, Pipe end and Pool "
                + "holds some while it exists — drop those no longer needed, or raise the limit "
                + "(ulimit -n, or setrlimit(RLIMIT_NOFILE) before creating them)"
        case ENFILE:
            return "; the system's table of open files is full (fs.file-max): close descriptors, or raise it"
        default:
            return ""
        }
    }
}

/// Runs a system call returning -1 on failure, retrying on `EINTR`; throws `SystemError`.
/// `errno` is read first, before anything else can overwrite it.
@inline(__always)
@discardableResult
func syscallRetrying<T: FixedWidthInteger>(_ call: String, _ body: () -> T) throws(SystemError) -> T {
    while true {
        let result = body()
        if result != -1 { return result }
        let code = Glibc.errno
        if code == EINTR { continue }
        throw SystemError(call, errno: code)
    }
}

/// Closes `fd` if this process is `owner`, the one that opened it. A forked child inherits
/// its parent's objects but not their descriptors (it closes those at its start, and their
/// numbers soon name its own files): an inherited object dropped there (a replaced manager
/// connection or fork server, a forgotten process) closes nothing.
@inline(__always)
func closeIfOpenedHere(_ fd: Int32, owner: pid_t) {
    if owner == getpid() { systemClose(fd) }
}

/// Closes a descriptor, ignoring `EINTR` on purpose (Linux closes the descriptor anyway;
/// retrying could close a descriptor another thread just opened).
@inline(__always)
func systemClose(_ fd: Int32) {
    if fd >= 0 { _ = Glibc.close(fd) }
}
