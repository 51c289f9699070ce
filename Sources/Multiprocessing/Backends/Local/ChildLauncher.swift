import CSystemShims

#if canImport(Glibc)
import Glibc
#endif

/// Starting children: `posix_spawn` of this executable with a marker, or `fork`.
/// Call these on the supervisor thread (`ProcessSupervisor.perform`).
enum ChildLauncher {
    /// The environment variable that makes the library's start-up hook run a child role
    /// instead of `main`. It exists only in the spawned child's environment.
    static let markerVariable = CSYSTEMSHIMS_MARKER

    /// Variables a child must not inherit inside an mpirun job (it would die in MPI_Init or
    /// be captured as an MPI worker rank).
    static func isScrubbed(_ entry: String) -> Bool {
        entry.hasPrefix("OMPI_") || entry.hasPrefix("PMIX_") || entry.hasPrefix("OPAL_")
            || entry.hasPrefix(markerVariable + "=") || entry.hasPrefix(CurrentProcess.parentVariable + "=")
    }

    /// Spawns `/proc/self/exe` running `spec`; `fds` arrive in the child as 3, 4, ….
    static func spawn(spec: String, passing fds: [Int32]) throws(SystemError) -> pid_t {
        // Move the descriptors out of the way of the target numbers first: just past them (a
        // fixed number such as 100 fails with EINVAL under a descriptor limit below it).
        var high: [Int32] = []
        defer { high.forEach(systemClose) }
        for fd in fds {
            high.append(try syscallRetrying("fcntl(F_DUPFD_CLOEXEC)") { fcntl(fd, F_DUPFD_CLOEXEC, Int32(3 + fds.count)) })
        }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        for (index, fd) in high.enumerated() {
            posix_spawn_file_actions_adddup2(&actions, fd, Int32(3 + index))
        }
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        // Children start with default signal handling and an empty mask.
        var defaults = sigset_t()
        sigfillset(&defaults)
        sigdelset(&defaults, SIGKILL)
        sigdelset(&defaults, SIGSTOP)
        var empty = sigset_t()
        sigemptyset(&empty)
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setsigmask(&attributes, &empty)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK))

        var environment: [String] = []
        var cursor = environ
        while let entry = cursor.pointee {
            let string = String(cString: entry)
            if !isScrubbed(string) { environment.append(string) }
            cursor += 1
        }
        environment.append("\(markerVariable)=\(spec)")
        environment.append(CurrentProcess.parentEnvironmentEntry)
        let program = "/proc/self/exe"
        // The program's arguments, as Python's spawn gives a child the parent's `sys.argv`: a
        // task that reads an option from the command line finds it (`CommandLine.arguments`).
        let arguments = CommandLine.arguments.isEmpty ? ["swiftmp-worker"] : CommandLine.arguments
        var pid: pid_t = 0
        let result = withCStrings(arguments) { argv in
            withCStrings(environment) { envp in
                posix_spawn(&pid, program, &actions, &attributes, argv, envp)
            }
        }
        if result != 0 { throw SystemError("posix_spawn(/proc/self/exe)", errno: result) }
        return pid
    }

    /// Forks; the child runs `child` (which must end with `_exit`), the parent gets the pid.
    /// The child starts with ForkGuard's and the other process-wide locks new and unlocked,
    /// and without the parent's buffered output (`ForkGuard.forking`): it can start
    /// processes and pools of its own, and never prints the parent's lines again.
    static func fork(child: () -> Never) throws(SystemError) -> pid_t {
        fflush(nil)
        let me = CurrentProcess.identity
        let pid = try forkUnderGuard()
        if pid == 0 {
            CurrentProcess.forked(from: me)
            child()
        }
        return pid
    }

    /// Kills a child of this process that was just started and cannot be looked after (its
    /// pidfd could not be opened, its start failed half-way) and reaps it, so that it neither
    /// runs on unwatched nor stays a zombie.
    static func killAndReap(_ pid: pid_t) {
        _ = Glibc.kill(pid, SIGKILL)
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
    }

    /// `fork()` under `ForkGuard.forking`: the pid in the parent, 0 in the child.
    static func forkUnderGuard() throws(SystemError) -> pid_t {
        let (pid, code) = ForkGuard.forking {
            let pid = Glibc.fork()
            return (pid, pid < 0 ? Glibc.errno : 0)
        }
        if pid < 0 { throw SystemError("fork", errno: code) }
        return pid
    }

    /// In a new child: die with the parent, make sure the parent still lives, close every
    /// descriptor from `firstToClose` up, read standard input from /dev/null (Python's
    /// children do) and remove the mpirun job's variables from the environment. All in C: right after a fork every page this touches is copied, so it
    /// allocates nothing. Ends the child (status 70) if any step fails.
    /// `keeping` (ascending, each ≥ `firstToClose`) stay open. With `affinity`, the child
    /// first takes that CPU affinity (`SameCPUStart`).
    static func becomeChild(
        parent: pid_t, firstToClose: Int32, keeping keep: UnsafeBufferPointer<Int32>? = nil,
        affinity: UnsafePointer<CSystemShims_affinity>? = nil
    ) {
        let result = CSystemShims_become_child_keeping(
            parent, SIGKILL, UInt32(firstToClose),
            keep?.baseAddress, Int32(keep?.count ?? 0), affinity)
        if result == 0 { return }
        let code = errno
        if result != -2 { // -2: the parent already ended; nothing to report to
            let step =
                switch result {
                case -1: "prctl(PR_SET_PDEATHSIG)"
                case -3: "close_range"
                case -5: "sched_setaffinity (taking the CPUs of the thread that forked it)"
                case -6: "rt_sigprocmask (unblocking every signal)"
                default: "unsetenv"
                }
            printError("swiftmp child \(getpid()): \(SystemError(step, errno: code))")
        }
        _exit(70)
    }
}

/// Calls `body` with a NULL-terminated C array of the strings.
func withCStrings<R>(_ strings: [String], _ body: ([UnsafeMutablePointer<CChar>?]) -> R) -> R {
    var pointers: [UnsafeMutablePointer<CChar>?] = strings.map { strdup($0) }
    pointers.append(nil)
    defer { for pointer in pointers { free(pointer) } }
    return body(pointers)
}
