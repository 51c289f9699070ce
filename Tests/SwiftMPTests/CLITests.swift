import Foundation
import TestSupport
import XCTest

final class CLITests: XCTestCase {
    func testPiIsBitExactOnEveryStartMethodAndWorkerCount() throws {
        for (method, workers) in [("fork", 1), ("forkserver", 2), ("spawn", 3), ("automatic", 2)] {
            let outcome = try CLIRunner.run([
                "pi", "--samples", "2000000", "--seed", "12345", "--json",
                "--start-method", method, "--processes", String(workers),
            ])
            XCTAssertEqual(outcome.status, 0, outcome.errors)
            let object = try JSONSerialization.jsonObject(with: Data(outcome.output.utf8)) as? [String: Any]
            XCTAssertEqual(object?["samples"] as? Int, 2_000_000)
            XCTAssertEqual(object?["workers"] as? Int, workers)
            hits.append(object?["hits"] as? Int ?? -1)
        }
        XCTAssertEqual(Set(hits).count, 1, "\(hits)")
        let reference = try CLIRunner.run(["pi", "--samples", "20000000", "--processes", "2"])
        XCTAssertTrue(reference.output.hasPrefix("pi ≈ 3.1420982 (15710491 hits in 20000000 samples"), reference.output)
    }
    private var hits: [Int] = []

    func testBadArgumentsGiveOneLineAndNonZeroExit() throws {
        for arguments in [
            ["pi", "--samples", "0"], ["pi", "--processes", "0"], ["pi", "--backend", "cloud"],
            ["mandelbrot", "--width", "-3"], ["matmul", "--n", "x"], ["nbody", "--steps", "-1"],
            ["frobnicate"], ["pi", "--chunk-size", "0"],
        ] {
            let outcome = try CLIRunner.run(arguments)
            XCTAssertNotEqual(outcome.status, 0, "\(arguments)")
            XCTAssertEqual(outcome.output, "", "\(arguments)")
            let lines = outcome.errors.split(separator: "\n")
            XCTAssertEqual(lines.count, 1, "\(arguments): \(outcome.errors)")
            XCTAssertTrue(outcome.errors.hasPrefix("swiftmp: "), "\(arguments): \(outcome.errors)")
        }
    }

    func testMandelbrotWritesAValidPNGOfTheRequestedSize() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("mandel-\(UUID().uuidString).png")
        defer { try? FileManager.default.removeItem(at: path) }
        let outcome = try CLIRunner.run(["mandelbrot", "--width", "400", "--height", "300", "-o", path.path, "--json"])
        XCTAssertEqual(outcome.status, 0, outcome.errors)
        XCTAssertTrue(outcome.output.contains("\"checksum\":7077920"), outcome.output)
        let data = try Data(contentsOf: path)
        XCTAssertEqual(Array(data.prefix(8)), [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A])
        XCTAssertEqual(String(decoding: data[12..<16], as: UTF8.self), "IHDR")
        let width = data[16..<20].reduce(0) { $0 << 8 | Int($1) }
        let height = data[20..<24].reduce(0) { $0 << 8 | Int($1) }
        XCTAssertEqual(width, 400)
        XCTAssertEqual(height, 300)
    }

    func testKernelsAgreeWithReferences() throws {
        let matmul = try CLIRunner.run(["matmul", "--n", "256", "--processes", "2"])
        XCTAssertTrue(matmul.output.contains("ΣC = 67109448, Σ C[i][j]·(i+2j+1) = 25738373806"), matmul.output)
        let nbody = try CLIRunner.run(["nbody", "--bodies", "1024", "--steps", "2", "--json"])
        let object = try JSONSerialization.jsonObject(with: Data(nbody.output.utf8)) as? [String: Any]
        let energy = try XCTUnwrap(object?["kinetic_energy"] as? Double)
        let positions = try XCTUnwrap(object?["sum_squared_positions"] as? Double)
        XCTAssertEqual(energy, 7.2356427349476605e-6, accuracy: 7.2356427349476605e-6 * 1e-9)
        XCTAssertEqual(positions, 256.85125265377235, accuracy: 256.85125265377235 * 1e-9)
    }
}
