import CSystemShims

#if canImport(Glibc)
import Glibc
#endif

/// The bytes this process can be given at most: the machine's memory and swap (`sysinfo`),
/// or less where its cgroups limit it — a container's memory limit, a Slurm job's `--mem`
/// (`task/cgroup`). An allocation larger than that cannot succeed: Linux refuses one beyond
/// the machine even with overcommit (and Swift ends the program when an allocation fails),
/// and beyond a cgroup's limit the kernel's out-of-memory killer ends a process of the
/// cgroup as the pages are touched. A call checks against this first.
struct MemoryLimit: Equatable {
    /// `Int.max` when nothing could be read.
    var bytes: Int
    /// Whether a cgroup's limit (not the machine) sets it.
    var fromCgroup: Bool

    /// Read now (a few small files: callers ask only about large allocations).
    static var current: MemoryLimit {
        let machine = CSystemShims_memory_and_swap_bytes()
        let machineBytes = machine == 0 ? Int.max : Int(clamping: machine)
        let physical = Int(clamping: sysconf(Int32(_SC_PHYS_PAGES))) &* Int(clamping: sysconf(Int32(_SC_PAGESIZE)))
        let swap = machineBytes == Int.max || physical <= 0 ? 0 : max(0, machineBytes - physical)
        return limit(machineBytes: machineBytes, cgroup: cgroupBytes(.current, machineSwapBytes: swap))
    }

    static func limit(machineBytes: Int, cgroup: Int?) -> MemoryLimit {
        guard let cgroup, cgroup < machineBytes else { return MemoryLimit(bytes: machineBytes, fromCgroup: false) }
        return MemoryLimit(bytes: cgroup, fromCgroup: true)
    }

    /// What this process's cgroups let it use: v2 `memory.max` plus the swap it may use
    /// (`memory.swap.max`, at most the machine's); v1 `memory.memsw.limit_in_bytes` (memory and
    /// swap together) or else `memory.limit_in_bytes` plus the machine's swap. Nil if none is limited.
    static func cgroupBytes(_ cgroups: CgroupLimits, machineSwapBytes: Int) -> Int? {
        func bounded(_ value: Int?) -> Int? {
            // v1 writes "no limit" as the largest page count in bytes (about 2⁶³).
            guard let value, value >= 0, value < 1 << 62 else { return nil }
            return value
        }
        return cgroups.smallest(
            v1Controller: "memory", v1Mounts: ["memory"],
            v1: { directory in
                if let both = bounded(CgroupLimits.number(directory + "/memory.memsw.limit_in_bytes")) { return both }
                return bounded(CgroupLimits.number(directory + "/memory.limit_in_bytes")).map { $0 + machineSwapBytes }
            },
            v2: { directory in
                guard let memory = bounded(CgroupLimits.number(directory + "/memory.max")) else { return nil }
                let swap = bounded(CgroupLimits.number(directory + "/memory.swap.max")) ?? machineSwapBytes
                return memory + min(swap, machineSwapBytes)
            })
    }

    /// "this machine's memory and swap (N bytes)" or "this process's cgroup memory limit (N
    /// bytes: a container's or a Slurm job's --mem)", for messages.
    var described: String {
        fromCgroup
            ? "the memory limit of this process's cgroup (\(bytes) bytes: a container's limit or a Slurm job's --mem)"
            : "this machine's memory and swap (\(bytes) bytes)"
    }
}
