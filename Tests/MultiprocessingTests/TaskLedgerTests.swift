import XCTest

@testable import Multiprocessing

/// The engine's ledger of tasks in flight (`TaskLedger`): every task found by its id until it
/// settles, only by the worker holding it, in any order; memory follows the tasks held.
final class TaskLedgerTests: XCTestCase {
    private func job() -> Job { Job(function: FunctionDefinition(typeName: "T", bytes: [1]), options: .none) }

    func testTasksSettleInAnyOrderOnlyFromTheirWorker() {
        var ledger = TaskLedger()
        let a = job(), b = job()
        var ids: [UInt64] = []
        for i in 0..<10 {
            let task = ledger.record(job: i % 2 == 0 ? a : b, span: InputSpan(first: i, count: 1), worker: i % 3, chunk: 1)
            XCTAssertEqual(task.id, UInt64(i + 1))
            ids.append(task.id)
        }
        XCTAssertEqual(ledger.count, 10)
        XCTAssertEqual(ledger.upcomingID, 11)
        // The initializer's task (no job) is not recorded.
        XCTAssertEqual(ledger.record(job: nil, span: InputSpan(first: 0, count: 1), worker: 0, chunk: 1).id, 0)
        XCTAssertEqual(ledger.count, 10)
        XCTAssertNil(ledger.settle(ids[4], from: 0), "task 5 is worker 1's")
        XCTAssertEqual(ledger.settle(ids[4], from: 1)?.span.first, 4)
        XCTAssertNil(ledger.settle(ids[4], from: 1), "settled once")
        XCTAssertNil(ledger[ids[4]])
        for index in [9, 0, 7, 1, 2, 3, 5, 6, 8] {
            XCTAssertEqual(ledger[ids[index]]?.span.first, index)
            XCTAssertTrue(ledger.holds(index % 2 == 0 ? a : b))
            XCTAssertEqual(ledger.settle(ids[index], from: index % 3)?.id, ids[index])
        }
        XCTAssertTrue(ledger.isEmpty)
        XCTAssertFalse(ledger.holds(a))
        XCTAssertNil(ledger.settle(99, from: 0), "never sent")
    }

    /// More tasks in flight than the window holds (a worker given many tiny chunks): the
    /// oldest move out of the window while their slots are still in it, and each is still
    /// found and settled once (a bug fixed: such a task's reply was dropped, the map hung).
    func testTasksMovedOutOfTheWindowAreStillFound() {
        var ledger = TaskLedger()
        let job = job()
        let limit = TaskLedger.windowLimit
        let tasks = (0..<(limit + 200)).map {
            ledger.record(job: job, span: InputSpan(first: $0, count: 1), worker: $0 % 2, chunk: UInt32($0))
        }
        XCTAssertEqual(ledger.storage.older, 200)
        for task in tasks {
            XCTAssertEqual(ledger[task.id]?.span.first, task.span.first)
            XCTAssertNil(ledger.settle(task.id, from: 1 - task.worker), "held by the other worker")
            XCTAssertEqual(ledger.settle(task.id, from: task.worker)?.id, task.id)
            XCTAssertNil(ledger.settle(task.id, from: task.worker), "settled once")
        }
        XCTAssertTrue(ledger.isEmpty)
        XCTAssertEqual(ledger.storage.older, 0)
    }

    /// A long task held while 100 000 short ones come and go: it is still found, and the
    /// ledger keeps a bounded window, not a slot per id sent since.
    func testALongHeldTaskDoesNotGrowTheLedger() {
        var ledger = TaskLedger()
        let long = ledger.record(job: job(), span: InputSpan(first: 0, count: 1), worker: 0, chunk: 1)
        let short = job()
        for i in 1...100_000 {
            let task = ledger.record(job: short, span: InputSpan(first: i, count: 1), worker: 1, chunk: UInt32(i))
            if i % 3 == 0 {
                // Replies arrive a little out of order.
                XCTAssertNotNil(ledger.settle(task.id - 1, from: 1))
                XCTAssertNotNil(ledger.settle(task.id - 2, from: 1))
                XCTAssertNotNil(ledger.settle(task.id, from: 1))
            }
            XCTAssertLessThanOrEqual(ledger.storage.window, 2 * TaskLedger.windowLimit + 64)
        }
        XCTAssertEqual(ledger.count, 1 + 100_000 % 3)
        XCTAssertEqual(ledger.storage.older, 1, "the long task moved out of the window")
        XCTAssertEqual(ledger[long.id]?.span.first, 0)
        XCTAssertNil(ledger.settle(long.id, from: 1), "held by worker 0")
        XCTAssertEqual(ledger.settle(long.id, from: 0)?.id, long.id)
        ledger.removeAll()
        XCTAssertTrue(ledger.isEmpty)
        XCTAssertEqual(ledger.storage.window + ledger.storage.older, 0)
        let next = ledger.record(job: short, span: InputSpan(first: 0, count: 1), worker: 0, chunk: 1)
        XCTAssertEqual(next.id, 100_002, "ids go on after removeAll")
        XCTAssertEqual(ledger[next.id]?.id, next.id)
    }
}
