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

    /// The CPU time a process has used so far, user and system (fields 14 and 15), in ns, at
    /// the kernel's clock-tick resolution (10 ms at the usual 100 Hz); nil if it cannot tell.
    static func cpuNanoseconds(of pid: Int32) -> UInt64? {
        guard let fields = fields(of: pid), fields.count > 12, let user = UInt64(fields[11]),
            let system = UInt64(fields[12])
        else { return nil }
        let ticks = sysconf(Int32(_SC_CLK_TCK))
        guard ticks > 0 else { return nil }
        return (user + system) * (1_000_000_000 / UInt64(ticks))
    }
}
