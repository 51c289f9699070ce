/// How many processes the kernel's out-of-memory killer has ended on this machine since boot
/// (`oom_kill` in `/proc/vmstat`, Linux 4.13+; nil where it cannot be read). A worker ended by
/// SIGKILL that the pool did not send, while this count rose, was most likely out of memory:
/// its `WorkerDied` says so (`outOfMemory`), as a scientist over a Slurm job's `--mem` or a
/// container's limit needs to know. Counted for the whole machine (cgroup v1 counts no kill
/// above the cgroup it happened in), so another process's kill in the worker's life could be
/// taken for its own: the message says "most likely".
enum OutOfMemoryKills {
    static func count(vmstat path: String = "/proc/vmstat") -> UInt64? {
        guard let text = readSmallFile(path) else { return nil }
        for line in text.split(separator: "\n") where line.hasPrefix("oom_kill ") {
            return UInt64(line.dropFirst("oom_kill ".count))
        }
        return nil
    }
}
