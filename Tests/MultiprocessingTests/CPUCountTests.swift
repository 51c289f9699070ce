import Foundation
import XCTest

@testable import Multiprocessing

#if canImport(Glibc)
import Glibc
#endif

final class CPUCountTests: XCTestCase {
    /// `sched_getaffinity`/`sched_setaffinity` (GNU extensions the Glibc module does not
    /// import), looked up with dlsym so that the test reads the mask independently of the
    /// library's C shim.
    private typealias AffinityCall = @convention(c) (pid_t, Int, UnsafeMutableRawPointer?) -> Int32
    private func affinityCall(_ name: String) throws -> AffinityCall {
        let symbol = try XCTUnwrap(dlsym(UnsafeMutableRawPointer(bitPattern: 0), name), "dlsym(\(name))")
        return unsafeBitCast(symbol, to: AffinityCall.self)
    }

    /// A mask big enough for 4096 CPUs.
    private static let maskBytes = 4096 / 8

    /// The CPUs in this process's affinity mask.
    private func affinityCount() throws -> Int {
        let getAffinity = try affinityCall("sched_getaffinity")
        var mask = [UInt64](repeating: 0, count: Self.maskBytes / 8)
        let status = mask.withUnsafeMutableBytes { getAffinity(0, $0.count, $0.baseAddress) }
        XCTAssertEqual(status, 0, "sched_getaffinity: errno \(errno)")
        return mask.reduce(0) { $0 + $1.nonzeroBitCount }
    }

    func testCPUCountIsAtMostTheAffinityMaskSize() throws {
        let expected = try affinityCount()
        XCTAssertGreaterThan(expected, 0)
        XCTAssertEqual(Multiprocessing.cpuAllocation.affinity, expected)
        XCTAssertLessThanOrEqual(Multiprocessing.cpuCount, expected, "other limits only lower it")
        XCTAssertLessThanOrEqual(Multiprocessing.cpuCount, sysconf(Int32(_SC_NPROCESSORS_ONLN)))
    }

    /// A child whose mask is narrowed to one CPU sees `cpuCount == 1` (Python's
    /// `os.process_cpu_count()` under `taskset -c <cpu>`), whatever the machine has.
    func testCPUCountFollowsANarrowedMask() throws {
        let getAffinity = try affinityCall("sched_getaffinity")
        let setAffinity = try affinityCall("sched_setaffinity")
        var mask = [UInt64](repeating: 0, count: Self.maskBytes / 8)
        XCTAssertEqual(mask.withUnsafeMutableBytes { getAffinity(0, $0.count, $0.baseAddress) }, 0)
        // The lowest CPU we may run on, alone.
        let word = try XCTUnwrap(mask.firstIndex { $0 != 0 })
        var single = [UInt64](repeating: 0, count: mask.count)
        single[word] = 1 << UInt64(mask[word].trailingZeroBitCount)
        let pid = fork()
        XCTAssertGreaterThanOrEqual(pid, 0, "fork: errno \(errno)")
        if pid == 0 {
            let set = single.withUnsafeMutableBytes { setAffinity(0, $0.count, $0.baseAddress) }
            guard set == 0 else { _exit(3) }
            _exit(Multiprocessing.cpuCount == 1 ? 0 : 4)
        }
        var status: Int32 = 0
        XCTAssertEqual(waitpid(pid, &status, 0), pid)
        XCTAssertEqual(status, 0, "exit 3: sched_setaffinity failed; exit 4: cpuCount was not 1 under a one-CPU mask")
    }

    func testCPUCountIsPositiveAndAtMostOnline() {
        XCTAssertGreaterThan(Multiprocessing.cpuCount, 0)
        XCTAssertLessThanOrEqual(Multiprocessing.cpuCount, 4096)
        XCTAssertEqual(Multiprocessing.cpuCount, Multiprocessing.cpuAllocation.count)
    }

    func testCountIsTheSmallestLimitAndAtLeastOne() {
        XCTAssertEqual(CPUAllocation(affinity: 8, cgroupLimit: 3, slurmShare: 4).count, 3)
        XCTAssertEqual(CPUAllocation(affinity: 2, cgroupLimit: nil, slurmShare: 4).count, 2)
        XCTAssertEqual(CPUAllocation(affinity: 8, cgroupLimit: nil, slurmShare: 1).count, 1)
        XCTAssertEqual(CPUAllocation(affinity: 0, cgroupLimit: nil, slurmShare: nil).count, 1)
        XCTAssertGreaterThan(CPUAllocation(affinity: nil, cgroupLimit: nil, slurmShare: nil).count, 0)
        XCTAssertEqual(CPUAllocation(affinity: 8, cgroupLimit: 3, slurmShare: nil).description, "affinity mask 8, cgroup CPU limit 3")
    }

    private func share(_ variables: [String: String]) -> Int? {
        CPUAllocation.slurmShare { variables[$0] }
    }

    func testSlurmShare() {
        XCTAssertNil(share([:]), "not in a Slurm job")
        XCTAssertNil(share(["SLURM_CPUS_PER_TASK": "4"]), "no job id: not in a Slurm job")
        let job = ["SLURM_JOB_ID": "7", "SLURM_CPUS_ON_NODE": "16"]
        XCTAssertEqual(share(job), 16, "the batch script has the node's allocation")
        XCTAssertEqual(share(job.merging(["SLURM_CPUS_PER_TASK": "4"]) { $1 }), 4, "--cpus-per-task")
        // An srun step of 4 tasks on this node (the second node of "8(x1),4(x2)").
        let step = job.merging(["SLURM_STEP_ID": "0", "SLURM_STEP_TASKS_PER_NODE": "8(x1),4(x2)", "SLURM_NODEID": "1"]) { $1 }
        XCTAssertEqual(share(step), 4)
        XCTAssertEqual(share(step.merging(["SLURM_CPUS_PER_TASK": "2"]) { $1 }), 2)
        XCTAssertEqual(share(step.merging(["SLURM_NODEID": "0"]) { $1 }), 2, "8 tasks on the first node")
        // Ranks of mpirun inside the allocation: the node's CPUs among the local ranks.
        XCTAssertEqual(share(job.merging(["OMPI_COMM_WORLD_LOCAL_SIZE": "5"]) { $1 }), 3)
        // Overcommitted: never below 1.
        XCTAssertEqual(
            share([
                "SLURM_JOB_ID": "7", "SLURM_CPUS_ON_NODE": "1", "SLURM_STEP_ID": "0",
                "SLURM_STEP_TASKS_PER_NODE": "3", "SLURM_NODEID": "0",
            ]), 1)
    }

    func testTasksPerNodeFormat() {
        XCTAssertEqual(CPUAllocation.tasksPerNode("2", node: 0), 2)
        XCTAssertEqual(CPUAllocation.tasksPerNode("2(x3),1", node: 2), 2)
        XCTAssertEqual(CPUAllocation.tasksPerNode("2(x3),1", node: 3), 1)
        XCTAssertNil(CPUAllocation.tasksPerNode("2(x3),1", node: 4))
        XCTAssertNil(CPUAllocation.tasksPerNode("garbage", node: 0))
    }

    /// A fake /sys/fs/cgroup: cgroup v2 `cpu.max` and v1 CFS quotas, the smallest along the
    /// path to the root, rounded up.
    func testCgroupLimits() throws {
        let root = try FakeCgroupRoot()
        defer { root.remove() }
        let write = root.write
        // v2: the job's cgroup allows 2.5 CPUs, its parent 4, the root none.
        try write("cpu.max", "max 100000\n")
        try write("slurm/cpu.max", "400000 100000\n")
        try write("slurm/job_7/cpu.max", "250000 100000\n")
        XCTAssertEqual(CPUAllocation.cgroupLimit(cgroups: "0::/slurm/job_7\n", root: root.path), 3)
        XCTAssertEqual(CPUAllocation.cgroupLimit(cgroups: "0::/slurm\n", root: root.path), 4)
        XCTAssertNil(CPUAllocation.cgroupLimit(cgroups: "0::/\n", root: root.path))
        XCTAssertNil(CPUAllocation.cgroupLimit(cgroups: "0::/elsewhere\n", root: root.path), "a path not visible here")
        // v1: cpu,cpuacct hierarchy, quota 1.5 CPUs; -1 means none.
        try write("cpu,cpuacct/cpu.cfs_quota_us", "-1\n")
        try write("cpu,cpuacct/cpu.cfs_period_us", "100000\n")
        try write("cpu,cpuacct/box/cpu.cfs_quota_us", "150000\n")
        try write("cpu,cpuacct/box/cpu.cfs_period_us", "100000\n")
        XCTAssertEqual(CPUAllocation.cgroupLimit(cgroups: "5:cpu,cpuacct:/box\n4:memory:/box\n", root: root.path), 2)
        XCTAssertNil(CPUAllocation.cgroupLimit(cgroups: "5:cpu,cpuacct:/\n", root: root.path))
    }
}
