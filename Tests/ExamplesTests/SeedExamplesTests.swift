import Foundation
import TestSupport
import XCTest

/// Runs the built `seed-examples` executable (a dependency of this target) and checks the
/// output of each tutorial twin.
final class SeedExamplesTests: XCTestCase {
    func executable() throws -> URL { try Launcher.executable("seed-examples") }

    func run(_ arguments: [String], timeout: Double = 60) throws -> Launcher.Outcome {
        let outcome = try Launcher.run(try executable(), arguments, mergingStreams: false, deadline: timeout)
        XCTAssertEqual(outcome.status, 0, "seed-examples \(arguments): \(outcome.errors)")
        return outcome
    }

    func lines(_ text: String) -> [String] { text.split(separator: "\n").map(String.init) }

    func test01StartAndJoin() throws {
        let out = try run(["1"]).output
        XCTAssertEqual(
            lines(out),
            [
                "job(1, 2) = 3 in Process-1", "job(1, 2) = 3 in MainProcess",
                "process exit code 0; thread finished",
            ])
    }

    func test02SeveralProcessesRunTogether() throws {
        let outcome = try run(["2", "0.5"])
        let output = lines(outcome.output)
        XCTAssertEqual(output.filter { $0.hasSuffix("starting") }.count, 5)
        XCTAssertEqual(output.filter { $0.hasSuffix("finished") && $0.hasPrefix("worker") }.count, 5)
        XCTAssertTrue(output.contains("All processes finished."))
        XCTAssertLessThan(outcome.seconds, 2.0, "five 0.5 s sleeps in parallel, not one after another")
    }

    func test03QueueResults() throws {
        XCTAssertEqual(try run(["3"]).output, "499667166000\n")
    }

    func test04ProducerConsumer() throws {
        XCTAssertEqual(try run(["4"]).output, "Hello from child\n")
    }

    func test05Pipe() throws {
        XCTAssertEqual(try run(["5"]).output, "Hello from sender\n")
    }

    func test06SharedValue() throws {
        XCTAssertEqual(try run(["6"]).output, "100\n")
    }

    func test07LockedCounter() throws {
        XCTAssertEqual(try run(["7"]).output, "200\n")
    }

    func test11Manager() throws {
        XCTAssertEqual(lines(try run(["11"]).output), ["{0.25: 0.25, 1: 1.0, 2: 2.0}", "[0, 10, 20, 30, 40, 99]"])
    }

    #if MPI
    /// The same twin under mpirun: rank 0 serves the manager, the Process target runs on a
    /// worker rank and fills the dict and the list through it.
    func test11ManagerUnderMPIRun() throws {
        let outcome = try Launcher.mpirun(["-np", "2", try executable().path], ["11"], timeout: 60)
        XCTAssertEqual(outcome.status, 0, outcome.output)
        XCTAssertEqual(lines(outcome.output).suffix(2), ["{0.25: 0.25, 1: 1.0, 2: 2.0}", "[0, 10, 20, 30, 40, 99]"], outcome.output)
    }
    #endif

    func test12SemaphoreEventCondition() throws {
        let output = lines(try run(["12"]).output)
        XCTAssertEqual(output.filter { $0.hasSuffix("uses the resource") }.count, 4)
        XCTAssertEqual(output.suffix(2), ["event released [0, 1, 2]", "condition met"])
    }

    func test08PoolMapAndSlowMap() throws {
        let outcome = try run(["8"])
        let output = lines(outcome.output)
        XCTAssertEqual(output.first, "[0, 1, 4, 9, 16, 25, 36, 49, 64, 81]")
        XCTAssertEqual(output.dropFirst().first, "[1, 4, 9, 16, 25]")
        let seconds = Double(output.last?.split(separator: " ").dropFirst(3).first ?? "") ?? 99
        XCTAssertGreaterThanOrEqual(seconds, 1.9)
        XCTAssertLessThan(seconds, 3.5, "5 one-second items on 4 workers take ~2 s, not ~5 s")
    }

    func test09ApplyAsync() throws {
        XCTAssertEqual(lines(try run(["9"]).output), ["worker 0", "worker 1", "worker 2"])
    }

    func test10Starmap() throws {
        XCTAssertEqual(try run(["10"]).output, "[2, 12, 30]\n")
    }

    func test13Images() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("seed-images-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let output = lines(try run(["13", folder]).output)
        XCTAssertEqual(output.count, 7)
        for i in 0..<6 {
            let path = folder + "/processed_image\(i).pgm"
            let data = try Data(contentsOf: URL(fileURLWithPath: path))
            XCTAssertEqual(data.count, "P5\n64 48\n255\n".utf8.count + 64 * 48, path)
        }
    }

    func test14OneWriter() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("seed-lines-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        XCTAssertEqual(try run(["14", path]).output, "20 lines written to \(path), all intact: true\n")
    }

    func testUnknownExampleExplainsUsage() throws {
        let process = Foundation.Process()
        process.executableURL = try executable()
        process.arguments = ["99"]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()
        XCTAssertEqual(process.terminationStatus, 64)
    }
}
