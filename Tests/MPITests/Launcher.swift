import Foundation
import XCTest

/// Runs the built `mpi-selftest` under real `mpirun` (or a script around it) as a subprocess.
enum Launcher {
    struct Outcome {
        var status: Int32
        var output: String
        var seconds: Double
    }

    /// The package's root directory (for `Scripts/`).
    static let packageRoot = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// `mpi-selftest`, built next to the test bundle because the test target depends on it.
    static func selfTest() throws -> URL {
        let candidates = [
            Bundle.main.bundleURL,
            Bundle.main.bundleURL.deletingLastPathComponent(),
            URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent(),
        ]
        for directory in candidates {
            let url = directory.appendingPathComponent("mpi-selftest")
            if FileManager.default.isExecutableFile(atPath: url.path) { return url }
        }
        throw XCTSkip("mpi-selftest not found next to the test bundle (\(candidates.map(\.path)))")
    }

    /// The environment DESIGN.md §5 asks for, with a private session directory.
    static func mpiEnvironment(sessionDirectory: URL) -> [String: String] {
        var environment = ProcessInfo.processInfo.environment
        environment["OMPI_ALLOW_RUN_AS_ROOT"] = "1"
        environment["OMPI_ALLOW_RUN_AS_ROOT_CONFIRM"] = "1"
        environment["OMPI_MCA_rmaps_base_oversubscribe"] = "1"
        environment["OMPI_MCA_pml"] = "ob1"
        environment["OMPI_MCA_btl_vader_single_copy_mechanism"] = "none"
        environment["OMPI_MCA_mpi_yield_when_idle"] = "1"
        environment["OMPI_MCA_orte_tmpdir_base"] = sessionDirectory.path
        return environment
    }

    /// `/usr/bin/mpirun --timeout <timeout> --bind-to none -np <ranks> mpi-selftest <arguments>`.
    static func mpirun(ranks: Int, arguments: [String] = [], timeout: Int = 60) throws -> Outcome {
        let session = FileManager.default.temporaryDirectory
            .appendingPathComponent("mpitests-\(getpid())-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: session, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: session) }
        return try run(
            URL(fileURLWithPath: "/usr/bin/mpirun"),
            ["--timeout", String(timeout), "--bind-to", "none", "-np", String(ranks), try selfTest().path] + arguments,
            environment: mpiEnvironment(sessionDirectory: session),
            deadline: Double(timeout) + 30)
    }

    /// Runs `executable` to completion and returns its status and merged output; terminates it
    /// if it outlives `deadline` seconds (a safety net behind mpirun's own `--timeout`).
    static func run(_ executable: URL, _ arguments: [String], environment: [String: String]? = nil, deadline: Double) throws -> Outcome {
        let process = Process()
        process.executableURL = executable
        process.arguments = arguments
        if let environment { process.environment = environment }
        let log = FileManager.default.temporaryDirectory.appendingPathComponent("mpitests-\(UUID().uuidString).log")
        _ = FileManager.default.createFile(atPath: log.path, contents: nil)
        defer { try? FileManager.default.removeItem(at: log) }
        let handle = try FileHandle(forWritingTo: log)
        defer { try? handle.close() }
        process.standardOutput = handle
        process.standardError = handle
        process.standardInput = FileHandle.nullDevice

        let start = Date()
        try process.run()
        let watchdog = DispatchWorkItem { [process] in
            if process.isRunning { process.terminate() }
        }
        DispatchQueue.global().asyncAfter(deadline: .now() + deadline, execute: watchdog)
        process.waitUntilExit()
        watchdog.cancel()
        let output = (try? String(contentsOf: log, encoding: .utf8)) ?? ""
        return Outcome(status: process.terminationStatus, output: output, seconds: Date().timeIntervalSince(start))
    }
}
