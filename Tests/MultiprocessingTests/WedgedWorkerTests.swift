import XCTest

@testable import Multiprocessing

#if canImport(Glibc)
import Glibc
#endif

/// A worker that never takes the chunk it was handed — here stopped with SIGSTOP, as a
/// `.fork` child stuck on a lock held at the fork would be — is replaced, and the call
/// completes with every input run once and none charged, on every start method. (Without
/// a time limit the call waited for it for ever.)
final class WedgedWorkerTests: TimeLimitedTestCase {
    func testAStoppedWorkerIsReplacedAndTheCallCompletes() throws {
        for method in [StartMethod.fork, .forkserver, .spawn] {
            try Pool.with(processes: 2, startMethod: method) { pool in
                pool.engine.wedgeNanoseconds = 2_500_000_000
                XCTAssertEqual(try pool.map(Square(), [1, 2]), [1, 4], "\(method)")
                let before = pool.workerPlacement.compactMap(\.pid)
                XCTAssertEqual(before.count, 2, "\(method)")
                XCTAssertEqual(kill(before[0], SIGSTOP), 0)
                var state = ProcessStat.activity(of: before[0])?.state
                for _ in 0..<100 where state != "T" {
                    usleep(10_000)
                    state = ProcessStat.activity(of: before[0])?.state
                }
                XCTAssertEqual(state, "T", "\(method): what /proc says of a stopped worker")
                let start = monotonicNanoseconds()
                XCTAssertEqual(try pool.map(Square(), Array(0..<40), chunkSize: 1), (0..<40).map { $0 * $0 }, "\(method)")
                let seconds = Double(monotonicNanoseconds() - start) / 1e9
                // Replaced after 2.5–3.5 s of not taking its chunk (looked at once a second), the call then ends.
                XCTAssertLessThan(seconds, 20, "\(method)")
                let after = pool.workerPlacement.compactMap(\.pid)
                XCTAssertFalse(after.contains(before[0]), "\(method): \(before) → \(after)")
                XCTAssertTrue(after.contains(before[1]), "\(method): the running worker stays: \(before) → \(after)")
                XCTAssertEqual(try pool.map(Square(), Array(0..<10)), (0..<10).map { $0 * $0 }, "\(method)")
            }
        }
    }
}
