import CSystemShims
@_exported import Wire

#if canImport(Glibc)
import Glibc
#endif

/// Namespace for process-wide facts, as Python's `multiprocessing` module functions.
public enum Multiprocessing {
    /// The number of CPUs this process may use, and the default number of a local pool's
    /// workers: the smallest of its affinity mask (`sched_getaffinity` — under `taskset`, a
    /// cgroup cpuset or `mpirun --bind-to core` it is smaller than the machine), its cgroups'
    /// CPU bandwidth limit (`cpu.max`, rounded up) and, inside a Slurm job, this task's share
    /// of the CPUs Slurm allocated on the node (`--cpus-per-task`, or the node's CPUs divided
    /// among the tasks or mpirun ranks on it). At least 1. `cpuAllocation` says which limit
    /// applies. Python's `os.process_cpu_count()` looks only at the mask.
    public static var cpuCount: Int { cpuAllocation.count }

    /// Where `cpuCount` comes from (read now).
    public static var cpuAllocation: CPUAllocation { .current }
}
