import XCTest

@testable import Multiprocessing

#if canImport(Glibc)
import Glibc
#endif

/// Its pid, after a pause long enough for every worker to get some of the inputs.
struct PidAfterPause: ParallelFunction {
    func callAsFunction(_ input: Int) throws -> Int32 {
        var pause = timespec(tv_sec: 0, tv_nsec: 5_000_000)
        _ = nanosleep(&pause, nil)
        return getpid()
    }
}

/// `Pool.workerPlacement`: which process is in each slot, on every start method; a replaced
/// worker's successor shows in its slot; asking from a callback (the pool's own thread) answers
/// at once.
final class WorkerPlacementTests: XCTestCase {
    func testPlacementNamesTheProcessesThatRunTasks() throws {
        for method in StartMethod.allCases {
            let pool = try Pool(processes: 2, startMethod: method)
            defer { pool.terminate() }
            let placement = pool.workerPlacement
            XCTAssertEqual(placement.map(\.slot), [0, 1], "\(method)")
            XCTAssertTrue(placement.allSatisfy { $0.rank == nil && $0.host != nil }, "\(placement)")
            let pids = Set(placement.compactMap(\.pid))
            XCTAssertEqual(pids.count, 2, "two distinct pids (\(method)): \(placement)")
            XCTAssertFalse(pids.contains(getpid()))
            let ran = Set(try pool.map(PidAfterPause(), 0..<40, chunkSize: 1))
            XCTAssertTrue(ran.isSubset(of: pids), "tasks ran in \(ran), placement says \(pids) (\(method))")
            XCTAssertTrue(placement[0].description.hasPrefix("worker 0: pid \(placement[0].pid!) on "), placement[0].description)
        }
    }

    func testAReplacementShowsInItsSlot() throws {
        let pool = try Pool(processes: 2)
        defer { pool.terminate() }
        let before = pool.workerPlacement
        let victim = try XCTUnwrap(before[1].pid)
        XCTAssertEqual(kill(victim, SIGKILL), 0)
        let end = Date().addingTimeInterval(10)
        var after = pool.workerPlacement
        while (after[1].pid == victim || after[1].pid == nil) && Date() < end {
            usleep(10_000)
            after = pool.workerPlacement
        }
        XCTAssertNotEqual(after[1].pid, victim, "slot 1 still names the killed worker: \(after)")
        XCTAssertNotNil(after[1].pid)
        XCTAssertEqual(after[0].pid, before[0].pid, "slot 0 kept its worker")
    }

    func testPlacementFromACallbackAnswersAtOnce() throws {
        let pool = try Pool(processes: 2)
        defer { pool.terminate() }
        let seen = Completion<[WorkerPlacement]>()
        _ = try pool.applyAsync(PidAfterPause(), 0, callback: { _ in seen.complete(.success(pool.workerPlacement)) })
        XCTAssertTrue(seen.wait(until: monotonicNanoseconds() + 10_000_000_000), "the callback never finished")
        let placement = try XCTUnwrap(try seen.outcome?.get())
        XCTAssertEqual(placement.count, 2)
        XCTAssertTrue(placement.allSatisfy { $0.pid != nil }, "\(placement)")
    }
}
