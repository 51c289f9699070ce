import Foundation
import XCTest

/// Runs the built `swiftmp` executable (a dependency of this test target).
enum CLIRunner {
    struct Outcome {
        var status: Int32
        var stdout: String
        var stderr: String
    }

    static func executable() throws -> URL {
        let candidates = [
            Bundle.main.bundleURL,
            Bundle.main.bundleURL.deletingLastPathComponent(),
            URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent(),
        ]
        for directory in candidates {
            let url = directory.appendingPathComponent("swiftmp")
            if FileManager.default.isExecutableFile(atPath: url.path) { return url }
        }
        throw XCTSkip("swiftmp not found next to the test bundle")
    }

    /// Starts swiftmp with `arguments`; output goes to files read by `finish`.
    static func start(_ arguments: [String], environment extra: [String: String] = [:]) throws -> (Process, URL, URL) {
        let process = Process()
        process.executableURL = try executable()
        process.arguments = arguments
        var environment = ProcessInfo.processInfo.environment
        for (key, value) in extra { environment[key] = value }
        // Never look like an MPI rank, whatever the test runner inherited.
        for key in environment.keys where key.hasPrefix("OMPI_") || key.hasPrefix("PMIX_") { environment[key] = nil }
        process.environment = environment
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("swiftmp-out-\(UUID().uuidString)")
        let err = FileManager.default.temporaryDirectory.appendingPathComponent("swiftmp-err-\(UUID().uuidString)")
        FileManager.default.createFile(atPath: out.path, contents: nil)
        FileManager.default.createFile(atPath: err.path, contents: nil)
        process.standardOutput = try FileHandle(forWritingTo: out)
        process.standardError = try FileHandle(forWritingTo: err)
        process.standardInput = FileHandle.nullDevice
        try process.run()
        return (process, out, err)
    }

    static func run(_ arguments: [String], timeout: Double = 120) throws -> Outcome {
        let (process, out, err) = try start(arguments)
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning && Date() < deadline { usleep(10_000) }
        if process.isRunning {
            process.terminate()
            XCTFail("swiftmp \(arguments) did not finish in \(timeout) s")
        }
        process.waitUntilExit()
        defer {
            try? FileManager.default.removeItem(at: out)
            try? FileManager.default.removeItem(at: err)
        }
        return Outcome(status: process.terminationStatus,
                       stdout: (try? String(contentsOf: out, encoding: .utf8)) ?? "",
                       stderr: (try? String(contentsOf: err, encoding: .utf8)) ?? "")
    }
}
