import Foundation
import XCTest

/// Runs this package's built executables (and `Scripts/`) as subprocesses for the tests that
/// check whole programs: the CLI, the examples, the mpirun and netns-cluster runs.
public enum Launcher {
    public struct Outcome: Sendable {
        public var status: Int32
        /// Standard output; with `mergingStreams`, standard output and error interleaved.
        public var output: String
        /// Standard error (empty with `mergingStreams`).
        public var errors: String
        public var seconds: Double
        /// For a failure's message: standard output, then standard error if kept apart.
        public var transcript: String { errors.isEmpty ? output : output + "\n[standard error]\n" + errors }
    }

    /// The package's root directory (for `Scripts/`).
    public static let packageRoot = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// A failure to find what a test needs: a test that cannot run fails, it is not skipped
    /// (a suite that passes by skipping proves nothing).
    public struct Missing: Error, CustomStringConvertible {
        public var description: String
    }

    /// A product of this package, built next to the test bundle because the calling test
    /// target depends on it; throws `Missing` (the test fails) when it is not there.
    public static func executable(_ name: String) throws -> URL {
        let candidates = [
            Bundle.main.bundleURL,
            Bundle.main.bundleURL.deletingLastPathComponent(),
            URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent(),
        ]
        for directory in candidates {
            let url = directory.appendingPathComponent(name)
            if FileManager.default.isExecutableFile(atPath: url.path) { return url }
        }
        throw Missing(
            description: "\(name) not found next to the test bundle (looked in \(candidates.map(\.path))): "
                + "build it with `swift build --build-tests` (Scripts/test.sh does)")
    }

    /// The first executable `name` in `PATH`, then in the given system directories (root's
    /// tools such as `ip` live in /usr/sbin or /sbin, which a user's `PATH` may lack).
    public static func tool(_ name: String, alsoIn directories: [String] = ["/usr/sbin", "/sbin", "/usr/bin", "/bin"]) -> URL? {
        let path = ProcessInfo.processInfo.environment["PATH"]?.split(separator: ":").map(String.init) ?? []
        for directory in path + directories {
            let candidate = URL(fileURLWithPath: directory).appendingPathComponent(name)
            if FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate }
        }
        return nil
    }

    /// This environment without any variable of an enclosing MPI job (a child that inherits
    /// them dies in MPI_Init or is captured as a rank), and without Swift's slow crash
    /// backtracer.
    public static var cleanEnvironment: [String: String] {
        var environment = ProcessInfo.processInfo.environment.filter { key, _ in
            !key.hasPrefix("OMPI_") && !key.hasPrefix("PMIX_") && !key.hasPrefix("OPAL_") && key != "SWIFTMP_MPI_MODE"
        }
        environment["SWIFT_BACKTRACE"] = "enable=no"
        return environment
    }

    /// `Scripts/mpirun.sh --timeout <timeout> <mpirunArguments> <program arguments>` (root,
    /// oversubscription, ob1, yield when idle, no binding, a private session directory).
    /// `mergingStreams: false` keeps the ranks' standard error (crash reports, warnings) out of
    /// `output`: mpirun forwards each stream in the chunks it reads, so a report written while
    /// rank 0 prints a line can land in the middle of that line.
    public static func mpirun(
        _ mpirunArguments: [String], _ arguments: [String] = [], timeout: Int = 60,
        environment extra: [String: String] = [:], mergingStreams: Bool = true
    ) throws -> Outcome {
        var environment = cleanEnvironment
        for (key, value) in extra { environment[key] = value }
        return try run(
            packageRoot.appendingPathComponent("Scripts/mpirun.sh"),
            ["--timeout", String(timeout)] + mpirunArguments + arguments,
            environment: environment, mergingStreams: mergingStreams, deadline: Double(timeout) + 30)
    }

    /// `Scripts/netns-cluster.sh run <hosts> <program> <arguments>`: one rank per "host" made
    /// of network and UTS namespaces, talking TCP on a private bridge; torn down afterwards
    /// even if the script is killed. Throws `XCTSkip` when not root (Scripts/test.sh counts
    /// that skip as a failure), and `Missing` (a failure) when a tool is missing or
    /// `ip netns` does not work.
    public static func netnsCluster(
        hosts: Int, _ program: String, _ arguments: [String] = [],
        timeout: Int = 60, mergingStreams: Bool = true
    ) throws -> Outcome {
        guard getuid() == 0 else { throw XCTSkip("the netns cluster needs root (ip netns, unshare, nsenter)") }
        var tools: [String: URL] = [:]
        for name in ["ip", "unshare", "nsenter"] {
            guard let url = tool(name) else {
                throw Missing(
                    description: "`\(name)` is not installed (PATH, /usr/sbin, /sbin): "
                        + "Scripts/install-deps.sh installs iproute2 and util-linux")
            }
            tools[name] = url
        }
        let probe = try run(tools["ip"]!, ["netns", "list"], deadline: 10)
        guard probe.status == 0 else {
            throw Missing(description: "`ip netns list` failed (\(probe.status)): \(probe.output)")
        }
        let script = packageRoot.appendingPathComponent("Scripts/netns-cluster.sh")
        defer { _ = try? run(script, ["down"], deadline: 30) }
        var environment = cleanEnvironment
        environment["NETNS_TIMEOUT"] = String(timeout)
        return try run(
            script, ["run", String(hosts), program] + arguments, environment: environment,
            mergingStreams: mergingStreams, deadline: Double(timeout) + 40)
    }

    /// Starts `executable`; its output goes to files that `finish` reads.
    public static func start(
        _ executable: URL, _ arguments: [String], environment: [String: String]? = nil,
        mergingStreams: Bool = true
    ) throws -> Running {
        let process = Process()
        process.executableURL = executable
        process.arguments = arguments
        process.environment = environment ?? cleanEnvironment
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("swiftmp-test-\(UUID().uuidString).out")
        let err = FileManager.default.temporaryDirectory.appendingPathComponent("swiftmp-test-\(UUID().uuidString).err")
        _ = FileManager.default.createFile(atPath: out.path, contents: nil)
        _ = FileManager.default.createFile(atPath: err.path, contents: nil)
        let outHandle = try FileHandle(forWritingTo: out)
        let errHandle = mergingStreams ? outHandle : try FileHandle(forWritingTo: err)
        process.standardOutput = outHandle
        process.standardError = errHandle
        process.standardInput = FileHandle.nullDevice
        let running = Running(process: process, out: out, err: err, handles: [outHandle, errHandle])
        try process.run()
        return running
    }

    /// Runs `executable` to completion; terminates it if it outlives `deadline` seconds (a
    /// safety net behind mpirun's own `--timeout`) and fails the test then.
    public static func run(
        _ executable: URL, _ arguments: [String], environment: [String: String]? = nil,
        mergingStreams: Bool = true, deadline: Double
    ) throws -> Outcome {
        let running = try start(executable, arguments, environment: environment, mergingStreams: mergingStreams)
        return running.finish(deadline: deadline)
    }

    /// A started subprocess.
    public final class Running: @unchecked Sendable {
        public let process: Process
        let out: URL
        let err: URL
        let handles: [FileHandle]
        let started = Date()

        init(process: Process, out: URL, err: URL, handles: [FileHandle]) {
            self.process = process
            self.out = out
            self.err = err
            self.handles = handles
        }

        /// Waits for the end (at most `deadline` seconds from the start) and collects the output.
        public func finish(deadline: Double) -> Outcome {
            let end = started.addingTimeInterval(deadline)
            while process.isRunning && Date() < end { usleep(5_000) }
            if process.isRunning {
                process.terminate()
                XCTFail("\(process.executableURL?.lastPathComponent ?? "?") \(process.arguments ?? []) did not finish in \(deadline) s")
            }
            process.waitUntilExit()
            for handle in handles { try? handle.close() }
            defer {
                try? FileManager.default.removeItem(at: out)
                try? FileManager.default.removeItem(at: err)
            }
            return Outcome(
                status: process.terminationStatus,
                output: (try? String(contentsOf: out, encoding: .utf8)) ?? "",
                errors: (try? String(contentsOf: err, encoding: .utf8)) ?? "",
                seconds: Date().timeIntervalSince(started))
        }
    }
}
