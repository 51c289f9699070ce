import CSystemShims
#if canImport(Glibc)
import Glibc
#endif

/// Namespace for process-wide facts, as Python's `multiprocessing` module functions.
public enum Multiprocessing {
    /// The number of CPUs this process may run on: the size of its affinity mask
    /// (`sched_getaffinity`), not the machine's core count — under `taskset`, a cgroup
    /// cpuset or `mpirun --bind-to core` it is smaller. Python's `os.process_cpu_count()`.
    public static var cpuCount: Int {
        let fromMask = Int(CSystemShims_affinity_cpu_count())
        if fromMask > 0 { return fromMask }
        let online = sysconf(Int32(_SC_NPROCESSORS_ONLN))
        return online > 0 ? online : 1
    }
}

@_exported import Wire
