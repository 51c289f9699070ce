// Ports of CPython's Lib/test/test_concurrent_futures/test_deadlock.py (ExecutorDeadlockTest:
// objects that fail, exit or crash while they are pickled or unpickled, on the way to a worker
// or back) to the Pool, with `Codable` values whose `encode(to:)` / `init(from:)` throw, call
// `_exit` or SIGKILL their process (`Port4Item`, Port4DifferenceTests.swift); and of the
// _TestQueue / _TestContainers cases about values that cannot be unpickled. Children and pools
// on every start method where a worker or a child takes part.
//
// CPython test                                        → Swift test (PoolCodingPortTests)
// test_error_at_task_pickle (chunks of one: apply_async,
//   imap, map_async; error callbacks run once)         → testAnInputThatCannotBeEncodedFailsItsCall
// test_shutdown_deadlock_pickle (submit, then shutdown
//   without waiting)                                   → testAnUnencodableInputThenCloseAndJoin
// test_error_at_task_unpickle (the function value)     → testAFunctionThatCannotBeDecodedFailsOnlyItsCalls
// test_exit_at_task_unpickle /
//   test_crash_at_task_unpickle (the function value)   → testAFunctionWhoseDecodingEndsTheWorkerFailsOnlyItsCalls
// test_exit_at_task_unpickle, test_crash_at_task_unpickle,
//   test_exit/crash_during_result_pickle_on_worker
//   (chunks of one, a pool of one worker)              → testInputsAndResultsThatEndTheWorkerWithChunksOfOne
// test_shutdown_deadlock (a worker dies after shutdown) → testAWorkerThatDiesAfterCloseFailsItsCallAndJoinReturns
// test_crash_big_data                                  → testAWorkerThatDiesWithLargeInputsFailsTheMap
// _TestQueue.test_get (an item that cannot be unpickled,
//   put by a child)                                    → testAQueueItemThatCannotBeDecodedCostsOnlyItself
// _TestContainers / TestSyncManagerTypes (values that
//   cannot be pickled or unpickled, manager side)      → testManagerValuesThatCannotBeEncodedOrDecoded
//
// With chunks of more than one input, what fails with a bad input differs from the README's
// rule: Port4DifferenceTests (five cases). Here chunks are of one input, where the rule holds.
//
// Differences from Python, checked as documented: concurrent.futures breaks the whole
// executor (BrokenProcessPool) when a worker dies or a task cannot be unpickled; here only
// the input fails (`WorkerDied`, `PoolError(.encoding)`) and the pool goes on (README, "When
// things fail"). PicklingError / UnpicklingError are `PoolError(.encoding)`, or the queue's,
// connection's or proxy's own error carrying the `Codable` error.

import Dispatch
import Foundation
import Multiprocessing
import XCTest

#if canImport(Glibc)
import Glibc
#endif

/// A function value that carries a `Port4Item` (so that its decoding in the worker can fail,
/// exit or crash): adds the item's value.
struct Port4CarryingItem: ParallelFunction {
    var item: Port4Item
    func callAsFunction(_ x: Int) -> Int { x + item.value }
}

/// Sleeps, then SIGKILLs its worker (CPython's `_crash(delay=…)`).
struct Port4DieAfter: ParallelFunction {
    var seconds: Double
    func callAsFunction(_ x: Int) -> Int {
        usleep(UInt32(seconds * 1e6))
        kill(getpid(), SIGKILL)
        return x
    }
}

/// SIGKILLs its worker, whatever its (large) input (CPython's `_crash_with_data`).
struct Port4DieWithData: ParallelFunction {
    func callAsFunction(_ data: String) -> Int {
        kill(getpid(), SIGKILL)
        return data.utf8.count
    }
}

/// Puts 1, an item that cannot be decoded (2), and 3, into the queue.
struct Port4PutABadItem: ParallelFunction {
    var queue: Queue<Port4Item>
    var simple: SimpleQueue<Port4Item>
    func callAsFunction(_: Void) throws {
        for item in [Port4Item(1), Port4Item(2, .throwAtDecode), Port4Item(3)] {
            try queue.put(item)
            try simple.put(item)
        }
    }
}

final class PoolCodingPortTests: PortTestCase {
    /// test_error_at_task_pickle: an input that cannot be encoded fails its call with
    /// `PoolError(.encoding)`: applyAsync (its error callback once, its callback never),
    /// imap (that input alone, with chunks of one; over a lazy sequence too), mapAsync (its
    /// error callback once); the pool goes on.
    func testAnInputThatCannotBeEncodedFailsItsCall() throws {
        try Pool.with(processes: 2, startMethod: .fork) { pool in
            let box = NSLockish()
            nonisolated(unsafe) var calls: [String] = []
            let applied = try pool.applyAsync(
                Port4ValueOf(), Port4Item(1, .throwAtEncode),
                callback: { _ in box.withLock { calls.append("apply ok") } },
                errorCallback: { _ in box.withLock { calls.append("apply error") } })
            XCTAssertThrowsError(try applied.get(timeout: 10)) { XCTAssertEqual(($0 as? PoolError)?.code, .encoding, "\($0)") }
            let mapped = try pool.mapAsync(
                Port4ValueOf(), port4Items(9, bad: 4, .throwAtEncode), chunkSize: 2,
                callback: { _ in box.withLock { calls.append("map ok") } },
                errorCallback: { _ in box.withLock { calls.append("map error") } })
            XCTAssertThrowsError(try mapped.get(timeout: 10)) { XCTAssertEqual(($0 as? PoolError)?.code, .encoding, "\($0)") }
            let items = port4Items(9, bad: 4, .throwAtEncode)
            port4CheckOnlyOneFailed(
                Array(try pool.imap(Port4ValueOf(), items)), count: 9, bad: 4, expected: { $0 }, "imap",
                check: { ($0 as? PoolError)?.code == .encoding })
            let unordered = Array(try pool.imapUnordered(Port4ValueOf(), items.lazy.map { $0 }))
            XCTAssertEqual(unordered.count, 9)
            XCTAssertEqual(Set(unordered.compactMap { try? $0.get() }), Set([0, 1, 2, 3, 5, 6, 7, 8]))
            usleep(100_000) // a second callback would come now
            XCTAssertEqual(box.withLock { calls.sorted() }, ["apply error", "map error"])
            XCTAssertEqual(try pool.map(Sqr(), Array(0..<4)), [0, 1, 4, 9], "the pool goes on")
        }
    }

    /// test_shutdown_deadlock_pickle: a call whose input cannot be encoded, then close() at
    /// once: join returns, and the call failed with the encoding error.
    func testAnUnencodableInputThenCloseAndJoin() throws {
        try forEachMethod([.fork, .spawn]) { method in
            let pool = try Pool(processes: 2, startMethod: method)
            XCTAssertEqual(try pool.apply(Port4ValueOf(), Port4Item(42)), 42)
            let result = try pool.applyAsync(Port4ValueOf(), Port4Item(1, .throwAtEncode))
            pool.close()
            let joiner = TestThread { try pool.join() }
            XCTAssertTrue(try joiner.wait(10), "\(method): join after close")
            XCTAssertThrowsError(try result.get(timeout: 1)) {
                XCTAssertEqual(($0 as? PoolError)?.code, .encoding, "\(method): \($0)")
            }
        }
    }

    /// test_error_at_task_unpickle, with the function value: a function that its worker
    /// cannot decode fails every call made with it (`PoolError(.encoding)`, for each input of
    /// an imap), four times in a row, and never breaks the pool (no `.startFailed`).
    func testAFunctionThatCannotBeDecodedFailsOnlyItsCalls() throws {
        try forEachMethod { method in
            try Pool.with(processes: 2, startMethod: method) { pool in
                for round in 0..<4 {
                    XCTAssertThrowsError(try pool.map(Port4CarryingItem(item: Port4Item(round, .throwAtDecode)), Array(0..<4))) {
                        XCTAssertEqual(($0 as? PoolError)?.code, .encoding, "\(method) round \(round): \($0)")
                    }
                    XCTAssertEqual(try pool.apply(Sqr(), 5), 25, "\(method) round \(round)")
                }
                let results = Array(try pool.imap(Port4CarryingItem(item: Port4Item(9, .throwAtDecode)), Array(0..<4)))
                XCTAssertEqual(results.count, 4)
                for result in results {
                    XCTAssertThrowsError(try result.get()) { XCTAssertEqual(($0 as? PoolError)?.code, .encoding, "\($0)") }
                }
                XCTAssertEqual(try pool.map(Port4CarryingItem(item: Port4Item(10)), Array(0..<4)), [10, 11, 12, 13])
            }
        }
    }

    /// test_exit_at_task_unpickle / test_crash_at_task_unpickle, with the function value: a
    /// function whose decoding ends its worker (`_exit`, SIGKILL) fails each call made with it
    /// with `WorkerDied`; the pool replaces the workers and goes on (Python: BrokenProcessPool).
    func testAFunctionWhoseDecodingEndsTheWorkerFailsOnlyItsCalls() throws {
        try forEachMethod { method in
            try Pool.with(processes: 2, startMethod: method) { pool in
                for (round, coding) in [Port4Coding.exitAtDecode, .killAtDecode, .exitAtDecode, .killAtDecode].enumerated() {
                    XCTAssertThrowsError(try pool.map(Port4CarryingItem(item: Port4Item(round, coding)), Array(0..<4))) {
                        XCTAssertTrue($0 is WorkerDied, "\(method) round \(round): \($0)")
                    }
                    XCTAssertEqual(try pool.apply(Sqr(), 5), 25, "\(method) round \(round)")
                }
            }
        }
    }

    /// test_exit_at_task_unpickle, test_crash_at_task_unpickle,
    /// test_exit_during_result_pickle_on_worker, test_crash_during_result_pickle_on_worker,
    /// with chunks of one on a pool of one worker: each input whose decoding, or whose
    /// result's encoding, ends the worker fails alone with `WorkerDied` naming it — four in a
    /// row cost four workers, and never break the pool.
    func testInputsAndResultsThatEndTheWorkerWithChunksOfOne() throws {
        try forEachMethod { method in
            try Pool.with(processes: 1, startMethod: method) { pool in
                let inputs = [Port4Item(0, .killAtDecode), Port4Item(1, .exitAtDecode), Port4Item(2), Port4Item(3, .killAtDecode)]
                let results = Array(try pool.imap(Port4ValueOf(), inputs))
                XCTAssertEqual(results.count, 4)
                for (i, result) in results.enumerated() {
                    if i == 2 {
                        XCTAssertEqual(try? result.get(), 2, "\(method)")
                    } else {
                        XCTAssertThrowsError(try result.get()) {
                            XCTAssertEqual(($0 as? WorkerDied)?.inputIndex, i, "\(method) input \(i): \($0)")
                        }
                    }
                }
                for coding in [Port4Coding.exitAtEncode, .killAtEncode] {
                    port4CheckOnlyOneFailed(
                        Array(try pool.imap(Port4MakeItem(bad: 2, coding: coding), Array(0..<5))).map { $0.map(\.value) },
                        count: 5, bad: 2, expected: { $0 }, "\(method) \(coding)",
                        check: { ($0 as? WorkerDied)?.inputIndex == 2 })
                }
                XCTAssertEqual(try pool.map(Sqr(), Array(0..<4)), [0, 1, 4, 9], "\(method): the pool goes on")
            }
        }
    }

    /// test_shutdown_deadlock: a task whose worker dies after `close()` — join returns, and
    /// the call failed with `WorkerDied` (Python: BrokenProcessPool).
    func testAWorkerThatDiesAfterCloseFailsItsCallAndJoinReturns() throws {
        try forEachMethod { method in
            let pool = try Pool(processes: 2, startMethod: method)
            let result = try pool.applyAsync(Port4DieAfter(seconds: 0.1), 1)
            pool.close()
            let joiner = TestThread { try pool.join() }
            XCTAssertTrue(try joiner.wait(10), "\(method): join after close")
            XCTAssertThrowsError(try result.get(timeout: 1)) { XCTAssertTrue($0 is WorkerDied, "\(method): \($0)") }
        }
    }

    /// test_crash_big_data: workers that die while their large inputs (4 MiB each, more than
    /// a pipe holds) are still arriving fail the map with `WorkerDied` instead of a hang; the
    /// pool goes on.
    func testAWorkerThatDiesWithLargeInputsFailsTheMap() throws {
        try forEachMethod([.fork, .spawn]) { method in
            try Pool.with(processes: 2, startMethod: method) { pool in
                let data = String(repeating: "a", count: 4 << 20)
                let mapper = TestThread {
                    XCTAssertThrowsError(try pool.map(Port4DieWithData(), Array(repeating: data, count: 10))) {
                        XCTAssertTrue($0 is WorkerDied, "\(method): \($0)")
                    }
                }
                XCTAssertTrue(try mapper.wait(30), "\(method): the map did not end")
                XCTAssertEqual(try pool.map(Sqr(), Array(0..<4)), [0, 1, 4, 9], "\(method): the pool goes on")
            }
        }
    }

    /// _TestQueue.test_get with an item that cannot be unpickled: the get that takes it
    /// throws (`QueueError`, naming the decoding error), and only that item is lost — the
    /// next get has the next item (Queue and SimpleQueue, items put by a child).
    func testAQueueItemThatCannotBeDecodedCostsOnlyItself() throws {
        try forEachMethod { method in
            let queue = try Queue<Port4Item>(), simple = try SimpleQueue<Port4Item>()
            let p = try started(Port4PutABadItem(queue: queue, simple: simple), method)
            try joinOrKill(p)
            XCTAssertEqual(p.exitCode, 0, "\(method)")
            XCTAssertEqual(try queue.get(timeout: 10).value, 1, "\(method)")
            XCTAssertThrowsError(try queue.get(timeout: 10)) { XCTAssertTrue("\($0)".contains("refused to decode"), "\(method): \($0)") }
            XCTAssertEqual(try queue.get(timeout: 10).value, 3, "\(method)")
            XCTAssertTrue(queue.isEmpty, "\(method)")
            XCTAssertEqual(try simple.get(timeout: 10).value, 1, "\(method)")
            XCTAssertThrowsError(try simple.get(timeout: 10)) { XCTAssertTrue("\($0)".contains("refused to decode"), "\(method): \($0)") }
            XCTAssertEqual(try simple.get(timeout: 10).value, 3, "\(method)")
        }
    }

    /// Manager containers and values that cannot be pickled (client side) or unpickled:
    /// a list `extend`, a dict `update` or a value `set` with an element that cannot be
    /// encoded throws and changes nothing (Python pickles the whole argument before sending
    /// it); an element that cannot be decoded fails only the reads that return it (a queue
    /// `get` takes it out; the next get has the next item).
    func testManagerValuesThatCannotBeEncodedOrDecoded() throws {
        let manager = try Manager()
        defer { manager.shutdown() }
        let list = try manager.list(of: Port4Item.self)
        try list.append(Port4Item(1))
        XCTAssertThrowsError(try list.extend([Port4Item(2), Port4Item(3, .throwAtEncode), Port4Item(4)]))
        XCTAssertEqual(try list.items().map(\.value), [1], "extend with an unencodable element changed the list")
        let dict = try manager.dict(String.self, Port4Item.self)
        XCTAssertThrowsError(try dict.update(["a": Port4Item(1), "b": Port4Item(2, .throwAtEncode)]))
        XCTAssertEqual(try dict.count(), 0, "update with an unencodable value changed the dict")
        let value = try manager.value(Port4Item(1))
        XCTAssertThrowsError(try value.set(Port4Item(2, .throwAtEncode)))
        XCTAssertEqual(try value.get().value, 1)

        try list.append(Port4Item(2, .throwAtDecode))
        try list.append(Port4Item(3))
        XCTAssertEqual(try list.count(), 3)
        XCTAssertEqual(try list.get(0).value, 1)
        XCTAssertThrowsError(try list.get(1)) { XCTAssertTrue("\($0)".contains("refused to decode"), "\($0)") }
        XCTAssertEqual(try list.get(2).value, 3)
        let queue = try manager.queue(of: Port4Item.self)
        try queue.put(Port4Item(2, .throwAtDecode))
        try queue.put(Port4Item(3))
        XCTAssertThrowsError(try queue.get(timeout: 5)) { XCTAssertTrue("\($0)".contains("refused to decode"), "\($0)") }
        XCTAssertEqual(try queue.get(timeout: 5).value, 3)
        XCTAssertEqual(try queue.count(), 0)
    }
}
