import Dispatch
import XCTest

@testable import Multiprocessing

final class BarrierTests: XCTestCase {
    func testSinglePartyPassesAtOnce() throws {
        let barrier = try Barrier(parties: 1)
        XCTAssertEqual(try barrier.wait(timeout: 1), 0)
        XCTAssertEqual(try barrier.wait(timeout: 1), 0)
        XCTAssertEqual(barrier.parties, 1)
        XCTAssertThrowsError(try Barrier(parties: 0)) {
            XCTAssertEqual(($0 as? SynchronizationError)?.code, .invalidArgument)
        }
    }

    func testTimeoutBreaksTheBarrierUntilReset() throws {
        let barrier = try Barrier(parties: 2)
        XCTAssertThrowsError(try barrier.wait(timeout: 0.05)) { XCTAssertTrue($0 is BrokenBarrierError) }
        XCTAssertTrue(barrier.isBroken)
        XCTAssertThrowsError(try barrier.wait(timeout: 1)) { XCTAssertTrue($0 is BrokenBarrierError) }
        try barrier.reset()
        XCTAssertFalse(barrier.isBroken)
        XCTAssertEqual(barrier.nWaiting, 0)
        // Usable again: two threads pass together, with different arrival indices.
        final class Index: @unchecked Sendable { var value = -1 }
        let other = Index()
        let group = DispatchGroup()
        group.enter()
        DispatchQueue.global().async {
            other.value = (try? barrier.wait(timeout: 5)) ?? -2
            group.leave()
        }
        let mine = try barrier.wait(timeout: 5)
        XCTAssertEqual(group.wait(timeout: .now() + 5), .success)
        XCTAssertEqual(Set([mine, other.value]), [0, 1])
    }

    func testAbortWakesAWaiterWithBrokenBarrierError() throws {
        let barrier = try Barrier(parties: 2, timeout: 5)
        DispatchQueue.global().asyncAfter(deadline: .now() + 0.05) { try? barrier.abort() }
        let start = monotonicSeconds()
        XCTAssertThrowsError(try barrier.wait()) { XCTAssertTrue($0 is BrokenBarrierError) }
        XCTAssertLessThan(monotonicSeconds() - start, 4)
        XCTAssertTrue(barrier.isBroken)
    }

    /// Three worker processes meet twice; the action runs once per pass, in one of them.
    func testBarrierAcrossThreeProcesses() throws {
        try Pool.with(processes: 3, startMethod: .spawn) { pool in
            _ = try pool.map(Square(), [1, 2, 3], chunkSize: 1)
            let passes = try SharedValue(0)
            let barrier = try Barrier(parties: 3, action: CountPasses(passes: passes), timeout: 10)
            let indices = try pool.mapAsync(MeetAtBarrier(barrier: barrier), 0..<3, chunkSize: 1).get(timeout: 10)
            XCTAssertEqual(indices.sorted(), [0, 1, 2])
            XCTAssertEqual(passes.value, 2)
            XCTAssertFalse(barrier.isBroken)
        }
    }
}
