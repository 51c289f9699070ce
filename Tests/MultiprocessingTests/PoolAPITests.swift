import XCTest

@testable import Multiprocessing

#if canImport(Glibc)
import Glibc
#endif

final class PoolAPITests: TimeLimitedTestCase {
    func testStarmapWithParameterPacks() throws {
        try Pool.with(processes: 2) { pool in
            XCTAssertEqual(try pool.starmap(Add(), [(1, 2), (3, 4), (10, -10)]), [3, 7, 0])
            XCTAssertEqual(try pool.starmap(Label(), [("a", 1, 0.5), ("é", 2, 2.0)]), ["a:1:0.5", "é:2:2.0"])
            let pending = try pool.starmapAsync(Add(), (0..<100).map { ($0, $0) }, chunkSize: 7)
            XCTAssertEqual(try pending.get(timeout: 10), (0..<100).map { 2 * $0 })
        }
    }

    func testCodableRecordsVoidOutputsAndDoubles() throws {
        try Pool.with(processes: 2, startMethod: .spawn) { pool in
            let records = [
                Record(name: "zürich 🚀", values: [1, 2.5], tag: .labelled("x")),
                Record(name: "", values: [], tag: nil),
                Record(name: "p", values: Array(repeating: 1.5, count: 10_000), tag: .pair(3, -4)),
            ]
            let expected = records.map { Record(name: $0.name.uppercased(), values: $0.values.map { $0 * 2 }, tag: $0.tag) }
            XCTAssertEqual(try pool.map(Describe(), records), expected)
            XCTAssertEqual(try pool.map(NoResult(), 0..<5).count, 5)
            XCTAssertEqual(try pool.map(Affine(scale: 2, offset: 0.5), [1.0, -3.0]), [2.5, -5.5])
        }
    }

    func testApplyAsyncCallbacksAndAwait() async throws {
        let pool = try Pool(processes: 2)
        defer { pool.terminate() }
        let box = NSLockLike()
        nonisolated(unsafe) var seen: [Int] = []
        nonisolated(unsafe) var errors: [String] = []
        var results: [AsyncResult<Int>] = []
        for i in 0..<3 {
            results.append(try pool.applyAsync(Square(), i, callback: { value in box.withLock { seen.append(value) } }))
        }
        let failing = try pool.applyAsync(
            FailOnMultiple(divisor: 2), 4,
            errorCallback: { error in
                box.withLock { errors.append("\(error)") }
            })
        for result in results { _ = result.wait(timeout: 10) }
        _ = failing.wait(timeout: 10)
        XCTAssertEqual(box.withLock { seen.sorted() }, [0, 1, 4])
        let reported = box.withLock { errors }
        XCTAssertEqual(reported.count, 1)
        XCTAssertTrue(
            reported.first?.hasPrefix("input 0 threw MultiprocessingTests.Boom: boom at 4 (worker process ") ?? false,
            "\(reported)")
        XCTAssertFalse(failing.isSuccessful)
        let awaited = try await pool.applyAsync(Square(), 12).value
        XCTAssertEqual(awaited, 144)
        let mapped = try await pool.mapAsync(Square(), [5, 6]).value
        XCTAssertEqual(mapped, [25, 36])
    }

    func testImapIsLazyOrderedAndHasBackPressure() throws {
        try Pool.with(processes: 2) { pool in
            let source = CountingSequence() // infinite
            let stream = try pool.imap(Square(), source, chunkSize: 2)
            var got: [Int] = []
            for result in stream {
                got.append(try result.get())
                if got.count == 10 { break }
            }
            XCTAssertEqual(got, (0..<10).map { $0 * $0 })
            usleep(100_000)
            XCTAssertLessThan(source.count, 10 + 2 * (8 * 2 + 16) + 4, "imap read too far ahead")
        }
    }

    func testImapUnorderedDeliversEverythingAndAsyncValues() async throws {
        let pool = try Pool(processes: 2)
        defer { pool.terminate() }
        let unordered = try pool.imapUnordered(Square(), CountingSequence(limit: 500), chunkSize: 3)
        let all = unordered.map { try! $0.get() }
        XCTAssertEqual(all.sorted(), (0..<500).map { $0 * $0 }.sorted())
        var collected: [Int] = []
        for try await value in try pool.imap(Square(), CountingSequence(limit: 50)).values {
            collected.append(value)
        }
        XCTAssertEqual(collected, (0..<50).map { $0 * $0 })
    }

    func testInitializerRunsInEveryWorkerAndFailureBreaksThePool() throws {
        for method in [StartMethod.fork, .spawn] {
            try Pool.with(processes: 2, startMethod: method, initializer: SetGlobal(value: 1000)) { pool in
                XCTAssertEqual(try pool.map(ReadGlobal(), 0..<20, chunkSize: 1), (0..<20).map { $0 + 1000 })
            }
        }
        let broken = try Pool(processes: 1, initializer: SetGlobal(value: -1))
        XCTAssertThrowsError(try broken.map(ReadGlobal(), [1])) { error in
            XCTAssertEqual((error as? PoolError)?.code, .startFailed, "\(error)")
        }
        broken.terminate()
    }

    /// A worker dies with the thread that forked it (PR_SET_PDEATHSIG). The main thread forks
    /// a pool's workers itself; a pool made on any other thread has them forked by the
    /// supervisor thread, so they outlive the thread that made the pool.
    func testAPoolMadeOnAThreadThatEndsKeepsItsWorkers() throws {
        let done = ConditionLock()
        nonisolated(unsafe) var made: Result<Pool, any Error>?
        try spawnThread(named: "test-pool-maker") {
            let result = Result { try Pool(processes: 2, startMethod: .fork) }
            done.withLock {
                made = result
                done.broadcast()
            }
        }
        let pool = try done.withLock { () -> Result<Pool, any Error> in
            while made == nil { done.wait(until: monotonicNanoseconds() + 30_000_000_000) }
            return made!
        }.get()
        defer { pool.terminate() }
        let pids = pool.workerPlacement.compactMap(\.pid)
        XCTAssertEqual(pids.count, 2)
        // The maker thread has ended by now or soon will: give a death signal time to land.
        usleep(200_000)
        for pid in pids { XCTAssertEqual(kill(pid, 0), 0, "worker \(pid) outlived the thread that made the pool") }
        XCTAssertEqual(try pool.map(Square(), 0..<40, chunkSize: 1), (0..<40).map { $0 * $0 })
        XCTAssertEqual(Set(pool.workerPlacement.compactMap(\.pid)), Set(pids), "no worker was replaced")
    }

    func testMaxTasksPerChildReplacesWorkers() throws {
        try Pool.with(processes: 1, maxTasksPerChild: 2) { pool in
            let pids = try pool.map(WorkerPID(), 0..<6, chunkSize: 1)
            XCTAssertEqual(Set(pids).count, 3, "\(pids)")
            XCTAssertEqual(pids[0], pids[1])
            XCTAssertNotEqual(pids[1], pids[2])
        }
    }

    func testEmptyInputsAndFourWorkersSleepExample() throws {
        try Pool.with(processes: 4) { pool in
            XCTAssertEqual(try pool.map(Square(), [Int]()), [])
            try everyWorkerRuns(pool) // the bound below is not for four workers' start
            let start = monotonicNanoseconds()
            XCTAssertEqual(try pool.map(Sleep(seconds: 0.2), [1, 2, 3, 4, 5]), [1, 2, 3, 4, 5])
            let elapsed = Double(monotonicNanoseconds() - start) / 1e9
            XCTAssertGreaterThan(elapsed, 0.39)
            XCTAssertLessThan(elapsed, 0.9, "5 tasks of 0.2 s on 4 workers take two rounds")
        }
    }
}
