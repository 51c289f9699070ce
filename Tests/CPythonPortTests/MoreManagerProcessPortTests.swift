// More ports of CPython's manager and process tests (Lib/test/_test_multiprocessing.py:
// TestSyncManagerTypes, _TestContainers, _TestProcess, _TestMyManager), on every start method
// where a child takes part.
//
// CPython test                                         → Swift test (MoreManagerProcessPortTests)
// TestSyncManagerTypes.test_queue (Full / Empty)       → testManagerQueueFullAndEmpty
// _TestContainers.test_list / test_dict (IndexError,
//   missing keys)                                      → testMissingKeysAndIndexesOfProxies
// TestSyncManagerTypes.test_lock (release unlocked)    → testManagerLockAndEventMisuse
// _TestMyManager.test_mymanager (after shutdown)       → testProxiesOfAShutDownManagerThrow
// _TestProcess.test_daemon_argument                    → testDaemonArgument
// _TestProcess.test_cpu_count                          → testCPUCount
// _TestProcess (daemon children at the parent's end)   → testAChildsDaemonChildrenEndWithItAndOthersAreJoined
//
// Differences from Python, checked as documented: queue.Full / queue.Empty are `Full` /
// `Empty`; a proxy's other errors are `ManagerError`. A daemon process may have children
// (Python: AssertionError "daemonic processes are not allowed to have children").

import Dispatch
import Multiprocessing
import XCTest

#if canImport(Glibc)
import Glibc
#endif

/// Reports `currentProcess.daemon` and the default `daemon` of a Process made here.
struct ReportDaemonFlags: ParallelFunction {
    var report: Queue<[Bool]>
    func callAsFunction(_: Void) throws {
        let made = Multiprocessing.Process(target: SleepFor(seconds: 0))
        try report.put([Multiprocessing.currentProcess.daemon, made.daemon])
    }
}

/// Starts a daemon child that sleeps 100 s and a non-daemon child that sleeps 0.4 s,
/// reports their pids, and returns at once.
struct LeaveChildrenBehind: ParallelFunction {
    var method: StartMethod
    var report: Queue<[Int32]>
    func callAsFunction(_: Void) throws {
        let daemon = Multiprocessing.Process(target: SleepFor(seconds: 100), daemon: true, startMethod: method)
        let other = Multiprocessing.Process(target: SleepFor(seconds: 0.4), daemon: false, startMethod: method)
        try daemon.start()
        try other.start()
        try report.put([daemon.pid ?? 0, other.pid ?? 0])
    }
}

final class MoreManagerProcessPortTests: PortTestCase {
    /// test_queue of a manager queue with a bound: putNowait on a full queue and a timed
    /// put throw Full, getNowait on an empty one and a timed get throw Empty (after their
    /// timeout).
    func testManagerQueueFullAndEmpty() throws {
        let manager = try Manager()
        defer { manager.shutdown() }
        let queue = try manager.queue(of: Int.self, maxSize: 1)
        XCTAssertTrue(try queue.isEmpty())
        XCTAssertThrowsError(try queue.getNowait()) { XCTAssertTrue($0 is Empty, "\($0)") }
        let (_, elapsedGet) = try timed {
            XCTAssertThrowsError(try queue.get(timeout: 0.2)) { XCTAssertTrue($0 is Empty, "\($0)") }
        }
        assertWaited(elapsedGet, 0.2, "get(timeout: 0.2)")
        try queue.putNowait(1)
        XCTAssertThrowsError(try queue.putNowait(2)) { XCTAssertTrue($0 is Full, "\($0)") }
        let (_, elapsedPut) = try timed {
            XCTAssertThrowsError(try queue.put(3, timeout: 0.2)) { XCTAssertTrue($0 is Full, "\($0)") }
        }
        assertWaited(elapsedPut, 0.2, "put(timeout: 0.2)")
        XCTAssertEqual(try queue.count(), 1)
        XCTAssertEqual(try queue.get(timeout: 1), 1)
        XCTAssertTrue(try queue.isEmpty())
    }

    /// _TestContainers: a missing key reads nil (dict.get), pop of a missing key is nil,
    /// and a list index out of range throws (IndexError) without breaking the proxy.
    func testMissingKeysAndIndexesOfProxies() throws {
        let manager = try Manager()
        defer { manager.shutdown() }
        let dict = try manager.dict(String.self, Int.self)
        XCTAssertNil(try dict.get("missing"))
        XCTAssertNil(try dict.pop("missing"))
        XCTAssertFalse(try dict.removeValue(forKey: "missing"))
        try dict.set("a", 1)
        XCTAssertEqual(try dict.pop("a"), 1)
        XCTAssertEqual(try dict.count(), 0)
        let list = try manager.list(of: Int.self)
        try list.extend([1, 2, 3])
        XCTAssertThrowsError(try list.get(3), "get past the end")
        XCTAssertThrowsError(try list.get(-4), "get before the start")
        XCTAssertThrowsError(try list.set(3, 0), "set past the end")
        XCTAssertThrowsError(try list.remove(at: 5), "remove past the end")
        XCTAssertEqual(try list.items(), [1, 2, 3], "the list is unchanged")
        try list.insert(0, at: 100) // Python's list.insert clamps
        XCTAssertEqual(try list.items(), [1, 2, 3, 0])
    }

    /// test_lock of a manager lock: release of an unlocked lock throws (RuntimeError);
    /// acquire(blocking: false) of a held one is false; an event waits for its timeout.
    func testManagerLockAndEventMisuse() throws {
        let manager = try Manager()
        defer { manager.shutdown() }
        let lock = try manager.lock()
        XCTAssertThrowsError(try lock.release(), "release of an unlocked manager lock")
        XCTAssertTrue(try lock.acquire())
        XCTAssertTrue(try lock.isLocked())
        XCTAssertFalse(try lock.acquire(blocking: false))
        let (again, elapsed) = try timed { try lock.acquire(timeout: 0.2) }
        XCTAssertFalse(again)
        assertWaited(elapsed, 0.2, "acquire(timeout: 0.2) of a held manager lock")
        try lock.release()
        XCTAssertFalse(try lock.isLocked())
        let event = try manager.event()
        let (set, elapsedEvent) = try timed { try event.wait(timeout: 0.2) }
        XCTAssertFalse(set)
        assertWaited(elapsedEvent, 0.2, "event.wait(timeout: 0.2)")
        try event.set()
        XCTAssertTrue(try event.wait(timeout: 0))
    }

    /// test_mymanager: after shutdown the manager's server is gone; a proxy's call throws
    /// promptly instead of hanging.
    func testProxiesOfAShutDownManagerThrow() throws {
        let manager = try Manager()
        let dict = try manager.dict(String.self, Int.self)
        let queue = try manager.queue(of: Int.self)
        try dict.set("x", 1)
        let server = manager.serverPID
        manager.shutdown()
        XCTAssertTrue(eventually(within: 10) { kill(server, 0) != 0 }, "the server process is still there")
        let thread = TestThread {
            XCTAssertThrowsError(try dict.get("x"), "dict.get after shutdown")
            XCTAssertThrowsError(try queue.get(timeout: 1), "queue.get after shutdown")
            XCTAssertThrowsError(try queue.put(1), "queue.put after shutdown")
        }
        XCTAssertTrue(try thread.wait(10), "a proxy call after shutdown hung")
    }

    /// test_daemon_argument: `daemon` is what was given; without it, the current process's
    /// flag ("by default uses the current process's daemon flag": false in the main process,
    /// true in a daemon child); a daemon child sees itself as daemon.
    func testDaemonArgument() throws {
        XCTAssertFalse(Multiprocessing.Process(target: SleepFor(seconds: 0)).daemon)
        XCTAssertTrue(Multiprocessing.Process(target: SleepFor(seconds: 0), daemon: true).daemon)
        XCTAssertFalse(Multiprocessing.Process(target: SleepFor(seconds: 0), daemon: false).daemon)
        XCTAssertFalse(Multiprocessing.currentProcess.daemon)
        try forEachMethod { method in
            for daemon in [false, true] {
                let report = try Queue<[Bool]>()
                let p = try started(ReportDaemonFlags(report: report), daemon: daemon, method)
                let flags = try report.get(timeout: 30)
                XCTAssertEqual(flags, [daemon, daemon], "\(method): [currentProcess.daemon, Process().daemon] in the child")
                try joinOrKill(p)
            }
        }
    }

    /// test_cpu_count: at least one CPU.
    func testCPUCount() {
        XCTAssertGreaterThanOrEqual(Multiprocessing.cpuCount, 1)
    }

    /// When a child's target returns, its daemon children are terminated and its other
    /// children joined (Python's _exit_function: terminate daemonic children, join the rest).
    func testAChildsDaemonChildrenEndWithItAndOthersAreJoined() throws {
        try forEachMethod { method in
            let report = try Queue<[Int32]>()
            let p = try started(LeaveChildrenBehind(method: method, report: report), method)
            let pids = try report.get(timeout: 30)
            let (_, elapsed) = try timed { try joinOrKill(p) }
            XCTAssertEqual(p.exitCode, 0, "\(method)")
            XCTAssertGreaterThanOrEqual(elapsed, 0.2, "\(method): the child did not wait for its non-daemon child")
            XCTAssertTrue(eventually(within: 10) { !isRunning(pids[0]) }, "\(method): the daemon grandchild outlived its parent")
            XCTAssertFalse(isRunning(pids[1]), "\(method): the non-daemon grandchild was not joined")
        }
    }
}
