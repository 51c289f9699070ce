import CSystemShims

#if canImport(Glibc)
import Glibc
#endif

/// The CPUs this process may use, and where the number comes from: the smallest of
///
/// - `affinity`: the CPUs in its affinity mask (`sched_getaffinity`: `taskset`, a cgroup
///   cpuset, `mpirun --bind-to core`, Slurm's task/affinity or task/cgroup binding);
/// - `cgroupLimit`: its cgroups' CPU bandwidth limit, rounded up (cgroup v2 `cpu.max`, v1
///   `cpu.cfs_quota_us` / `cpu.cfs_period_us`, the smallest along the path to the root:
///   `docker --cpus`, systemd's `CPUQuota`);
/// - `slurmShare`: inside a Slurm job, this task's share of the CPUs Slurm allocated on this
///   node: `SLURM_CPUS_PER_TASK` (`--cpus-per-task`) when set, and `SLURM_CPUS_ON_NODE`
///   divided by the tasks on this node — the ranks mpirun started here
///   (`OMPI_COMM_WORLD_LOCAL_SIZE`), this srun step's tasks here (`SLURM_STEP_TASKS_PER_NODE`
///   at `SLURM_NODEID`), or 1 for the batch script itself.
///
/// `nil` means "no limit from this source". `count` is at least 1.
public struct CPUAllocation: Sendable, Equatable, CustomStringConvertible {
    public var affinity: Int?
    public var cgroupLimit: Int?
    public var slurmShare: Int?

    public init(affinity: Int?, cgroupLimit: Int?, slurmShare: Int?) {
        self.affinity = affinity
        self.cgroupLimit = cgroupLimit
        self.slurmShare = slurmShare
    }

    /// The number of CPUs to use: the smallest limit (the online CPUs if none is known), ≥ 1.
    public var count: Int {
        let limits = [affinity, cgroupLimit, slurmShare].compactMap { $0 }
        if let smallest = limits.min() { return max(1, smallest) }
        let online = sysconf(Int32(_SC_NPROCESSORS_ONLN))
        return online > 0 ? online : 1
    }

    /// E.g. "affinity mask 2, Slurm share 1".
    public var description: String {
        var parts: [String] = []
        if let affinity { parts.append("affinity mask \(affinity)") }
        if let cgroupLimit { parts.append("cgroup CPU limit \(cgroupLimit)") }
        if let slurmShare { parts.append("Slurm share \(slurmShare)") }
        return parts.isEmpty ? "online CPUs" : parts.joined(separator: ", ")
    }

    /// This process's allocation, read now.
    public static var current: CPUAllocation {
        let mask = Int(CSystemShims_affinity_cpu_count())
        return CPUAllocation(
            affinity: mask > 0 ? mask : nil,
            cgroupLimit: CgroupLimits.current.cpuLimit,
            slurmShare: slurmShare { name in getenv(name).map { String(cString: $0) } })
    }

    // MARK: Slurm

    /// This task's share of the node's allocated CPUs (nil outside a Slurm job, or if Slurm
    /// says nothing about CPUs).
    static func slurmShare(_ variable: (String) -> String?) -> Int? {
        guard variable("SLURM_JOB_ID") != nil || variable("SLURM_JOBID") != nil else { return nil }
        var limits: [Int] = []
        if let perTask = variable("SLURM_CPUS_PER_TASK").flatMap({ Int($0) }), perTask > 0 { limits.append(perTask) }
        if let onNode = variable("SLURM_CPUS_ON_NODE").flatMap({ Int($0) }), onNode > 0 {
            let tasks: Int
            if let ranks = variable("OMPI_COMM_WORLD_LOCAL_SIZE").flatMap({ Int($0) }), ranks > 0 {
                tasks = ranks
            } else if variable("SLURM_STEP_ID") != nil || variable("SLURM_STEPID") != nil {
                let node = variable("SLURM_NODEID").flatMap { Int($0) } ?? 0
                tasks = variable("SLURM_STEP_TASKS_PER_NODE").flatMap { tasksPerNode($0, node: node) } ?? 1
            } else {
                tasks = 1
            }
            limits.append(max(1, onNode / max(1, tasks)))
        }
        return limits.min()
    }

    /// Slurm's compressed per-node counts ("2(x3),1" = 2, 2, 2, 1) at index `node`.
    static func tasksPerNode(_ text: String, node: Int) -> Int? {
        var index = 0
        for item in text.split(separator: ",") {
            var count = item[...]
            var repeats = 1
            if let open = item.firstIndex(of: "(") {
                count = item[..<open]
                let inside = item[item.index(after: open)...].drop(while: { $0 == "x" }).prefix(while: { $0 != ")" })
                guard let times = Int(inside), times > 0 else { return nil }
                repeats = times
            }
            guard let value = Int(count) else { return nil }
            if node < index + repeats { return value }
            index += repeats
        }
        return nil
    }

    // MARK: cgroups

    /// The smallest CPU bandwidth limit (CPUs, rounded up) of the cgroups in `cgroups` (the
    /// text of /proc/self/cgroup) and their ancestors, with the hierarchies mounted under
    /// `root`; nil if none is limited.
    static func cgroupLimit(cgroups: String, root: String) -> Int? {
        CgroupLimits(cgroups: cgroups, root: root).cpuLimit
    }

    /// cgroup v2 `cpu.max`: "max 100000" or "<quota> <period>".
    fileprivate static func v2Limit(_ directory: String) -> Int? {
        guard let text = readSmallFile(directory + "/cpu.max") else { return nil }
        let words = text.split(whereSeparator: { $0 == " " || $0 == "\n" })
        guard words.count >= 2, let quota = Int(words[0]), let period = Int(words[1]) else { return nil }
        return cpus(quota: quota, period: period)
    }

    /// cgroup v1 `cpu.cfs_quota_us` (-1: none) and `cpu.cfs_period_us`.
    fileprivate static func v1Limit(_ directory: String) -> Int? {
        guard let quota = CgroupLimits.number(directory + "/cpu.cfs_quota_us"),
            let period = CgroupLimits.number(directory + "/cpu.cfs_period_us")
        else { return nil }
        return cpus(quota: quota, period: period)
    }

    private static func cpus(quota: Int, period: Int) -> Int? {
        guard quota > 0, period > 0 else { return nil }
        return max(1, (quota + period - 1) / period)
    }

}

extension CgroupLimits {
    /// The smallest CPU bandwidth limit of these cgroups (CPUs, rounded up); nil if none.
    var cpuLimit: Int? {
        smallest(
            v1Controller: "cpu", v1Mounts: ["cpu", "cpu,cpuacct", "cpuacct,cpu"],
            v1: CPUAllocation.v1Limit, v2: CPUAllocation.v2Limit)
    }
}
