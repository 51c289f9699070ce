import CSystemShims

/// How a child process ended.
enum ChildExit: Sendable, Equatable {
    case exited(Int32)
    case signaled(Int32)

    init(waitStatus status: Int32) {
        if CSystemShims_WIFSIGNALED(status) != 0 {
            self = .signaled(CSystemShims_WTERMSIG(status))
        } else {
            self = .exited(CSystemShims_WEXITSTATUS(status))
        }
    }

    /// Python's convention: the exit status, or minus the signal number.
    var pythonExitCode: Int32 {
        switch self {
        case .exited(let code): return code
        case .signaled(let signal): return -signal
        }
    }

    /// As raw `waitpid` status, for relaying across a socket.
    var waitStatus: Int32 {
        switch self {
        case .exited(let code): return (code & 0xff) << 8
        case .signaled(let signal): return signal & 0x7f
        }
    }
}
