import Foundation
import TestSupport

/// Runs the built `swiftmp` (a dependency of this test target), standard output and
/// standard error apart.
enum CLIRunner {
    static func run(_ arguments: [String], timeout: Double = 120) throws -> Launcher.Outcome {
        try Launcher.run(try Launcher.executable("swiftmp"), arguments, mergingStreams: false, deadline: timeout)
    }

    static func start(_ arguments: [String], environment extra: [String: String] = [:]) throws -> Launcher.Running {
        var environment = Launcher.cleanEnvironment
        for (key, value) in extra { environment[key] = value }
        return try Launcher.start(try Launcher.executable("swiftmp"), arguments, environment: environment, mergingStreams: false)
    }
}
