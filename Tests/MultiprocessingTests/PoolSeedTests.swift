import XCTest

@testable import Multiprocessing

#if canImport(Glibc)
import Glibc
#endif

/// A random walk from `start`: `steps` uniform steps in -1…1 drawn from the input's stream,
/// plus the stream's number (so a wrong stream cannot give the right answer by chance).
struct StreamWalk: RandomizedFunction {
    var steps: Int
    func callAsFunction(_ start: Double, random: inout RandomStream) -> [Double] {
        var x = start
        for _ in 0..<steps { x += Double.random(in: -1...1, using: &random) }
        return [x, Double(random.stream), Double(random.position)]
    }
}

/// `StreamWalk`, but the worker is killed the first time it runs an input in `victims` (a
/// marker file in `directory` remembers it), after drawing from the stream: a retry must
/// start the input's stream again from its first draw.
struct CrashingStreamWalk: RandomizedFunction {
    var directory: String
    var victims: Set<Int>
    func callAsFunction(_ input: Int, random: inout RandomStream) -> UInt64 {
        let first = random.next()
        if victims.contains(input) {
            let fd = open("\(directory)/\(input)", O_CREAT | O_EXCL | O_WRONLY, 0o600)
            if fd >= 0 {
                close(fd)
                kill(getpid(), SIGKILL)
            }
        }
        return first ^ random.next()
    }
}

/// Throws on `bad`: a failing input of a seeded map is reported at its position.
struct ThrowingStreamWalk: RandomizedFunction {
    var bad: Int
    func callAsFunction(_ input: Int, random: inout RandomStream) throws -> UInt64 {
        if input == bad { throw Boom(value: input) }
        return random.next()
    }
}

/// `Pool.map(_:_:seed:)` and friends: input i draws from stream i of the seed, whatever the
/// worker count, chunk size, start method, retry or call form.
final class PoolSeedTests: XCTestCase {
    let inputs = (0..<40).map { Double($0) * 0.5 }
    let walk = StreamWalk(steps: 100)

    func testSerialReferenceUsesStreamIOfTheSeed() throws {
        let expected = try walk.serial(inputs, seed: 7)
        for (i, input) in inputs.enumerated() {
            var random = RandomStream(seed: 7, stream: UInt64(i))
            XCTAssertEqual(expected[i], walk(input, random: &random))
            XCTAssertEqual(expected[i][1], Double(i))
        }
        XCTAssertNotEqual(try walk.serial(inputs, seed: 8), expected, "another seed draws other numbers")
    }

    func testSameResultsForEveryWorkerCountAndChunkSize() throws {
        let expected = try walk.serial(inputs, seed: 7)
        for workers in [1, 2, 3] {
            try Pool.with(processes: workers, backend: .local) { pool in
                for chunk in [1, 7, nil] as [Int?] {
                    XCTAssertEqual(
                        try pool.map(walk, inputs, seed: 7, chunkSize: chunk), expected,
                        "\(workers) workers, chunk \(chunk.map(String.init) ?? "default")")
                }
            }
        }
    }

    func testSameResultsForEveryStartMethodAndCallForm() throws {
        let expected = try walk.serial(inputs, seed: 99)
        for method in [StartMethod.fork, .forkserver, .spawn] {
            try Pool.with(processes: 2, startMethod: method, backend: .local) { pool in
                XCTAssertEqual(try pool.map(walk, inputs, seed: 99, chunkSize: 3), expected, "\(method) map")
                XCTAssertEqual(
                    try pool.mapAsync(walk, inputs, seed: 99, chunkSize: 5).get(timeout: 60), expected,
                    "\(method) mapAsync")
                XCTAssertEqual(
                    try pool.imap(walk, inputs, seed: 99, chunkSize: 4).map { try $0.get() }, expected,
                    "\(method) imap")
                let unordered = try pool.imapUnordered(walk, inputs, seed: 99, chunkSize: 2).map { try $0.get() }
                XCTAssertEqual(unordered.sorted { $0[1] < $1[1] }, expected, "\(method) imapUnordered")
            }
        }
    }

    func testAsyncMapGivesTheSameResults() async throws {
        let pool = try Pool(processes: 2, backend: .local)
        let results = try await pool.asyncMap(walk, inputs, seed: 3, chunkSize: 6)
        XCTAssertEqual(results, try walk.serial(inputs, seed: 3))
        pool.close()
        try pool.join()
    }

    func testRetryAfterACrashRestartsTheInputsStream() throws {
        let directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("swiftmp-stream-retry-\(getpid())-\(UInt64.random(in: 0...UInt64.max))").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let crashing = CrashingStreamWalk(directory: directory, victims: [3, 11])
        // The reference runs here, serially: with no victims (a victim would kill this process).
        let reference = try CrashingStreamWalk(directory: directory, victims: []).serial(0..<16, seed: 5)
        try Pool.with(processes: 2, backend: .local) { pool in
            XCTAssertEqual(
                try pool.map(crashing, 0..<16, seed: 5, chunkSize: 4, retry: RetryPolicy(attempts: 2)),
                reference)
        }
        XCTAssertTrue(FileManager.default.fileExists(atPath: "\(directory)/3"), "input 3 crashed its worker once")
        XCTAssertTrue(FileManager.default.fileExists(atPath: "\(directory)/11"), "input 11 crashed its worker once")
    }

    func testAFailureNamesTheInputsPosition() throws {
        try Pool.with(processes: 2, backend: .local) { pool in
            XCTAssertThrowsError(try pool.map(ThrowingStreamWalk(bad: 13), 0..<20, seed: 1, chunkSize: 3)) { error in
                XCTAssertEqual((error as? RemoteError)?.inputIndex, 13, "\(error)")
            }
        }
    }

    func testWrapperGivesExplicitStreamNumbers() throws {
        let function = WithRandomStreams(walk, seed: 11)
        try Pool.with(processes: 2, backend: .local) { pool in
            let result = try pool.apply(function, IndexedInput(index: 1_000_000, value: 2.5))
            var random = RandomStream(seed: 11, stream: 1_000_000)
            XCTAssertEqual(result, walk(2.5, random: &random))
        }
    }
}
