#if canImport(Glibc)
import Glibc
#endif

/// What `/proc/<pid>/stat` says of a process of this machine: `proc(5)`'s fields, read
/// after the command name (which may hold spaces and parentheses), so that `fields[0]` is
/// field 3, the state.
enum ProcessStat {
    /// Fields 3 onwards of `/proc/<pid>/stat`; nil when the process is gone or the file
    /// unreadable.
    static func fields(of pid: Int32) -> [Substring]? {
        guard pid > 0, let text = readSmallFile("/proc/\(pid)/stat", limit: 4096, followingLinks: false),
            let close = text.lastIndex(of: ")")
        else { return nil }
        return text[text.index(after: close)...].split(separator: " ")
    }

    /// The start time (clock ticks after boot) of a running process, or nil if it does not
    /// exist or is a zombie. Field 22.
    static func startTime(of pid: Int32) -> UInt64? {
        guard let fields = fields(of: pid), fields.count > 19, fields[0] != "Z", fields[0] != "X" else { return nil }
        return UInt64(fields[19])
    }

    /// The process group of a live process (not a zombie), or nil. Field 5.
    static func processGroup(of pid: Int32) -> pid_t? {
        guard let fields = fields(of: pid), fields.count > 2, fields[0] != "Z", fields[0] != "X" else { return nil }
        return pid_t(fields[2])
    }

    /// What a process is doing now (its state) and the CPU time it has used so far; nil if it
    /// cannot tell.
    static func activity(of pid: Int32) -> ProcessActivity? {
        guard let fields = fields(of: pid), fields.count > 12, let state = fields[0].first,
            let user = UInt64(fields[11]), let system = UInt64(fields[12])
        else { return nil }
        let ticks = sysconf(Int32(_SC_CLK_TCK))
        guard ticks > 0 else { return nil }
        return ProcessActivity(state: state, cpuNanoseconds: (user + system) * (1_000_000_000 / UInt64(ticks)))
    }
}

/// A process's state and CPU time, from `/proc/<pid>/stat`.
struct ProcessActivity: Equatable {
    /// Field 3: R running or waiting for a CPU, S sleeping, D waiting for a device (paging
    /// in, a slow file system), T stopped by a signal, t stopped by a debugger, Z a zombie…
    var state: Character
    /// User and system time (fields 14 and 15), in ns, at the kernel's clock-tick resolution
    /// (10 ms at the usual 100 Hz).
    var cpuNanoseconds: UInt64

    /// Running (or starved of a CPU: runnable, its time not counted yet), waiting for a
    /// device, or held by a debugger: not stuck asleep in its own code.
    var isRunningOrHeld: Bool { state == "R" || state == "D" || state == "t" }
}
