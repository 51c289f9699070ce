// Ports of CPython's queue tests (Lib/test/_test_multiprocessing.py: _TestQueue,
// TestSimpleQueue), on every start method where a child takes part.
//
// CPython test                                         → Swift test (QueuePortTests)
// _TestQueue.test_put                                  → testPutBlocksOnAFullQueueUntilAChildDrainsIt
// _TestQueue.test_get                                  → testGetVariantsAndTimeouts
// _TestQueue.test_fork                                 → testItemsPutBeforeAndInAChildKeepTheirOrder
// _TestQueue.test_qsize                                → testCountFollowsPutsAndGets
// _TestQueue.test_task_done                            → testTaskDoneFromFourWorkers
// _TestQueue.test_shutdown_* (_join_worker)            → testJoinInAnotherProcessWaitsForTaskDone (join only;
//                                                        Queue.shutdown is not in the API)
// _TestQueue.test_timeout                              → testGetTimeout
// _TestQueue.test_queue_feeder_donot_stop_onexc        → testUnencodableItemLeavesTheQueueUsable
// _TestQueue.test_closed_queue_put_get_exceptions      → testClosedQueueRefusesPutAndGet
// _TestQueue.test_closed_queue_empty_exceptions        → testClosedQueueRefusesPutAndGet (difference below)
// TestSimpleQueue.test_empty                           → testSimpleQueueEmptySeenFromAChild
// TestSimpleQueue.test_close                           → testClosedQueueRefusesPutAndGet (close twice)
// (pickling a Lock for a queue raises RuntimeError     → testSharedObjectsAreRefusedAtPut (bug fixed: the put
//  "…should only be shared between processes through     succeeded and the consumer's get failed, losing the item)
//  inheritance")
//
// Not applicable: test_no_import_lock_contention, test_queue_feeder_on_queue_feeder_error (no
// feeder thread: a put encodes and writes in the caller, so its error is the caller's).
// Gap: Queue.shutdown(immediate:) (Python 3.13) does not exist; its cases are not ported.
//
// Differences from Python, checked as documented:
// - A put of an item that cannot be encoded throws `QueueError(.encoding)` in the caller
//   (Python's feeder thread prints the error and drops the item).
// - `isEmpty` of a closed queue is a property that does not throw (Python's `empty()` raises
//   OSError once the closed queue had been used); `close()` affects only this handle.

import Multiprocessing
import XCTest

#if canImport(Glibc)
import Glibc
#endif

/// CPython's `_test_put`: waits for the go, takes six items, says so.
struct TakeSix: ParallelFunction {
    var queue: Queue<Int>
    var childCanStart: Event
    var parentCanContinue: Event
    func callAsFunction(_: Void) throws {
        try require(childCanStart.wait(timeout: 30), "no go")
        for _ in 0..<6 { _ = try queue.get(timeout: 30) }
        parentCanContinue.set()
    }
}

/// CPython's `_test_get`: waits for the go, puts 2…5, says so.
struct PutTwoToFive: ParallelFunction {
    var queue: Queue<Int>
    var childCanStart: Event
    var parentCanContinue: Event
    func callAsFunction(_: Void) throws {
        try require(childCanStart.wait(timeout: 30), "no go")
        for i in 2...5 { try queue.put(i) }
        parentCanContinue.set()
    }
}

/// CPython's `_test_fork`: puts 10…19.
struct PutTenToNineteen: ParallelFunction {
    var queue: Queue<Int>
    func callAsFunction(_: Void) throws {
        for i in 10..<20 { try queue.put(i) }
    }
}

/// CPython's `_test_task_done`: gets until the sentinel (-1), marking each item done.
struct WorkUntilSentinel: ParallelFunction {
    var queue: JoinableQueue<Int>
    func callAsFunction(_: Void) throws {
        while try queue.get(timeout: 30) >= 0 {
            usleep(10_000)
            try queue.taskDone()
        }
    }
}

/// CPython's `_join_worker`: joins the queue (exits 0 once every task is done, 2 on time-out).
struct JoinQueue: ParallelFunction {
    var queue: JoinableQueue<String>
    func callAsFunction(_: Void) throws {
        exit(try queue.join(timeout: 30) ? 0 : 2)
    }
}

/// Gets one item and reports what happened: "got" or the error.
struct GetSharedObject: ParallelFunction {
    var queue: Queue<Event>
    var report: Queue<String>
    func callAsFunction(_: Void) throws {
        do {
            _ = try queue.get(timeout: 0.3)
            try report.put("got")
        } catch {
            try report.put("\(error)")
        }
    }
}

/// CPython's TestSimpleQueue `_test_empty`: reports `isEmpty` twice.
struct ReportEmptiness: ParallelFunction {
    var queue: SimpleQueue<Bool>
    var childCanStart: Event
    var parentCanContinue: Event
    func callAsFunction(_: Void) throws {
        defer { parentCanContinue.set() }
        try require(childCanStart.wait(timeout: 30), "no go")
        try queue.put(queue.isEmpty)
        try queue.put(queue.isEmpty)
    }
}

/// A value that refuses to be encoded (CPython's NotSerializable).
struct NotEncodable: Codable, Sendable {
    struct Refused: Error {}
    init() {}
    init(from decoder: any Decoder) throws { throw Refused() }
    func encode(to encoder: any Encoder) throws { throw Refused() }
}

/// An item that is either a flag or a value that cannot be encoded.
enum FlagOrBroken: Codable, Sendable, Equatable {
    case flag(Bool)
    case broken
    private enum CodingKeys: String, CodingKey { case flag }
    init(from decoder: any Decoder) throws {
        self = .flag(try decoder.container(keyedBy: CodingKeys.self).decode(Bool.self, forKey: .flag))
    }
    func encode(to encoder: any Encoder) throws {
        switch self {
        case .flag(let value):
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(value, forKey: .flag)
        case .broken:
            try NotEncodable().encode(to: encoder)
        }
    }
}

final class QueuePortTests: PortTestCase {
    /// test_put: a queue of 6 fills; every non-blocking or timed put then fails with Full
    /// (at once, or after its timeout); once a child takes the six, it is empty again.
    func testPutBlocksOnAFullQueueUntilAChildDrainsIt() throws {
        try forEachMethod { method in
            let queue = try Queue<Int>(maxSize: 6)
            let childCanStart = try Event(), parentCanContinue = try Event()
            let p = try started(
                TakeSix(queue: queue, childCanStart: childCanStart, parentCanContinue: parentCanContinue),
                daemon: true, method)
            XCTAssertTrue(queue.isEmpty)
            XCTAssertFalse(queue.isFull)
            try queue.put(1)
            try queue.put(2, timeout: nil)
            try queue.put(3, timeout: 5)
            try queue.putNowait(4)
            try queue.put(5, timeout: 0)
            try queue.putNowait(6)
            XCTAssertFalse(queue.isEmpty)
            XCTAssertTrue(queue.isFull)
            XCTAssertEqual(queue.count, 6)
            for (timeout, expected) in [(0.0, 0.0), (-1, 0), (0.1, 0.1), (0.2, 0.2)] {
                let (result, elapsed) = timed { Result { try queue.put(7, timeout: timeout) } }
                XCTAssertThrowsError(try result.get(), "put(timeout: \(timeout))") { XCTAssertTrue($0 is Full, "\($0)") }
                if expected == 0 { assertQuick(elapsed, "put(timeout: \(timeout))") } else { assertWaited(elapsed, expected, "put") }
            }
            let (nowait, elapsed) = timed { Result { try queue.putNowait(7) } }
            XCTAssertThrowsError(try nowait.get()) { XCTAssertTrue($0 is Full) }
            assertQuick(elapsed, "putNowait")
            childCanStart.set()
            XCTAssertTrue(parentCanContinue.wait(timeout: 30), "\(method)")
            XCTAssertTrue(queue.isEmpty, "\(method)")
            XCTAssertFalse(queue.isFull)
            try joinOrKill(p)
            XCTAssertEqual(p.exitCode, 0)
        }
    }

    /// test_get: what a child put is got with every variant; then every variant on the empty
    /// queue fails with Empty, at once or after its timeout.
    func testGetVariantsAndTimeouts() throws {
        try forEachMethod { method in
            let queue = try Queue<Int>()
            let childCanStart = try Event(), parentCanContinue = try Event()
            let p = try started(
                PutTwoToFive(queue: queue, childCanStart: childCanStart, parentCanContinue: parentCanContinue),
                daemon: true, method)
            XCTAssertTrue(queue.isEmpty)
            childCanStart.set()
            XCTAssertTrue(parentCanContinue.wait(timeout: 30))
            XCTAssertFalse(queue.isEmpty)
            XCTAssertEqual(try queue.get(timeout: nil), 2)
            XCTAssertEqual(try queue.get(), 3)
            XCTAssertEqual(try queue.get(timeout: 1), 4)
            XCTAssertEqual(try queue.getNowait(), 5)
            XCTAssertTrue(queue.isEmpty)
            for (timeout, expected) in [(0.0, 0.0), (-1, 0), (0.1, 0.1), (0.2, 0.2)] {
                let (result, elapsed) = timed { Result { try queue.get(timeout: timeout) } }
                XCTAssertThrowsError(try result.get(), "get(timeout: \(timeout))") { XCTAssertTrue($0 is Empty, "\($0)") }
                if expected == 0 { assertQuick(elapsed, "get(timeout: \(timeout))") } else { assertWaited(elapsed, expected, "get") }
            }
            let (nowait, elapsed) = timed { Result { try queue.getNowait() } }
            XCTAssertThrowsError(try nowait.get()) { XCTAssertTrue($0 is Empty) }
            assertQuick(elapsed, "getNowait")
            try joinOrKill(p)
        }
    }

    /// test_fork: items put before the child started come out before the child's own, in
    /// order, and nothing else — read after the child ended.
    func testItemsPutBeforeAndInAChildKeepTheirOrder() throws {
        try forEachMethod { method in
            let queue = try Queue<Int>()
            for i in 0..<10 { try queue.put(i) }
            let p = try started(PutTenToNineteen(queue: queue), daemon: true, method)
            try joinOrKill(p) // its items outlive it (CPython: the feeder thread flushes before exit)
            XCTAssertEqual(p.exitCode, 0)
            XCTAssertEqual(try (0..<20).map { _ in try queue.get(timeout: 30) }, Array(0..<20), "\(method)")
            XCTAssertThrowsError(try queue.getNowait()) { XCTAssertTrue($0 is Empty) }
        }
    }

    /// test_qsize.
    func testCountFollowsPutsAndGets() throws {
        let queue = try Queue<Int>()
        XCTAssertEqual(queue.count, 0)
        try queue.put(1)
        XCTAssertEqual(queue.count, 1)
        try queue.put(5)
        XCTAssertEqual(queue.count, 2)
        _ = try queue.get()
        XCTAssertEqual(queue.count, 1)
        _ = try queue.get()
        XCTAssertEqual(queue.count, 0)
    }

    /// test_task_done: four worker processes mark items done; join returns once all ten are;
    /// a sentinel each then ends them.
    func testTaskDoneFromFourWorkers() throws {
        try forEachMethod { method in
            let queue = try JoinableQueue<Int>()
            let workers = try (0..<4).map { _ in try started(WorkUntilSentinel(queue: queue), daemon: true, method) }
            for i in 0..<10 { try queue.put(i) }
            XCTAssertTrue(try queue.join(timeout: 30), "\(method)")
            XCTAssertEqual(queue.unfinishedTasks, 0)
            for _ in workers { try queue.put(-1) }
            for p in workers { try joinOrKill(p) }
            XCTAssertEqual(workers.map(\.exitCode), [0, 0, 0, 0], "\(method)")
        }
    }

    /// The `_join_worker` of CPython's shutdown cases: a join in another process returns
    /// only once the parent marked the last item done.
    func testJoinInAnotherProcessWaitsForTaskDone() throws {
        try forEachMethod { method in
            let queue = try JoinableQueue<String>(maxSize: 1)
            try queue.put("data")
            let joiner = try started(JoinQueue(queue: queue), method)
            XCTAssertEqual(try queue.get(timeout: 5), "data")
            usleep(100_000)
            XCTAssertTrue(joiner.isAlive, "\(method): join returned with a task not done")
            try queue.taskDone()
            try joinOrKill(joiner)
            XCTAssertEqual(joiner.exitCode, 0, "\(method)")
            XCTAssertThrowsError(try queue.taskDone()) { XCTAssertEqual(($0 as? QueueError)?.code, .taskDoneTooOften) }
        }
    }

    /// test_timeout.
    func testGetTimeout() throws {
        let queue = try Queue<Int>()
        let (result, elapsed) = timed { Result { try queue.get(timeout: 0.2) } }
        XCTAssertThrowsError(try result.get()) { XCTAssertTrue($0 is Empty) }
        XCTAssertGreaterThanOrEqual(elapsed, 0.1)
    }

    /// test_queue_feeder_donot_stop_onexc: an item that cannot be encoded fails its put (in the
    /// caller: difference) and leaves the queue usable, its size right and no slot taken.
    func testUnencodableItemLeavesTheQueueUsable() throws {
        for maxSize in [0, 1] {
            let queue = try Queue<FlagOrBroken>(maxSize: maxSize)
            XCTAssertThrowsError(try queue.put(.broken, timeout: 1)) {
                XCTAssertEqual(($0 as? QueueError)?.code, .encoding, "\($0)")
            }
            XCTAssertEqual(queue.count, 0)
            try queue.put(.flag(true), timeout: 1)
            XCTAssertEqual(queue.count, 1)
            XCTAssertEqual(try queue.get(timeout: 5), .flag(true))
            XCTAssertTrue(queue.isEmpty)
        }
    }

    /// test_closed_queue_put_get_exceptions (and SimpleQueue's test_close): after close, put
    /// and get throw `.closed`; close again is fine; the closed handle still answers isEmpty.
    func testClosedQueueRefusesPutAndGet() throws {
        let plain = try Queue<String>()
        let joinable = try JoinableQueue<String>()
        for queue in [plain, joinable as Queue<String>] {
            try queue.put("foo")
            queue.close()
            queue.close()
            XCTAssertThrowsError(try queue.put("foo")) { XCTAssertEqual(($0 as? QueueError)?.code, .closed, "\($0)") }
            XCTAssertThrowsError(try queue.get()) { XCTAssertEqual(($0 as? QueueError)?.code, .closed, "\($0)") }
            XCTAssertThrowsError(try queue.getNowait()) { XCTAssertEqual(($0 as? QueueError)?.code, .closed, "\($0)") }
            _ = queue.isEmpty // no error (difference: Python's empty() raises OSError here)
        }
        let simple = try SimpleQueue<Int>()
        simple.close()
        simple.close()
        XCTAssertThrowsError(try simple.put(1)) { XCTAssertEqual(($0 as? QueueError)?.code, .closed, "\($0)") }
        XCTAssertThrowsError(try simple.get(timeout: 1)) { XCTAssertEqual(($0 as? QueueError)?.code, .closed, "\($0)") }
    }

    /// Shared objects (locks, events, shared values, queues) travel in a Process target or a
    /// pool function, never through a queue (README; CPython raises RuntimeError when it
    /// pickles one): the put fails, with a message that says where they can go, and the
    /// queue is left as it was. (The put used to succeed and a consumer in another process
    /// got an encoding error for an item that was then lost.)
    func testSharedObjectsAreRefusedAtPut() throws {
        func checkRefused(_ error: any Error, file: StaticString = #filePath, line: UInt = #line) {
            XCTAssertEqual((error as? QueueError)?.code, .encoding, "\(error)", file: file, line: line)
            XCTAssertTrue("\(error)".contains("Process target or pool function"), "\(error)", file: file, line: line)
        }
        let events = try Queue<Event>()
        XCTAssertThrowsError(try events.put(try Event())) { checkRefused($0) }
        XCTAssertThrowsError(try Queue<Lock>().put(try Lock())) { checkRefused($0) }
        XCTAssertThrowsError(try Queue<SharedValue<Int>>().put(try SharedValue(1))) { checkRefused($0) }
        XCTAssertThrowsError(try Queue<[Multiprocessing.Semaphore]>().put([try .init(value: 1)])) { checkRefused($0) }
        XCTAssertThrowsError(try Queue<Queue<Int>>().put(try Queue<Int>())) { checkRefused($0) }
        XCTAssertThrowsError(try JoinableQueue<RLock>().put(try RLock())) { checkRefused($0) }
        XCTAssertThrowsError(try SimpleQueue<Barrier>().put(try Barrier(parties: 2))) { checkRefused($0) }
        XCTAssertTrue(events.isEmpty)
        // A consumer in another process is never handed such an item.
        try forEachMethod { method in
            let report = try Queue<String>()
            let p = try started(GetSharedObject(queue: events, report: report), method)
            XCTAssertThrowsError(try events.put(try Event())) { checkRefused($0) }
            XCTAssertEqual(try report.get(timeout: 30), "the queue is empty", "\(method)")
            try joinOrKill(p)
        }
        // Plain values in the same queue type still travel.
        let plain = try Queue<[String: Int]>()
        try plain.put(["a": 1])
        XCTAssertEqual(try plain.get(timeout: 5), ["a": 1])
    }

    /// TestSimpleQueue.test_empty: a child sees the queue empty, then not.
    func testSimpleQueueEmptySeenFromAChild() throws {
        try forEachMethod { method in
            let queue = try SimpleQueue<Bool>()
            let childCanStart = try Event(), parentCanContinue = try Event()
            let p = try started(
                ReportEmptiness(queue: queue, childCanStart: childCanStart, parentCanContinue: parentCanContinue),
                daemon: true, method)
            XCTAssertTrue(queue.isEmpty)
            childCanStart.set()
            XCTAssertTrue(parentCanContinue.wait(timeout: 30))
            XCTAssertFalse(queue.isEmpty)
            XCTAssertEqual(try queue.get(timeout: 5), true, "\(method)")
            XCTAssertEqual(try queue.get(timeout: 5), false, "\(method)")
            XCTAssertTrue(queue.isEmpty)
            try joinOrKill(p)
        }
    }
}
