// More ports of CPython's queue tests (Lib/test/_test_multiprocessing.py: _TestQueue,
// TestStdinBadfiledescriptor), on every start method where a child takes part.
//
// CPython test                                          → Swift test (MoreQueuePortTests)
// TestStdinBadfiledescriptor.test_queue_in_process      → testItemsPutByAChildThatExitsAtOnceArrive
// _TestQueue.test_task_done (join with a timeout)       → testJoinTimesOutWhileTasksAreUnfinished
// _TestQueue.test_task_done (ValueError: too many)      → testTaskDoneTooOftenInAChild
// _TestQueue.test_get (empty()/qsize() seen by a child) → testCountAndEmptinessSeenFromAChild
//
// Differences from Python, checked as documented: task_done's ValueError is
// `QueueError(.taskDoneTooOften)`.

import Dispatch
import Multiprocessing
import XCTest

#if canImport(Glibc)
import Glibc
#endif

/// Closes its standard input, puts small items and a large one, and exits at once (CPython's
/// `_this_sub_process` with a bad stdin; a feeder thread must flush before the exit).
struct PutThenExit: ParallelFunction {
    var queue: Queue<[UInt8]>
    func callAsFunction(_: Void) throws {
        close(0)
        for i in 0..<100 { try queue.put([UInt8(i)]) }
        try queue.put([UInt8](repeating: 7, count: 3 << 20))
    }
}

/// Calls taskDone once more than it got items; reports the error's code (or "none").
struct TaskDoneTooOften: ParallelFunction {
    var queue: JoinableQueue<Int>
    var report: Queue<String>
    func callAsFunction(_: Void) throws {
        _ = try queue.get(timeout: 30)
        try queue.taskDone()
        do {
            try queue.taskDone()
            try report.put("none")
        } catch let error as QueueError {
            try report.put("\(error.code)")
        }
    }
}

/// Reports count and isEmpty, then takes one item.
struct ReportCountThenTake: ParallelFunction {
    var queue: Queue<Int>
    var report: Queue<[Int]>
    func callAsFunction(_: Void) throws {
        try report.put([queue.count, queue.isEmpty ? 1 : 0])
        _ = try queue.get(timeout: 30)
        try report.put([queue.count, queue.isEmpty ? 1 : 0])
    }
}

final class MoreQueuePortTests: PortTestCase {
    /// test_queue_in_process: a child without standard input puts 100 small items and a
    /// 3 MiB one (more than the queue's buffer) and exits at once; every item arrives.
    func testItemsPutByAChildThatExitsAtOnceArrive() throws {
        try forEachMethod { method in
            let queue = try Queue<[UInt8]>()
            let p = try started(PutThenExit(queue: queue), method)
            for i in 0..<100 { XCTAssertEqual(try queue.get(timeout: 30), [UInt8(i)], "\(method)") }
            let big = try queue.get(timeout: 30)
            XCTAssertEqual(big.count, 3 << 20, "\(method)")
            XCTAssertTrue(big.allSatisfy { $0 == 7 })
            try joinOrKill(p)
            XCTAssertEqual(p.exitCode, 0, "\(method)")
            XCTAssertTrue(queue.isEmpty)
        }
    }

    /// test_task_done: join(timeout) is false after its timeout while a task is unfinished,
    /// true at once when none is; unfinishedTasks follows put and taskDone.
    func testJoinTimesOutWhileTasksAreUnfinished() throws {
        let queue = try JoinableQueue<Int>()
        XCTAssertTrue(try queue.join(timeout: 0))
        try queue.put(1)
        try queue.put(2)
        XCTAssertEqual(queue.unfinishedTasks, 2)
        let (joined, elapsed) = try timed { try queue.join(timeout: 0.2) }
        XCTAssertFalse(joined)
        assertWaited(elapsed, 0.2, "join(timeout: 0.2)")
        _ = try queue.get()
        try queue.taskDone()
        XCTAssertEqual(queue.unfinishedTasks, 1)
        XCTAssertFalse(try queue.join(timeout: 0))
        _ = try queue.get()
        try queue.taskDone()
        XCTAssertEqual(queue.unfinishedTasks, 0)
        let (done, elapsedDone) = try timed { try queue.join(timeout: 5) }
        XCTAssertTrue(done)
        assertQuick(elapsedDone, "join with nothing unfinished")
    }

    /// test_task_done's ValueError("task_done() called too many times"), in a child: the
    /// extra taskDone throws there, and the parent's count is not driven below zero.
    func testTaskDoneTooOftenInAChild() throws {
        try forEachMethod { method in
            let queue = try JoinableQueue<Int>()
            let report = try Queue<String>()
            try queue.put(1)
            let p = try started(TaskDoneTooOften(queue: queue, report: report), method)
            XCTAssertEqual(try report.get(timeout: 30), "taskDoneTooOften", "\(method)")
            try joinOrKill(p)
            XCTAssertEqual(queue.unfinishedTasks, 0, "\(method)")
            XCTAssertTrue(try queue.join(timeout: 1))
            try queue.put(2)
            XCTAssertEqual(queue.unfinishedTasks, 1, "\(method)")
        }
    }

    /// test_get / test_qsize across processes: a child sees the parent's count and emptiness,
    /// and the parent sees the child's get.
    func testCountAndEmptinessSeenFromAChild() throws {
        try forEachMethod { method in
            let queue = try Queue<Int>()
            let report = try Queue<[Int]>()
            for i in 0..<3 { try queue.put(i) }
            let p = try started(ReportCountThenTake(queue: queue, report: report), method)
            XCTAssertEqual(try report.get(timeout: 30), [3, 0], "\(method)")
            XCTAssertEqual(try report.get(timeout: 30), [2, 0], "\(method)")
            try joinOrKill(p)
            XCTAssertEqual(queue.count, 2)
            XCTAssertEqual(try queue.get(timeout: 1), 1)
            XCTAssertEqual(try queue.get(timeout: 1), 2)
            XCTAssertTrue(queue.isEmpty)
            XCTAssertEqual(queue.count, 0)
        }
    }
}
