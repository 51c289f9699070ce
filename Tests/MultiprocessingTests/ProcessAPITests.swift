import Foundation
import XCTest

@testable import Multiprocessing

#if canImport(Glibc)
import Glibc
#endif

/// `close()`, `sentinel`, `Multiprocessing.activeChildren()`, `Multiprocessing.parentProcess`.
final class ProcessAPITests: XCTestCase {
    static let methods: [StartMethod] = [.fork, .forkserver, .spawn]

    private func assertClosed(
        _ body: @autoclosure () throws -> some Any, _ what: String,
        file: StaticString = #filePath, line: UInt = #line
    ) {
        XCTAssertThrowsError(try body(), what, file: file, line: line) {
            XCTAssertEqual(($0 as? ProcessError)?.code, .closed, "\(what): \($0)", file: file, line: line)
        }
    }

    /// After close() every method throws `.closed` (Python's ValueError); close() again is
    /// allowed; the last exit code stays readable.
    func testEveryMethodThrowsAfterClose() throws {
        for method in Self.methods {
            let p = Process(target: EndWith(way: .status, status: 6), startMethod: method)
            try p.start()
            XCTAssertTrue(try p.join(timeout: 20))
            try p.close()
            assertClosed(try p.join(), "join (\(method))")
            assertClosed(try p.join(timeout: 1), "join(timeout:) (\(method))")
            assertClosed(try p.start(), "start (\(method))")
            assertClosed(try p.terminate(), "terminate (\(method))")
            assertClosed(try p.kill(), "kill (\(method))")
            assertClosed(try p.sentinel, "sentinel (\(method))")
            XCTAssertNoThrow(try p.close(), "close twice (\(method))")
            XCTAssertFalse(p.isAlive)
            XCTAssertEqual(p.exitCode, 6)
        }
        let never = Process(target: EndWith(way: .success))
        try never.close()
        assertClosed(try never.start(), "start after close of a process never started")
    }

    /// The sentinel becomes readable when the child ends, without join (Python's sentinel,
    /// for `select`/`poll` over many processes).
    func testSentinelIsReadableOnceTheProcessEnds() throws {
        for method in Self.methods {
            let p = Process(target: EndWith(way: .sleep, seconds: 30), startMethod: method)
            XCTAssertThrowsError(try p.sentinel) { XCTAssertEqual(($0 as? ProcessError)?.code, .notStarted) }
            try p.start()
            let fd = try p.sentinel
            XCTAssertEqual(try p.sentinel, fd, "the same descriptor each time")
            var entry = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            XCTAssertEqual(poll(&entry, 1, 0), 0, "not readable while it runs (\(method))")
            try p.terminate()
            entry.revents = 0
            XCTAssertEqual(poll(&entry, 1, 20_000), 1, "readable once it ended (\(method))")
            XCTAssertTrue(try p.join(timeout: 20))
            XCTAssertEqual(p.exitCode, -SIGTERM)
            entry.revents = 0
            XCTAssertEqual(poll(&entry, 1, 0), 1, "still readable after join (\(method))")
        }
    }

    /// Python's active_children(): the live children this process started; finished ones
    /// are reaped and left out.
    func testActiveChildrenListsLiveChildrenAndReapsEndedOnes() throws {
        var sleepers: [Multiprocessing.Process] = []
        for method in Self.methods {
            let p = Process(target: EndWith(way: .sleep, seconds: 30), startMethod: method)
            try p.start()
            sleepers.append(p)
        }
        let quick = Process(target: EndWith(way: .success), startMethod: .fork)
        try quick.start()
        let quickPID = try XCTUnwrap(quick.pid)
        var active = Set(Multiprocessing.activeChildren().map(ObjectIdentifier.init))
        for p in sleepers { XCTAssertTrue(active.contains(ObjectIdentifier(p)), "\(p.startMethod) sleeper listed") }
        // The quick one ends unjoined: active_children reaps it.
        let end = monotonicNanoseconds() + 20_000_000_000
        while Multiprocessing.activeChildren().contains(where: { $0 === quick }) && monotonicNanoseconds() < end {
            usleep(5_000)
        }
        XCTAssertFalse(Multiprocessing.activeChildren().contains { $0 === quick })
        XCTAssertEqual(kill(quickPID, 0), -1, "reaped by activeChildren()")
        XCTAssertEqual(quick.exitCode, 0)

        try sleepers[0].terminate()
        XCTAssertTrue(try sleepers[0].join(timeout: 20))
        active = Set(Multiprocessing.activeChildren().map(ObjectIdentifier.init))
        XCTAssertFalse(active.contains(ObjectIdentifier(sleepers[0])))
        XCTAssertTrue(active.contains(ObjectIdentifier(sleepers[1])))
        for p in sleepers.dropFirst() { try p.kill() }
        for p in sleepers.dropFirst() { XCTAssertTrue(try p.join(timeout: 20)) }
        XCTAssertFalse(Multiprocessing.activeChildren().contains { p in sleepers.contains { $0 === p } })
    }

    /// A `.fork` child whose target mentions no shared objects runs it as it is in memory and
    /// takes its identity from what its parent recorded before the fork: its name, daemon
    /// flag and parent, and so does a grandchild started the same way (after which the child
    /// is still itself); the parent stays the main process.
    func testForkedInMemoryChildIdentity() throws {
        for daemon in [false, true] {
            let name = "in-memory-\(daemon)"
            let target = CheckForkedIdentity(
                name: name, daemon: daemon, parentPID: getpid(), parentName: "MainProcess", grandchild: "\(name)-child")
            let p = Process(target: target, name: name, daemon: daemon, startMethod: .fork)
            try p.start()
            XCTAssertTrue(try p.join(timeout: 30))
            XCTAssertEqual(p.exitCode, 0, "daemon: \(daemon) (CheckForkedIdentity's codes)")
        }
        XCTAssertEqual(Multiprocessing.currentProcess.name, "MainProcess")
        XCTAssertTrue(Multiprocessing.currentProcess.isMain)
        XCTAssertNil(Multiprocessing.parentProcess)
    }

    /// Python's parent_process(): nil in the main process; in a child the parent's pid and
    /// name, on every start method, nested, and in pool workers.
    func testParentProcess() throws {
        XCTAssertNil(Multiprocessing.parentProcess)
        let queue = try Queue<String>()
        let me = "\(getpid()) MainProcess"
        for method in Self.methods {
            let p = Process(target: ReportParent(queue: queue), startMethod: method)
            try p.start()
            XCTAssertEqual(try queue.get(timeout: 20), me, "\(method) child")
            XCTAssertTrue(try p.join(timeout: 20))
        }
        for outer in Self.methods {
            for inner in Self.methods {
                let p = Process(
                    target: ReportGrandchildParent(queue: queue, method: inner), name: "outer-\(outer)",
                    startMethod: outer)
                try p.start()
                let grandchild = try queue.get(timeout: 30)
                let child = try queue.get(timeout: 30)
                XCTAssertEqual(grandchild, child, "a \(inner) grandchild of a \(outer) child")
                XCTAssertTrue(child.hasSuffix(" outer-\(outer)"), child)
                XCTAssertTrue(try p.join(timeout: 30))
            }
        }
        for method in Self.methods {
            let parents = try Pool.with(processes: 2, startMethod: method) { try $0.map(WorkerParent(), 0..<4) }
            XCTAssertEqual(parents, Array(repeating: me, count: 4), "\(method) pool workers")
        }
    }
}
