#if canImport(Glibc)
import Glibc
#endif

/// Processes that a worker rank's tasks started and left running (a task forked a child and
/// returned, or its worker died first). Such a process keeps the rank's standard output and
/// error open, and mpirun waits for those to close before it ends the job — for as long as
/// the process lives.
///
/// At the job's end (`RankRelay`'s `terminate`), a worker rank that leads its own process
/// group — Open MPI starts each rank so — ends the processes still in that group with
/// SIGKILL, as a batch system ends what a job step leaves, and says so on standard error.
/// Processes that left the group (`setsid`, `setpgid`: daemons) are left alone, as is
/// everything when the rank does not lead its group (then the group may hold its launcher).
enum LeftoverProcesses {
    /// Ends the other processes of this process's group if it leads it; returns their pids.
    static func end() -> [pid_t] {
        let group = getpgrp()
        guard group == getpid() else { return [] }
        var ended: [pid_t] = []
        // Again until none is left: one may fork while it is being found.
        for _ in 0..<10 {
            let members = members(of: group)
            guard !members.isEmpty else { break }
            for pid in members where kill(pid, SIGKILL) == 0 && !ended.contains(pid) { ended.append(pid) }
        }
        return ended
    }

    /// The live processes (not zombies) of process group `group` other than this one.
    static func members(of group: pid_t) -> [pid_t] {
        guard let directory = opendir("/proc") else { return [] }
        defer { closedir(directory) }
        let me = getpid()
        var found: [pid_t] = []
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            guard let pid = pid_t(name), pid != me, ProcessStat.processGroup(of: pid) == group else { continue }
            found.append(pid)
        }
        return found
    }
}
