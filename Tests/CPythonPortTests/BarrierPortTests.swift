// Ports of CPython's barrier tests (Lib/test/_test_multiprocessing.py: _TestBarrier, which
// adapts Lib/test/lock_tests.py): N = 5 parties, N − 1 of them child processes (CPython's
// `Bunch`) and the test itself, on every start method. CPython's `DummyList` counters are
// `SharedValue<Int>`s; a child's failed check ends it with status 1.
//
// CPython test                        → Swift test (BarrierPortTests)
// _TestBarrier.test_barrier           → testBarrierPassesInLockstep
// _TestBarrier.test_barrier_10        → testBarrierPassesInLockstepTenTimes
// _TestBarrier.test_wait_return       → testExactlyOnePartyGetsIndexZero
// _TestBarrier.test_action            → testActionRunsOncePerPass
// _TestBarrier.test_abort             → testAbortBreaksTheBarrier
// _TestBarrier.test_reset             → testResetFreesTheWaiters
// _TestBarrier.test_abort_and_reset   → testAbortThenReset
// _TestBarrier.test_timeout           → testTimeoutBreaksTheBarrierForAll (fork only: 1 s of waiting each)
// _TestBarrier.test_default_timeout   → testDefaultTimeoutBreaksTheBarrierForAll (spawn only, likewise)
// _TestBarrier.test_thousand          → testManyPassesInOrder (200 passes instead of 1000)
// (parties, n_waiting, broken)        → checked throughout
//
// Already covered in Tests/MultiprocessingTests: test_single_thread.
//
// CPython runs _TestBarrier for its 'manager' type too (`Manager().Barrier`): every case
// above runs a second time as `testManager…` with a `Manager`'s `BarrierProxy` (`PortBarrier`).

import Multiprocessing
import XCTest

#if canImport(Glibc)
import Glibc
#endif

let barrierParties = 5

/// What a party does; every case of CPython's _TestBarrier.
enum BarrierCase: String, Codable {
    case multipass, waitReturn, action, abort, reset, abortAndReset, timeout, defaultTimeout, thousand
}

/// The barrier under test: shared memory's, or a manager's (CPython's 'manager' type).
enum PortBarrier: Codable {
    case local(Barrier)
    case manager(BarrierProxy)

    var parties: Int {
        switch self {
        case .local(let barrier): barrier.parties
        case .manager(let barrier): barrier.parties
        }
    }

    func wait(timeout: Double? = nil) throws -> Int {
        switch self {
        case .local(let barrier): try barrier.wait(timeout: timeout)
        case .manager(let barrier): try barrier.wait(timeout: timeout)
        }
    }

    func abort() throws {
        switch self {
        case .local(let barrier): try barrier.abort()
        case .manager(let barrier): try barrier.abort()
        }
    }

    func reset() throws {
        switch self {
        case .local(let barrier): try barrier.reset()
        case .manager(let barrier): try barrier.reset()
        }
    }

    var nWaiting: Int {
        get throws {
            switch self {
            case .local(let barrier): barrier.nWaiting
            case .manager(let barrier): try barrier.nWaiting()
            }
        }
    }

    var isBroken: Bool {
        get throws {
            switch self {
            case .local(let barrier): barrier.isBroken
            case .manager(let barrier): try barrier.isBroken()
            }
        }
    }

    /// A barrier of `manager` when there is one, else a shared-memory one.
    static func make(_ manager: Manager?, parties: Int, action: (any BarrierAction)? = nil, timeout: Double?) throws -> PortBarrier {
        if let manager { return .manager(try manager.barrier(parties: parties, action: action, timeout: timeout)) }
        return .local(try Barrier(parties: parties, action: action, timeout: timeout))
    }
}

/// Shared state of one run.
struct BarrierRun: Codable {
    var barrier: PortBarrier
    var second: PortBarrier
    var results: [SharedValue<Int>]
    var queue: Queue<Int>
    var passes: Int
    var connection: Connection?
    var lock: Lock

    func add(_ i: Int) { results[i].withLock { $0 += 1 } }
    func count(_ i: Int) -> Int { results[i].value }
}

/// One party: runs `kind` (a child process, or the test itself).
struct BarrierParty: ParallelFunction {
    var kind: BarrierCase
    var run: BarrierRun
    func callAsFunction(_: Void) throws {
        let (barrier, n) = (run.barrier, barrierParties)
        switch kind {
        case .multipass:
            try require(barrier.parties == n, "parties \(barrier.parties)")
            for i in 0..<run.passes {
                run.add(0)
                try require(run.count(1) == i * n, "lockstep before pass \(i): \(run.count(1))")
                _ = try barrier.wait()
                run.add(1)
                try require(run.count(0) == (i + 1) * n, "lockstep after pass \(i): \(run.count(0))")
                _ = try barrier.wait()
            }
            let waiting = try barrier.nWaiting
            try require(waiting == 0, "n_waiting \(waiting)")
            try require(!(try barrier.isBroken), "broken")
        case .waitReturn:
            try run.queue.put(try barrier.wait())
        case .action:
            _ = try barrier.wait()
            try require(run.count(0) == 1, "the action ran \(run.count(0)) times")
        case .abort:
            do {
                let i = try barrier.wait()
                if i == n / 2 {
                    try barrier.abort()
                    return
                }
                _ = try barrier.wait()
                run.add(0)
            } catch is BrokenBarrierError {
                run.add(1)
            }
        case .reset:
            let i = try barrier.wait()
            if i == n / 2 {
                let end = monotonicNow() + 30
                while try barrier.nWaiting < n - 1 && monotonicNow() < end { usleep(1_000) }
                try barrier.reset()
            } else {
                do {
                    _ = try barrier.wait()
                    run.add(0)
                } catch is BrokenBarrierError {
                    run.add(1)
                }
            }
            _ = try barrier.wait()
            run.add(2)
        case .abortAndReset:
            do {
                let i = try barrier.wait()
                if i == n / 2 {
                    try barrier.abort()
                } else {
                    _ = try barrier.wait()
                    run.add(0)
                }
            } catch is BrokenBarrierError {
                run.add(1)
            }
            if try run.second.wait() == n / 2 { try barrier.reset() }
            _ = try run.second.wait()
            _ = try barrier.wait()
            run.add(2)
        case .timeout:
            let i = try barrier.wait()
            if i == n / 2 { usleep(1_000_000) }
            do {
                _ = try barrier.wait(timeout: 0.3)
            } catch is BrokenBarrierError {
                run.add(0)
            }
        case .defaultTimeout:
            let i = try barrier.wait(timeout: 30)
            if i == n / 2 { usleep(1_000_000) }
            do {
                _ = try barrier.wait()
            } catch is BrokenBarrierError {
                run.add(0)
            }
        case .thousand:
            for i in 0..<run.passes {
                _ = try barrier.wait()
                try run.lock.withLock { try run.connection!.send(i) }
            }
        }
    }
}

/// A barrier action: counts its runs.
struct AppendTrue: BarrierAction {
    var counter: SharedValue<Int>
    func callAsFunction() throws { counter.withLock { $0 += 1 } }
}

final class BarrierPortTests: PortTestCase {
    /// The manager whose barriers a `testManager…` case uses; nil for shared-memory barriers.
    private var manager: Manager?

    override func tearDown() {
        manager?.shutdown()
        manager = nil
        super.tearDown()
    }

    /// Runs `kind` on N − 1 child processes and this thread (CPython's `run_threads`), then
    /// joins them; returns the run's state.
    @discardableResult
    private func runParties(
        _ kind: BarrierCase, _ method: StartMethod, passes: Int = 1, action: Bool = false,
        timeout: Double? = 30
    ) throws -> BarrierRun {
        let results = try (0..<3).map { _ in try SharedValue<Int>(0) }
        let barrier = try PortBarrier.make(
            manager, parties: barrierParties, action: action ? AppendTrue(counter: results[0]) : nil,
            timeout: timeout)
        let run = BarrierRun(
            barrier: barrier, second: try PortBarrier.make(manager, parties: barrierParties, timeout: 30), results: results,
            queue: try Queue<Int>(), passes: passes, connection: nil, lock: try Lock())
        let children = try (0..<(barrierParties - 1)).map { _ in
            try started(BarrierParty(kind: kind, run: run), daemon: true, method)
        }
        var finished = false
        defer { if !finished { try? barrier.abort(); try? run.second.abort() } } // frees the children
        try BarrierParty(kind: kind, run: run)(())
        for p in children { try joinOrKill(p) }
        finished = true
        XCTAssertEqual(children.map(\.exitCode), Array(repeating: 0, count: children.count), "\(kind) on \(method)")
        return run
    }

    /// test_barrier.
    func testBarrierPassesInLockstep() throws { try barrierPassesInLockstep(managed: false) }

    func testManagerBarrierPassesInLockstep() throws { try barrierPassesInLockstep(managed: true) }

    private func barrierPassesInLockstep(managed: Bool) throws {
        if managed { manager = try Manager() }
        try forEachMethod { method in
            let run = try runParties(.multipass, method)
            XCTAssertEqual(run.count(0), barrierParties)
            XCTAssertEqual(run.count(1), barrierParties)
        }
    }

    /// test_barrier_10.
    func testBarrierPassesInLockstepTenTimes() throws { try barrierPassesInLockstepTenTimes(managed: false) }

    func testManagerBarrierPassesInLockstepTenTimes() throws { try barrierPassesInLockstepTenTimes(managed: true) }

    private func barrierPassesInLockstepTenTimes(managed: Bool) throws {
        if managed { manager = try Manager() }
        try forEachMethod { method in
            let run = try runParties(.multipass, method, passes: 10)
            XCTAssertEqual(run.count(0), 10 * barrierParties)
        }
    }

    /// test_wait_return: the arrival indices; exactly one is 0.
    func testExactlyOnePartyGetsIndexZero() throws { try exactlyOnePartyGetsIndexZero(managed: false) }

    func testManagerExactlyOnePartyGetsIndexZero() throws { try exactlyOnePartyGetsIndexZero(managed: true) }

    private func exactlyOnePartyGetsIndexZero(managed: Bool) throws {
        if managed { manager = try Manager() }
        try forEachMethod { method in
            let run = try runParties(.waitReturn, method)
            let indices = try (0..<barrierParties).map { _ in try run.queue.get(timeout: 10) }
            XCTAssertEqual(indices.filter { $0 == 0 }.count, 1, "\(method): \(indices)")
            XCTAssertEqual(indices.sorted(), Array(0..<barrierParties))
        }
    }

    /// test_action: the action runs once, before any party leaves.
    func testActionRunsOncePerPass() throws { try actionRunsOncePerPass(managed: false) }

    func testManagerActionRunsOncePerPass() throws { try actionRunsOncePerPass(managed: true) }

    private func actionRunsOncePerPass(managed: Bool) throws {
        if managed { manager = try Manager() }
        try forEachMethod { method in
            let run = try runParties(.action, method, action: true)
            XCTAssertEqual(run.count(0), 1, "\(method)")
        }
    }

    /// test_abort: one party aborts; the others get BrokenBarrierError; the barrier stays broken.
    func testAbortBreaksTheBarrier() throws { try abortBreaksTheBarrier(managed: false) }

    func testManagerAbortBreaksTheBarrier() throws { try abortBreaksTheBarrier(managed: true) }

    private func abortBreaksTheBarrier(managed: Bool) throws {
        if managed { manager = try Manager() }
        try forEachMethod { method in
            let run = try runParties(.abort, method)
            XCTAssertEqual(run.count(0), 0, "\(method)")
            XCTAssertEqual(run.count(1), barrierParties - 1, "\(method)")
            XCTAssertTrue(try run.barrier.isBroken)
            XCTAssertEqual(try run.barrier.nWaiting, 0)
        }
    }

    /// test_reset: a reset while N − 1 wait frees them with BrokenBarrierError, and the barrier
    /// is then usable by all N.
    func testResetFreesTheWaiters() throws { try resetFreesTheWaiters(managed: false) }

    func testManagerResetFreesTheWaiters() throws { try resetFreesTheWaiters(managed: true) }

    private func resetFreesTheWaiters(managed: Bool) throws {
        if managed { manager = try Manager() }
        try forEachMethod { method in
            let run = try runParties(.reset, method)
            XCTAssertEqual(run.count(0), 0, "\(method)")
            XCTAssertEqual(run.count(1), barrierParties - 1, "\(method)")
            XCTAssertEqual(run.count(2), barrierParties, "\(method)")
            XCTAssertFalse(try run.barrier.isBroken)
        }
    }

    /// test_abort_and_reset: a broken barrier, reset, is usable again.
    func testAbortThenReset() throws { try abortThenReset(managed: false) }

    func testManagerAbortThenReset() throws { try abortThenReset(managed: true) }

    private func abortThenReset(managed: Bool) throws {
        if managed { manager = try Manager() }
        try forEachMethod { method in
            let run = try runParties(.abortAndReset, method)
            XCTAssertEqual(run.count(0), 0, "\(method)")
            XCTAssertEqual(run.count(1), barrierParties - 1, "\(method)")
            XCTAssertEqual(run.count(2), barrierParties, "\(method)")
        }
    }

    /// test_timeout: one party is late; wait(timeout:) breaks the barrier for every party,
    /// the late one included. (Timing does not depend on the start method: fork only, to
    /// keep the target fast; the other cases check the barrier across every method.)
    func testTimeoutBreaksTheBarrierForAll() throws { try timeoutBreaksTheBarrierForAll(managed: false) }

    func testManagerTimeoutBreaksTheBarrierForAll() throws { try timeoutBreaksTheBarrierForAll(managed: true) }

    private func timeoutBreaksTheBarrierForAll(managed: Bool) throws {
        if managed { manager = try Manager() }
        try forEachMethod([.fork]) { method in
            let run = try runParties(.timeout, method)
            XCTAssertEqual(run.count(0), barrierParties, "\(method)")
            XCTAssertTrue(try run.barrier.isBroken)
        }
    }

    /// test_default_timeout: the same with the barrier's own timeout.
    func testDefaultTimeoutBreaksTheBarrierForAll() throws { try defaultTimeoutBreaksTheBarrierForAll(managed: false) }

    func testManagerDefaultTimeoutBreaksTheBarrierForAll() throws { try defaultTimeoutBreaksTheBarrierForAll(managed: true) }

    private func defaultTimeoutBreaksTheBarrierForAll(managed: Bool) throws {
        if managed { manager = try Manager() }
        try forEachMethod([.spawn]) { method in
            let run = try runParties(.defaultTimeout, method, timeout: 0.3)
            XCTAssertEqual(run.count(0), barrierParties, "\(method)")
        }
    }

    /// test_thousand: N child processes pass the barrier 200 times, each sending the pass
    /// number through one pipe under a lock; the parent reads every pass N times, in order.
    func testManyPassesInOrder() throws { try manyPassesInOrder(managed: false) }

    func testManagerManyPassesInOrder() throws { try manyPassesInOrder(managed: true) }

    private func manyPassesInOrder(managed: Bool) throws {
        if managed { manager = try Manager() }
        try forEachMethod { method in
            let (reader, writer) = try Pipe(duplex: false)
            let passes = 200
            // Here every party is a child: N children and no party in this process.
            let barrier = try PortBarrier.make(manager, parties: barrierParties, timeout: 30)
            let results = try (0..<3).map { _ in try SharedValue<Int>(0) }
            let run = BarrierRun(
                barrier: barrier, second: barrier, results: results, queue: try Queue<Int>(), passes: passes,
                connection: writer, lock: try Lock())
            let children = try (0..<barrierParties).map { _ in
                try started(BarrierParty(kind: .thousand, run: run), daemon: true, method)
            }
            writer.close()
            defer { try? barrier.abort() }
            var wrong = 0
            for i in 0..<passes {
                for _ in 0..<barrierParties where try reader.recv(Int.self) != i { wrong += 1 }
            }
            XCTAssertEqual(wrong, 0, "\(method): passes out of order")
            for p in children { try joinOrKill(p) }
            XCTAssertEqual(children.map(\.exitCode), Array(repeating: 0, count: barrierParties), "\(method)")
        }
    }
}
