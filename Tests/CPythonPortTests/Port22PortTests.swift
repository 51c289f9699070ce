// Round 22 of ports of CPython's Lib/test/_test_multiprocessing.py: faithful sizes of cases
// the earlier rounds scaled down, timed waits under signals (PEP 475), the caller's signal
// mask, and starts from several threads. Children on every start method.
//
// CPython test                                           → Swift test (Port22PortTests)
// _TestProcess.test_many_processes (N = 100 for fork and
//   forkserver, 5 for spawn, as CPython)                 → testManyProcessesAtCPythonsCount
// _TestBarrier.test_thousand (1000 passes, as CPython)    → testThousandPasses
// _TestPollEintr.test_poll_eintr / TestIgnoreEINTR, for
//   timed waits (PEP 475: a signal neither ends a timed
//   wait early nor stretches it)                          → testTimedWaitsInAChildTakeTheirTimeoutUnderSignals
// TestResourceTracker.test_resource_tracker_blocked_signals
//   (gh-127586: starting helpers leaves the caller's
//   signal mask alone)                                    → testStartingThingsLeavesTheCallersSignalMaskAlone
// _TestProcess.test_many_processes ("overwhelm the
//   forkserver loop"), from four threads at once          → testStartsFromSeveralThreadsAtOnce

import Dispatch
import Foundation
import Multiprocessing
import XCTest

#if canImport(Glibc)
import Glibc
#endif

/// Counts SIGUSR1 deliveries in a child.
nonisolated(unsafe) var port22Signals: Int32 = 0

/// Installs a SIGUSR1 handler without SA_RESTART (blocking calls see EINTR).
func port22InstallInterruptingHandler() {
    var action = sigaction()
    action.__sigaction_handler.sa_handler = { _ in port22Signals &+= 1 }
    action.sa_flags = 0
    sigemptyset(&action.sa_mask)
    sigaction(SIGUSR1, &action, nil)
}

/// Sends SIGUSR1 to one thread every `interval` seconds until told to stop.
final class Port22Pester: @unchecked Sendable {
    private let target: pthread_t
    private let stopFlag = NSLockish()
    private var stopped = false
    private let done = DispatchSemaphore(value: 0)
    init(thread: pthread_t, interval: Double) {
        target = thread
        Thread.detachNewThread { [self] in
            while !stopFlag.withLock({ stopped }) {
                usleep(UInt32(interval * 1e6))
                pthread_kill(target, SIGUSR1)
            }
            done.signal()
        }
    }
    func stop() {
        stopFlag.withLock { stopped = true }
        done.wait()
    }
}

/// Every timed wait of the library, each meant to time out after `seconds`, while another
/// thread signals this one every 10 ms; reports "name elapsed outcome" for each.
struct Port22TimedWaits: ParallelFunction {
    var report: Queue<[String]>
    var emptyQueue: Queue<Int>
    var fullQueue: Queue<Int>
    var joinable: JoinableQueue<Int>
    var heldLock: Lock
    var heldRLock: RLock
    var semaphore: Multiprocessing.Semaphore
    var event: Event
    var condition: Condition
    var barrier: Barrier
    var connection: Connection
    var managerQueue: QueueProxy<Int>
    var managerLock: LockProxy
    var managerEvent: EventProxy
    var seconds: Double
    var method: StartMethod

    func callAsFunction(_: Void) throws {
        port22InstallInterruptingHandler()
        let pester = Port22Pester(thread: pthread_self(), interval: 0.01)
        var lines: [String] = []
        func measure(_ name: String, _ body: () throws -> String) {
            let start = monotonicNow()
            let outcome: String
            do { outcome = try body() } catch { outcome = "threw \(type(of: error)): \(error)" }
            lines.append("\(name) \(monotonicNow() - start) \(outcome)")
        }
        measure("queue.get") {
            do { return "got \(try emptyQueue.get(timeout: seconds))" } catch is Empty { return "timeout" }
        }
        measure("queue.put") {
            do { try fullQueue.put(2, timeout: seconds); return "put" } catch is Full { return "timeout" }
        }
        measure("joinable.join") { try joinable.join(timeout: seconds) ? "joined" : "timeout" }
        measure("lock.acquire") { try heldLock.acquire(timeout: seconds) ? "acquired" : "timeout" }
        measure("rlock.acquire") { try heldRLock.acquire(timeout: seconds) ? "acquired" : "timeout" }
        measure("semaphore.acquire") { semaphore.acquire(timeout: seconds) ? "acquired" : "timeout" }
        measure("event.wait") { event.wait(timeout: seconds) ? "set" : "timeout" }
        measure("condition.wait") {
            try condition.withLock { try condition.wait(timeout: seconds) } ? "woken" : "timeout"
        }
        measure("condition.waitFor") {
            try condition.withLock { try condition.wait(for: { false }, timeout: seconds) } ? "true" : "timeout"
        }
        measure("connection.poll") { try connection.poll(timeout: seconds) ? "ready" : "timeout" }
        measure("wait(on:)") { Multiprocessing.wait(on: [connection], timeout: seconds).isEmpty ? "timeout" : "ready" }
        measure("process.join") {
            let sleeper = Multiprocessing.Process(target: SleepFor(seconds: 5), startMethod: method)
            try sleeper.start()
            defer { try? sleeper.kill(); _ = try? sleeper.join(timeout: 10) }
            return try sleeper.join(timeout: seconds) ? "joined" : "timeout"
        }
        measure("managerQueue.get") {
            do { return "got \(try managerQueue.get(timeout: seconds))" } catch is Empty { return "timeout" }
        }
        measure("managerLock.acquire") { try managerLock.acquire(timeout: seconds) ? "acquired" : "timeout" }
        measure("managerEvent.wait") { try managerEvent.wait(timeout: seconds) ? "set" : "timeout" }
        measure("barrier.wait") {
            do { return "passed \(try barrier.wait(timeout: seconds))" } catch is BrokenBarrierError { return "timeout" }
        }
        pester.stop()
        lines.append("signals \(port22Signals)")
        try report.put(lines)
    }
}

/// Passes the barrier `passes` times, sending each pass number under the lock.
struct Port22ThousandParty: ParallelFunction {
    var barrier: Barrier
    var passes: Int
    var connection: Connection
    var lock: Lock
    func callAsFunction(_: Void) throws {
        for i in 0..<passes {
            _ = try barrier.wait(timeout: 60)
            try lock.withLock { try connection.send(i) }
        }
    }
}

/// Reports its pid, then exits with `status`.
struct Port22ReportPid: ParallelFunction {
    var queue: Queue<[Int32]>
    var tag: Int32
    func callAsFunction(_: Void) throws {
        try queue.put([tag, getpid()])
    }
}

final class Port22Box: @unchecked Sendable {
    let lock = NSLockish()
    var processes: [Int32: Multiprocessing.Process] = [:]
}

final class Port22PortTests: PortTestCase {
    /// test_many_processes at CPython's size: 100 children each for fork and forkserver (5
    /// for spawn) that sleep 10 ms, all exit 0; then 100 that sleep, terminated 1 ms after
    /// their start, all -SIGTERM.
    func testManyProcessesAtCPythonsCount() throws {
        try forEachMethod { method in
            let n = method == .spawn ? 5 : 100
            let quick = try (0..<n).map { _ in try started(SleepFor(seconds: 0.01), method) }
            for p in quick { try joinOrKill(p, 60) }
            let quickCodes = quick.map(\.exitCode)
            XCTAssertEqual(quickCodes.filter { $0 != 0 }.count, 0, "\(method): \(quickCodes)")
            let sleepers = try (0..<n).map { _ in try started(SleepFor(seconds: 100), method) }
            usleep(1_000)
            for p in sleepers { try p.terminate() }
            for p in sleepers { try joinOrKill(p, 60) }
            let codes = sleepers.map(\.exitCode)
            XCTAssertEqual(codes.filter { $0 != -SIGTERM }.count, 0, "\(method): \(codes)")
        }
    }

    /// test_thousand: five children pass one barrier 1000 times, each sending the pass
    /// number through one pipe end under a lock; every pass arrives five times, in order.
    func testThousandPasses() throws {
        try forEachMethod { method in
            let (reader, writer) = try Pipe(duplex: false)
            let passes = 1000
            let parties = 5
            let barrier = try Barrier(parties: parties, timeout: 30)
            let lock = try Lock()
            let children = try (0..<parties).map { _ in
                try started(Port22ThousandParty(barrier: barrier, passes: passes, connection: writer, lock: lock), daemon: true, method)
            }
            writer.close()
            defer { try? barrier.abort() }
            var wrong = 0
            let start = monotonicNow()
            for i in 0..<passes {
                for _ in 0..<parties {
                    guard try reader.poll(timeout: 30) else {
                        return XCTFail("\(method): nothing for pass \(i) within 30 s")
                    }
                    if try reader.recv(Int.self) != i { wrong += 1 }
                }
            }
            print("\(method): 1000 passes in \(monotonicNow() - start) s")
            XCTAssertEqual(wrong, 0, "\(method): passes out of order")
            for p in children { try joinOrKill(p) }
            XCTAssertEqual(children.map(\.exitCode), Array(repeating: 0, count: parties), "\(method)")
        }
    }

    /// PEP 475 for every timed wait (CPython's _TestPollEintr and TestIgnoreEINTR cover the
    /// untimed ones; Python's timed waits retry with the time left): in a child whose waiting
    /// thread is signalled every 10 ms (a handler without SA_RESTART), each wait that cannot
    /// succeed returns its timeout outcome after its timeout, not before and not much later.
    func testTimedWaitsInAChildTakeTheirTimeoutUnderSignals() throws {
        let manager = try Manager()
        defer { manager.shutdown() }
        try forEachMethod { method in
            let seconds = 0.5
            let fullQueue = try Queue<Int>(maxSize: 1)
            try fullQueue.put(1)
            let joinable = try JoinableQueue<Int>()
            try joinable.put(1)
            let heldLock = try Lock()
            let heldRLock = try RLock()
            let managerLock = try manager.lock()
            let (mine, theirs) = try Pipe()
            let target = Port22TimedWaits(
                report: try Queue<[String]>(), emptyQueue: try Queue<Int>(), fullQueue: fullQueue,
                joinable: joinable, heldLock: heldLock, heldRLock: heldRLock,
                semaphore: try Multiprocessing.Semaphore(value: 0), event: try Event(), condition: try Condition(),
                barrier: try Barrier(parties: 3), connection: theirs,
                managerQueue: try manager.queue(of: Int.self), managerLock: managerLock,
                managerEvent: try manager.event(), seconds: seconds, method: method)
            try heldLock.acquire()
            try heldRLock.acquire()
            _ = try managerLock.acquire()
            defer {
                try? heldLock.release()
                try? heldRLock.release()
                try? managerLock.release()
            }
            let p = try started(target, method)
            defer { if p.isAlive { try? p.kill() }; _ = try? p.join(timeout: 20) }
            let lines = try target.report.get(timeout: 90)
            try joinOrKill(p)
            _ = mine
            XCTAssertEqual(p.exitCode, 0, "\(method)")
            for line in lines {
                let parts = line.split(separator: " ", maxSplits: 2).map(String.init)
                if parts[0] == "signals" {
                    XCTAssertGreaterThan(Int(parts[1]) ?? 0, 10, "\(method): too few signals")
                    continue
                }
                let elapsed = Double(parts[1]) ?? -1
                XCTAssertEqual(parts.count > 2 ? parts[2] : "", "timeout", "\(method): \(line)")
                XCTAssertGreaterThanOrEqual(elapsed, seconds - 0.01, "\(method): returned early: \(line)")
                XCTAssertLessThan(elapsed, seconds + 2, "\(method): returned late: \(line)")
            }
        }
    }

    /// gh-127586 (test_resource_tracker_blocked_signals): the thread that starts a child, a
    /// pool, a manager or a shared memory block keeps the signal mask it had.
    func testStartingThingsLeavesTheCallersSignalMaskAlone() throws {
        let thread = TestThread {
            func currentMask() -> [Int32] {
                var set = sigset_t()
                sigemptyset(&set)
                var old = sigset_t()
                pthread_sigmask(SIG_BLOCK, &set, &old)
                return (1..<32).filter { sigismember(&old, $0) == 1 }
            }
            var failures: [String] = []
            for sig in [SIGTERM, SIGINT, SIGUSR1] {
                var only = sigset_t()
                sigemptyset(&only)
                sigaddset(&only, sig)
                pthread_sigmask(SIG_SETMASK, &only, nil)
                func check(_ what: String) {
                    let mask = currentMask()
                    if mask != [sig] { failures.append("\(what) with \(sig) blocked: mask now \(mask)") }
                }
                for method in PortTestCase.methods {
                    let p = Multiprocessing.Process(target: SleepFor(seconds: 0.01), startMethod: method)
                    try p.start()
                    check("Process.start \(method)")
                    _ = try p.join(timeout: 30)
                    check("Process.join \(method)")
                    let pool = try Pool(processes: 1, startMethod: method)
                    check("Pool() \(method)")
                    _ = try pool.map(Sqr(), [1, 2])
                    pool.close()
                    try pool.join()
                    check("Pool.join \(method)")
                }
                let manager = try Manager()
                check("Manager()")
                manager.shutdown()
                check("Manager.shutdown")
                let block = try SharedMemory(create: true, size: 16)
                check("SharedMemory(create:)")
                try block.unlink()
                block.close()
            }
            var none = sigset_t()
            sigemptyset(&none)
            pthread_sigmask(SIG_SETMASK, &none, nil)
            print("signal mask checks done, failures: \(failures)")
            if !failures.isEmpty { throw ChildCheckFailed(failures.joined(separator: "; ")) }
        }
        XCTAssertTrue(try thread.wait(120), "did not finish")
    }

    /// test_many_processes from four threads at once: each thread starts ten children that
    /// report their pid; every child reports once, with the pid its Process says, and ends 0.
    func testStartsFromSeveralThreadsAtOnce() throws {
        try forEachMethod { method in
            let queue = try Queue<[Int32]>()
            let perThread = method == .spawn ? 3 : 10
            let box = Port22Box()
            let threads = (0..<4).map { t in
                TestThread {
                    for i in 0..<perThread {
                        let tag = Int32(t * 100 + i)
                        let p = Multiprocessing.Process(target: Port22ReportPid(queue: queue, tag: tag), startMethod: method)
                        try p.start()
                        box.lock.withLock { box.processes[tag] = p }
                    }
                }
            }
            for t in threads { XCTAssertTrue(try t.wait(120), "\(method): a starting thread hung") }
            var reports: [Int32: Int32] = [:]
            for _ in 0..<(4 * perThread) {
                let r = try queue.get(timeout: 60)
                XCTAssertNil(reports[r[0]], "\(method): tag \(r[0]) reported twice")
                reports[r[0]] = r[1]
            }
            let processes = box.lock.withLock { box.processes }
            for (tag, p) in processes {
                try joinOrKill(p, 30)
                XCTAssertEqual(p.exitCode, 0, "\(method): \(p.name)")
                XCTAssertEqual(p.pid, reports[tag], "\(method): \(p.name)'s pid")
            }
            XCTAssertEqual(processes.count, 4 * perThread)
        }
    }
}
