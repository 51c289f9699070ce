import CSystemShims
import XCTest

@testable import Multiprocessing

#if canImport(Glibc)
import Glibc
#endif

/// Killing the fork server: the next use starts a new one; nothing hangs.
final class ForkServerRestartTests: XCTestCase {
    private func killForkServer() throws {
        let servers = children(named: "swiftmp-forksrv")
        XCTAssertEqual(servers.count, 1, "one fork server child: \(servers)")
        for pid in servers {
            XCTAssertEqual(kill(pid, SIGKILL), 0)
        }
    }

    func testKilledServerUnderALivePool() throws {
        let pool = try Pool(processes: 2, startMethod: .forkserver)
        defer {
            pool.terminate()
            _ = try? bounded(30, "join of the pool") { try pool.join() }
        }
        XCTAssertEqual(try bounded(60, "map") { try pool.map(Square(), 0..<20) }, (0..<20).map { $0 * $0 })
        try killForkServer()
        // Its workers die with it: a map may see that (WorkerDied) while the pool replaces
        // them through a new server; it never hangs, and the pool works again.
        var result: [Int]?
        for attempt in 0..<5 where result == nil {
            do {
                result = try bounded(60, "map \(attempt) after the kill") { try pool.map(Square(), 0..<20, chunkSize: 1) }
            } catch let error as WorkerDied {
                _ = error
            }
        }
        XCTAssertEqual(result, (0..<20).map { $0 * $0 })
        // The map may have finished on the old workers before their deaths (signalled when their
        // server died) were seen; their replacements come through a new server soon after.
        let end = Date().addingTimeInterval(15)
        while children(named: "swiftmp-forksrv").count != 1 && Date() < end { usleep(20_000) }
        XCTAssertEqual(children(named: "swiftmp-forksrv").count, 1, "a new fork server")
        XCTAssertEqual(try bounded(60, "map after the restart") { try pool.map(Square(), 0..<20) }, (0..<20).map { $0 * $0 })
    }

    func testKilledServerEndsItsProcessAndRestarts() throws {
        let p = Process(target: EndWith(way: .sleep, seconds: 30), startMethod: .forkserver)
        try p.start()
        try killForkServer()
        XCTAssertTrue(try bounded(30, "join(timeout: 15)") { try p.join(timeout: 15) }, "the child dies with its server")
        XCTAssertEqual(p.exitCode, -SIGKILL)
        for _ in 0..<2 {
            let next = Process(target: EndWith(way: .status, status: 4), startMethod: .forkserver)
            try next.start()
            XCTAssertTrue(try bounded(30, "join of the next process") { try next.join(timeout: 20) })
            XCTAssertEqual(next.exitCode, 4)
        }
    }
}

/// Out of descriptors, no child runs unwatched (one without a pidfd would never be reported
/// ended): a fork server answers a request at once with the reason and starts no child it
/// could not watch; this process kills and reaps a child it cannot watch.
final class OutOfDescriptorsChildTests: XCTestCase {
    /// The fork server's pid, after a first child made sure it runs.
    private func runningServer() throws -> pid_t {
        let first = Process(target: EndWith(way: .status, status: 0), startMethod: .forkserver)
        try first.start()
        XCTAssertTrue(try bounded(30, "join of the first child") { try first.join(timeout: 20) })
        let servers = children(named: "swiftmp-forksrv")
        XCTAssertEqual(servers.count, 1, "one fork server child: \(servers)")
        return try XCTUnwrap(servers.first)
    }

    /// Lets the server open `room` more descriptors than it has open now.
    private func limitDescriptors(of server: pid_t, room: Int) throws {
        let open = try FileManager.default.contentsOfDirectory(atPath: "/proc/\(server)/fd").count
        XCTAssertEqual(CSystemShims_limit_descriptors(server, UInt(open + room)), 0, "prlimit: errno \(errno)")
    }

    private func expectRefusal(room: Int) throws {
        let server = try runningServer()
        defer {
            // Ended and reaped, so that the next use starts a new one.
            _ = kill(server, SIGKILL)
            let end = monotonicNanoseconds() + 10_000_000_000
            while access("/proc/\(server)", F_OK) == 0 && monotonicNanoseconds() < end { usleep(10_000) }
            usleep(50_000)
        }
        try limitDescriptors(of: server, room: room)
        let child = Process(target: EndWith(way: .status, status: 5), startMethod: .forkserver)
        let start = monotonicNanoseconds()
        do {
            try bounded(60, "start") { try child.start() }
            // Before the fix: started without a pidfd (room 2), its end was never reported.
            XCTAssertTrue(try bounded(30, "join") { try child.join(timeout: 10) }, "the child's end is reported")
            XCTFail("the server had no room to watch a child, yet one started")
        } catch {
            XCTAssertTrue("\(error)".contains("fork in the fork server"), "\(error)")
            XCTAssertTrue("\(error)".contains("errno \(EMFILE)"), "\(error)")
        }
        XCTAssertLessThan(monotonicNanoseconds() - start, 5_000_000_000, "refused at once, not after the answer's time limit")
    }

    /// No room for the request's descriptors: before the fix the request went unanswered (30 s).
    func testNoRoomForTheRequestsDescriptors() throws { try expectRefusal(room: 0) }

    /// Room for the request's two descriptors but not for the child's pidfd.
    func testNoRoomToWatchTheChild() throws { try expectRefusal(room: 2) }

    /// Room for the request's two descriptors and one more: the child could not move both to
    /// 3 and 4 and died at its start (status 70, a start death to a pool); now the server
    /// makes that room before it forks, and refuses without it.
    func testNoRoomForTheChildToTakeItsDescriptors() throws { try expectRefusal(room: 3) }

    /// A process whose descriptor limit is lowered below what it has open: `poll` refuses the
    /// supervisor's set (EINVAL) and the supervisor spun for ever without reaping, so a worker's
    /// death was never seen; now it polls each descriptor alone.
    func testAWorkersDeathIsSeenUnderALimitBelowWhatIsOpen() throws {
        // Three workers: the supervisor polls more descriptors than the limit below allows.
        let pool = try Pool(processes: 3, startMethod: .fork)
        defer {
            pool.terminate()
            _ = try? bounded(30, "join") { try pool.join() }
        }
        XCTAssertEqual(try bounded(30, "warm-up") { try pool.apply(Square(), 3) }, 9)
        // The first death wakes a supervisor asleep in poll; it polls again under the limit,
        // and the second must still be seen.
        let outcomes = try withDescriptorLimit(.standardStreamsOnly) {
            (1...2).map { round in
                Result { try bounded(20, "apply \(round) of a task that kills its worker") { try pool.apply(KillSelf(), round) } }
            }
        }
        for outcome in outcomes {
            guard case .failure(let error) = outcome, error is WorkerDied else { return XCTFail("\(outcome)") }
        }
        XCTAssertEqual(try bounded(30, "apply after") { try pool.apply(Square(), 4) }, 16)
    }

    func testAManagerThatCannotListenLeavesNoDirectory() throws {
        func managerDirectories() -> Set<String> {
            Set(((try? FileManager.default.contentsOfDirectory(atPath: "/tmp")) ?? []).filter { $0.hasPrefix("swiftmp-manager-") })
        }
        let before = managerDirectories()
        let outcome = try withDescriptorLimit(.noneFree) { Result { try Manager() } }
        if case .success(let manager) = outcome {
            manager.shutdown()
            return XCTFail("a manager started with no descriptor free")
        }
        XCTAssertEqual(managerDirectories().subtracting(before), [], "the new manager's directory was removed")
    }

    func testAChildThatCannotBeWatchedIsKilledAndReaped() throws {
        try ProcessSupervisor.shared.perform {} // its thread and descriptors exist
        let pid = try ChildLauncher.fork {
            sleep(30)
            _exit(0)
        }
        let outcome = try withDescriptorLimit(.noneFree) {
            Result { () throws(SystemError) -> Int32 in try ProcessSupervisor.shared.watch(pid: pid) { _ in } }
        }
        guard case .failure(let error) = outcome else {
            ChildLauncher.killAndReap(pid)
            return XCTFail("watched with no descriptor free")
        }
        XCTAssertEqual(error.errno, EMFILE, "\(error)")
        // Before the fix: still running, unwatched (waitpid finds it alive).
        var status: Int32 = 0
        let found = waitpid(pid, &status, WNOHANG)
        XCTAssertEqual(found, -1, "the child was killed and reaped (waitpid: \(found), status \(status))")
        if found == 0 { ChildLauncher.killAndReap(pid) }
    }
}

/// Under a descriptor limit below 100 (`ulimit -n 64`), `.spawn` and `.forkserver` children
/// start: their descriptors were moved to 100 (spawn: `EINVAL`) or 512 (the fork server's
/// child: unchecked, the child got none) on the way.
final class LowDescriptorLimitTests: XCTestCase {
    func testChildrenStartUnderALimitBelowOneHundred() throws {
        let free = lowestFreeDescriptor()
        guard free + 16 < 100 else { throw XCTSkip("this process has \(free) descriptors open: no limit below 100 leaves room") }
        // A fork server started under the limit (the one running now has the old one).
        for pid in children(named: "swiftmp-forksrv") {
            kill(pid, SIGKILL)
            let end = monotonicNanoseconds() + 10_000_000_000
            while access("/proc/\(pid)", F_OK) == 0 && monotonicNanoseconds() < end { usleep(10_000) }
            usleep(50_000)
        }
        // The fork server started under the low limit is not left to later tests.
        defer { for pid in children(named: "swiftmp-forksrv") { kill(pid, SIGKILL) } }
        try withDescriptorLimit(.room(16)) {
            for method in [StartMethod.spawn, .forkserver] {
                let child = Process(target: EndWith(way: .status, status: 6), startMethod: method)
                try bounded(30, "\(method): start") { try child.start() }
                XCTAssertTrue(try bounded(30, "\(method): join") { try child.join(timeout: 20) }, "\(method)")
                XCTAssertEqual(child.exitCode, 6, "\(method)")
            }
        }
    }
}
