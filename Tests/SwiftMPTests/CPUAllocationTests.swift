import Foundation
import TestSupport
import XCTest

#if canImport(Glibc)
import Glibc
#endif

/// `swiftmp info` (its CPUs and default worker count) under an affinity mask, Slurm's
/// variables and a cgroup CPU quota. SlurmTests checks the same under a real Slurm.
final class CPUAllocationTests: XCTestCase {
    private func info(_ extra: [String: String] = [:], prefix: [String] = []) throws -> [String: Any] {
        var environment = Launcher.cleanEnvironment.filter { !$0.key.hasPrefix("SLURM_") }
        for (key, value) in extra { environment[key] = value }
        let swiftmp = try Launcher.executable("swiftmp").path
        let outcome = try Launcher.run(
            URL(fileURLWithPath: prefix.isEmpty ? swiftmp : "/usr/bin/env"),
            prefix.isEmpty ? ["info", "--json"] : prefix + [swiftmp, "info", "--json"],
            environment: environment, mergingStreams: false, deadline: 60)
        XCTAssertEqual(outcome.status, 0, outcome.errors)
        return try XCTUnwrap(JSONSerialization.jsonObject(with: Data(outcome.output.utf8)) as? [String: Any], outcome.output)
    }

    private func requireTwoCPUs() throws -> Int {
        let all = try info()["cpus"] as? Int ?? 0
        guard all >= 2 else { throw XCTSkip("needs at least 2 usable CPUs (has \(all))") }
        return all
    }

    func testSlurmCPUsPerTaskAndNodeShareLimitWorkers() throws {
        let all = try requireTwoCPUs()
        let perTask = try info(["SLURM_JOB_ID": "7", "SLURM_CPUS_PER_TASK": "1", "SLURM_CPUS_ON_NODE": String(all)])
        XCTAssertEqual(perTask["cpus"] as? Int, 1)
        XCTAssertEqual(perTask["workers"] as? Int, 1, "the default pool follows --cpus-per-task")
        XCTAssertEqual(perTask["cpu_limits"] as? String, "affinity mask \(all), Slurm share 1")
        let step = try info([
            "SLURM_JOB_ID": "7", "SLURM_STEP_ID": "0", "SLURM_CPUS_ON_NODE": String(all),
            "SLURM_STEP_TASKS_PER_NODE": String(all), "SLURM_NODEID": "0", "SLURM_STEP_NUM_TASKS": "1",
        ])
        XCTAssertEqual(step["cpus"] as? Int, 1, "\(all) tasks on \(all) CPUs: one each")
    }

    func testAffinityMaskStillLimits() throws {
        _ = try requireTwoCPUs()
        let pinned = try info(["SLURM_JOB_ID": "7", "SLURM_CPUS_PER_TASK": "64"], prefix: ["taskset", "-c", "0"])
        XCTAssertEqual(pinned["cpus"] as? Int, 1)
        XCTAssertEqual(pinned["workers"] as? Int, 1)
    }

    /// A real cgroup (v1 cpu controller, or v2 with the cpu controller) allowing one CPU.
    func testCgroupQuotaLimitsWorkers() throws {
        _ = try requireTwoCPUs()
        guard getuid() == 0 else { throw XCTSkip("making a cgroup needs root") }
        let name = "swiftmp-test-\(getpid())"
        let v1 = "/sys/fs/cgroup/cpu"
        let directory: String
        if FileManager.default.fileExists(atPath: v1 + "/cpu.cfs_quota_us") {
            directory = v1 + "/" + name
            guard mkdir(directory, 0o755) == 0 else { throw XCTSkip("cannot make \(directory): errno \(errno)") }
            try "100000\n".write(toFile: directory + "/cpu.cfs_period_us", atomically: false, encoding: .utf8)
            try "100000\n".write(toFile: directory + "/cpu.cfs_quota_us", atomically: false, encoding: .utf8)
        } else if let controllers = try? String(contentsOfFile: "/sys/fs/cgroup/cgroup.subtree_control", encoding: .utf8),
            controllers.contains("cpu")
        {
            directory = "/sys/fs/cgroup/" + name
            guard mkdir(directory, 0o755) == 0 else { throw XCTSkip("cannot make \(directory): errno \(errno)") }
            try "100000 100000\n".write(toFile: directory + "/cpu.max", atomically: false, encoding: .utf8)
        } else {
            throw XCTSkip("no writable cgroup cpu controller here")
        }
        defer { rmdir(directory) }
        let limited = try info([:], prefix: ["sh", "-c", "echo $$ > \(directory)/cgroup.procs && exec \"$0\" \"$@\""])
        XCTAssertEqual(limited["cpus"] as? Int, 1, "\(limited)")
        XCTAssertEqual(limited["workers"] as? Int, 1)
        XCTAssertTrue((limited["cpu_limits"] as? String ?? "").contains("cgroup CPU limit 1"), "\(limited)")
    }
}
