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
