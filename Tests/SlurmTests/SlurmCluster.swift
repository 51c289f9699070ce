#if MPI
import Foundation
import TestSupport
import XCTest
#if canImport(Glibc)
import Glibc
#endif

/// The one-node Slurm of `Scripts/slurm/setup.sh`, started once for the test class and stopped
/// by `stop()` (the class's tearDown). Test runs on one machine take turns through an `flock`
/// on `/run/swiftmp-slurm.lock`, so that one run's `stop` never ends another's daemons.
enum SlurmCluster {
    static let script = Launcher.packageRoot.appendingPathComponent("Scripts/slurm/setup.sh")
    static let directory = "/run/swiftmp-slurm"
    static let lockPath = "/run/swiftmp-slurm.lock"

    nonisolated(unsafe) private static var lockDescriptor: Int32 = -1
    nonisolated(unsafe) private static var started = false
    nonisolated(unsafe) private static var failure: String?

    /// Starts the daemons (installing slurm-wlm and munge if missing) the first time; throws
    /// `XCTSkip` where slurmd cannot run (not root).
    static func start() throws {
        guard getuid() == 0 else {
            throw XCTSkip(
                "a real Slurm needs root (slurmd runs jobs as their users, munged must own its key): "
                    + "run the tests as root to include the Slurm tests")
        }
        if started { return }
        if let failure { XCTFail(failure); throw XCTSkip("Slurm did not start (see the failure above)") }
        try lock()
        let outcome = try Launcher.run(script, ["start"], environment: environment(), deadline: 600)
        guard outcome.status == 0 else {
            failure = "Scripts/slurm/setup.sh failed (status \(outcome.status)):\n\(outcome.output)"
            stop()
            XCTFail(failure!)
            throw XCTSkip("Slurm did not start (see the failure above)")
        }
        started = true
    }

    /// Stops the daemons (by their pids) and lets other test runs have the machine's Slurm.
    static func stop() {
        if lockDescriptor >= 0 {
            let outcome = try? Launcher.run(script, ["stop"], environment: environment(), deadline: 60)
            if let outcome, outcome.status != 0 { XCTFail("Scripts/slurm/setup.sh stop failed: \(outcome.output)") }
            close(lockDescriptor)
            lockDescriptor = -1
        }
        started = false
    }

    /// Waits (at most 5 minutes) for other test runs on this machine to be done with Slurm.
    private static func lock() throws {
        let fd = open(lockPath, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw XCTSkip("cannot open \(lockPath): errno \(errno)") }
        let deadline = Date().addingTimeInterval(300)
        while flock(fd, LOCK_EX | LOCK_NB) != 0 {
            guard errno == EWOULDBLOCK || errno == EINTR else {
                let error = errno
                close(fd)
                throw XCTSkip("flock \(lockPath) failed: errno \(error)")
            }
            guard Date() < deadline else {
                close(fd)
                XCTFail("another test run held \(lockPath) (the machine's test Slurm) for 5 minutes")
                throw XCTSkip("Slurm is busy")
            }
            usleep(200_000)
        }
        lockDescriptor = fd
    }

    /// The environment for sbatch/srun: this one without an enclosing job's or MPI job's
    /// variables, our Slurm's configuration, and the Open MPI settings this machine needs
    /// (root allowed, ob1, no CMA, yield when idle, a private session directory).
    static func environment(_ extra: [String: String] = [:]) -> [String: String] {
        var environment = Launcher.cleanEnvironment.filter { key, _ in !key.hasPrefix("SLURM_") && !key.hasPrefix("SBATCH_") && !key.hasPrefix("SRUN_") }
        environment["SLURM_CONF"] = directory + "/slurm.conf"
        environment["OMPI_ALLOW_RUN_AS_ROOT"] = "1"
        environment["OMPI_ALLOW_RUN_AS_ROOT_CONFIRM"] = "1"
        environment["OMPI_MCA_pml"] = "ob1"
        environment["OMPI_MCA_btl_vader_single_copy_mechanism"] = "none"
        environment["OMPI_MCA_mpi_yield_when_idle"] = "1"
        environment["OMPI_MCA_rmaps_base_oversubscribe"] = "1"
        for (key, value) in extra { environment[key] = value }
        return environment
    }

    /// `srun <arguments>` (a 2-minute limit), standard output and error apart.
    static func srun(_ arguments: [String], environment extra: [String: String] = [:]) throws -> Launcher.Outcome {
        try Launcher.run(
            URL(fileURLWithPath: "/usr/bin/srun"), ["--time=2"] + arguments,
            environment: environment(extra), mergingStreams: false, deadline: 150)
    }

    /// A started `sbatch --wait -o <file> <options> <script> <arguments>`.
    struct Job {
        let running: Launcher.Running
        let output: URL

        /// Waits for the job; `output` is the job's output file (the program's stdout and stderr).
        func finish() -> (status: Int32, output: String, sbatch: String) {
            let outcome = running.finish(deadline: 170)
            defer { try? FileManager.default.removeItem(at: output) }
            return (outcome.status, (try? String(contentsOf: output, encoding: .utf8)) ?? "", outcome.output)
        }
    }

    static func submit(_ options: [String], template: String, _ arguments: [String]) throws -> Job {
        let output = FileManager.default.temporaryDirectory.appendingPathComponent("swiftmp-slurm-\(UUID().uuidString).out")
        let script = Launcher.packageRoot.appendingPathComponent("Scripts/slurm/\(template)")
        let running = try Launcher.start(
            URL(fileURLWithPath: "/usr/bin/sbatch"),
            ["--wait", "--time=2", "--output=\(output.path)"] + options + [script.path] + arguments,
            environment: environment())
        return Job(running: running, output: output)
    }
}
#endif
