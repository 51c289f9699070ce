// Differences from Python found by the third round of ports of CPython's
// Lib/test/_test_multiprocessing.py: each test states what Python does. All three failed
// before their fixes (a dead fork server and its running child, a dead manager server, a join
// that waited for an unread stream) and now guard them.
//
// CPython test                                          → Swift test (Port3DifferenceTests)
// _TestProcess.test_forkserver_sigint
//   (check_forkserver_death(SIGINT))                    → testForkServerIgnoresSIGINT
// _TestSharedMemory.test_shared_memory_SharedMemoryServer_ignores_sigint
//   (bpo-36368; BaseManager._run_server ignores SIGINT,
//   so a Manager()'s server does too)                   → testManagerServerIgnoresSIGINT
// _TestPoolWorkerLifetime.test_pool_worker_lifetime_early_close,
//   _TestPool.test_imap (an imap whose results are read
//   only after close() and join())                     → testJoinAfterCloseDoesNotWaitForTheImapConsumer

import Dispatch
import Multiprocessing
import XCTest

#if canImport(Glibc)
import Glibc
#endif

/// CPython's `_sleep_and_set_event`.
struct Port3SleepAndSetEvent: ParallelFunction {
    var event: Event
    var seconds: Double
    func callAsFunction(_: Void) throws {
        usleep(UInt32(seconds * 1e6))
        event.set()
    }
}

final class Port3DifferenceTests: PortTestCase {
    /// Python (check_forkserver_death with SIGINT): the fork server ignores SIGINT, so a
    /// child it forked and that is running finishes normally (exit 0, its event set), and new
    /// children start. (Ctrl-C in a terminal sends SIGINT to the whole process group, fork
    /// server included: a program that handles SIGINT keeps its children in Python.)
    func testForkServerIgnoresSIGINT() throws {
        let warmUp = try started(SleepFor(seconds: 0), .forkserver)
        try joinOrKill(warmUp)
        let servers = port3AllProcesses().filter { $0.command == "swiftmp-forksrv" && $0.parent == getpid() }
        XCTAssertEqual(servers.count, 1, "one fork server child: \(servers.map(\.pid))")
        guard let server = servers.first else { return }
        let event = try Event()
        let p = try started(Port3SleepAndSetEvent(event: event, seconds: 0.5), .forkserver)
        XCTAssertEqual(kill(server.pid, SIGINT), 0)
        usleep(1_000_000)
        let event2 = try Event()
        let p2 = try started(Port3SleepAndSetEvent(event: event2, seconds: 0), .forkserver)
        try joinOrKill(p2)
        XCTAssertTrue(event2.isSet, "a child started after the SIGINT did not run")
        XCTAssertEqual(p2.exitCode, 0)
        try joinOrKill(p)
        XCTAssertTrue(event.isSet, "the child running at the SIGINT did not finish")
        XCTAssertEqual(p.exitCode, 0, "the child running at the SIGINT ended with \(String(describing: p.exitCode))")
        XCTAssertTrue(isRunning(server.pid), "the fork server died of SIGINT")
    }

    /// Python (bpo-36368): a manager's server process ignores SIGINT, so its proxies keep
    /// working after a SIGINT reaches it (as Ctrl-C does, to the whole process group).
    func testManagerServerIgnoresSIGINT() throws {
        let manager = try Manager()
        defer { manager.shutdown() }
        let list = try manager.list(of: Int.self)
        try list.extend(Array(0..<10))
        XCTAssertEqual(kill(manager.serverPID, SIGINT), 0)
        usleep(300_000)
        XCTAssertTrue(isRunning(manager.serverPID), "the manager's server died of SIGINT")
        XCTAssertEqual(try list.items(), Array(0..<10), "the list proxy after a SIGINT to the server")
        let second = try manager.list(of: Int.self)
        try second.extend(Array(0..<10))
        XCTAssertEqual(try second.count(), 10)
    }

    /// Python: `it = pool.imap(sqr, range(200)); pool.close(); pool.join(); list(it)` —
    /// join returns once every task ran (the task handler feeds the whole iterable and the
    /// result handler stores the results in the iterator), and the results are read
    /// afterwards. Here join must not wait for the stream's consumer either.
    func testJoinAfterCloseDoesNotWaitForTheImapConsumer() throws {
        try forEachMethod { method in
            let pool = try Pool(processes: 2, startMethod: method)
            let stream = try pool.imap(Sqr(), Array(0..<200))
            pool.close()
            let joiner = TestThread { try pool.join() }
            let joined = try joiner.wait(3)
            XCTAssertTrue(joined, "\(method): join() after close() waits for the unread imap stream")
            XCTAssertEqual(try stream.map { try $0.get() }, (0..<200).map { $0 * $0 }, "\(method)")
            if !joined {
                XCTAssertTrue(try joiner.wait(30), "\(method): join did not end after the stream was read")
            }
        }
    }
}
