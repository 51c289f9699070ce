import Foundation
import XCTest

/// Runs the built `mpi-object-check` directly, under real `mpirun` (Scripts/mpirun.sh), or on
/// the netns cluster, as a subprocess. (After Tests/MPIPoolTests/Launcher.swift.)
enum Launcher {
    struct Outcome {
        var status: Int32
        var output: String
        var seconds: Double
    }

    /// The package's root directory (for `Scripts/`).
    static let packageRoot = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// `mpi-object-check`, built next to the test bundle because the test target depends on it.
    static func objectCheck() throws -> URL {
        let candidates = [
            Bundle.main.bundleURL,
            Bundle.main.bundleURL.deletingLastPathComponent(),
            URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent(),
        ]
        for directory in candidates {
            let url = directory.appendingPathComponent("mpi-object-check")
            if FileManager.default.isExecutableFile(atPath: url.path) { return url }
        }
        throw XCTSkip("mpi-object-check not found next to the test bundle (\(candidates.map(\.path)))")
    }

    /// This environment without any variable of an enclosing MPI job, and without Swift's
    /// slow crash backtracer.
    static var cleanEnvironment: [String: String] {
        var environment = ProcessInfo.processInfo.environment.filter { key, _ in
            !key.hasPrefix("OMPI_") && !key.hasPrefix("PMIX_") && !key.hasPrefix("OPAL_") && key != "SWIFTMP_MPI_MODE"
        }
        environment["SWIFT_BACKTRACE"] = "enable=no"
        return environment
    }

    /// `Scripts/mpirun.sh --timeout <timeout> <mpirunArguments> <program arguments>`.
    static func mpirun(_ mpirunArguments: [String], _ arguments: [String] = [], timeout: Int = 60) throws -> Outcome {
        try run(packageRoot.appendingPathComponent("Scripts/mpirun.sh"),
                ["--timeout", String(timeout)] + mpirunArguments + arguments,
                environment: cleanEnvironment, deadline: Double(timeout) + 30)
    }

    /// Runs `executable` to completion and returns its status and merged output; terminates it
    /// if it outlives `deadline` seconds (a safety net behind mpirun's own `--timeout`).
    static func run(_ executable: URL, _ arguments: [String], environment: [String: String]? = nil,
                    deadline: Double) throws -> Outcome {
        let process = Process()
        process.executableURL = executable
        process.arguments = arguments
        process.environment = environment ?? cleanEnvironment
        let log = FileManager.default.temporaryDirectory.appendingPathComponent("mpiobjecttests-\(UUID().uuidString).log")
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
