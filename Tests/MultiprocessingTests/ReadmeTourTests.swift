import XCTest
import Multiprocessing

// The README's tour, compiled and run, so that it stays true.

struct TourSquare: ParallelFunction {
    func callAsFunction(_ x: Int) -> Int { x * x }
}

struct TourPower: ParallelFunction {
    func callAsFunction(_ args: Arguments<Double, Int>) -> Double {
        let (base, exponent) = args.values
        return (0..<exponent).reduce(1) { acc, _ in acc * base }
    }
}

struct TourWorker: ParallelFunction {
    var results: Queue<Int>
    var counter: SharedValue<Int32>
    var lock: Lock
    var n: Int
    func callAsFunction(_: Void) throws {
        try results.put((0..<n).reduce(0) { $0 + $1 + $1 * $1 + $1 * $1 * $1 })
        try lock.withLock { counter.value += 1 }
    }
}

final class ReadmeTourTests: TimeLimitedTestCase {
    func testPoolTour() async throws {
        let pool = try Pool(processes: 4)
        defer { pool.terminate() }
        XCTAssertEqual(try pool.map(TourSquare(), 0..<10), [0, 1, 4, 9, 16, 25, 36, 49, 64, 81])
        XCTAssertEqual(try pool.starmap(TourPower(), [(2.0, 3), (3.0, 2)]), [8.0, 9.0])
        let pending = try pool.applyAsync(TourSquare(), 7)
        XCTAssertEqual(try pending.get(timeout: 5), 49)
        var count = 0
        for result in try pool.imap(TourSquare(), 1...1_000, chunkSize: 100) {
            _ = try result.get()
            count += 1
        }
        XCTAssertEqual(count, 1_000)
        var sum = 0
        for try await y in try pool.imapUnordered(TourSquare(), 0..<100).values { sum += y }
        XCTAssertEqual(sum, (0..<100).reduce(0) { $0 + $1 * $1 })
    }

    func testProcessTour() throws {
        let results = try Queue<Int>()
        let counter = try SharedValue<Int32>(0)
        let lock = try Lock()
        let workers = (0..<2).map { _ in
            Multiprocessing.Process(target: TourWorker(results: results, counter: counter, lock: lock, n: 1000))
        }
        for p in workers { try p.start() }
        for p in workers { _ = try p.join(timeout: 30) }
        XCTAssertEqual(try results.get(timeout: 5) + results.get(timeout: 5), 499_667_166_000)
        XCTAssertEqual(counter.value, 2)
        let manager = try Manager()
        let scores = try manager.dict(String.self, Int.self)
        try scores.set("alice", 3)
        XCTAssertEqual(try scores.get("alice"), 3)
    }
}
