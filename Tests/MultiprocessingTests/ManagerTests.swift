import XCTest
import Foundation
@testable import Multiprocessing
#if canImport(Glibc)
import Glibc
#endif

struct RecordInManager: ParallelFunction {
    var scores: DictProxy<String, Int>
    var log: ListProxy<String>
    var settings: NamespaceProxy
    func callAsFunction(_ i: Int) throws -> Int {
        let factor = try settings.get("factor", as: Int.self) ?? 0
        try scores.set("item-\(i)", i * factor)
        try log.append("done \(i)")
        return i
    }
}

/// Creates a manager inside a worker (or a forked child), reports where it listens.
struct NestedManager: ParallelFunction {
    func callAsFunction(_ x: Int) throws -> String {
        let manager = try Manager()
        let dict = try manager.dict(Int.self, Int.self)
        try dict.set(x, x * 2)
        return "\(try dict.get(x) ?? -1) \(manager.address.path)"
    }
}

nonisolated(unsafe) var managersKeptAlive: [Manager] = []

/// Starts a manager in the worker and keeps it; returns the worker's pid, the server's pid
/// and the socket path.
struct KeepManager: ParallelFunction {
    func callAsFunction(_: Int) throws -> [String] {
        let manager = try Manager()
        managersKeptAlive.append(manager)
        return [String(getpid()), String(manager.serverPID), manager.address.path]
    }
}

final class ManagerTests: TimeLimitedTestCase {
    func testDictListNamespaceSharedWithWorkersOnEveryStartMethod() throws {
        for method in [StartMethod.fork, .forkserver, .spawn] {
            let manager = try Manager()
            let scores = try manager.dict(String.self, Int.self)
            let log = try manager.list(of: String.self)
            let settings = try manager.namespace()
            try settings.set("factor", 10)
            try Pool.with(processes: 2, startMethod: method) { pool in
                _ = try pool.map(RecordInManager(scores: scores, log: log, settings: settings), 0..<20, chunkSize: 3)
            }
            XCTAssertEqual(try scores.count(), 20, "\(method)")
            XCTAssertEqual(try scores.get("item-7"), 70)
            XCTAssertNil(try scores.get("missing"))
            XCTAssertEqual(try scores.snapshot()["item-19"], 190)
            XCTAssertEqual(try log.count(), 20)
            XCTAssertEqual(Set(try log.snapshot()), Set((0..<20).map { "done \($0)" }))
            XCTAssertTrue(try scores.removeValue(forKey: "item-0"))
            XCTAssertFalse(try scores.removeValue(forKey: "item-0"))
            try log.set(0, "first")
            XCTAssertEqual(try log.get(0), "first")
            let last = try log.snapshot().last
            XCTAssertEqual(try log.remove(at: -1), last)
            XCTAssertEqual(try log.count(), 19)
            XCTAssertThrowsError(try log.get(1000)) { XCTAssertEqual(($0 as? ManagerError)?.code, .invalidRequest) }
            manager.shutdown()
            XCTAssertThrowsError(try scores.get("item-1")) { XCTAssertEqual(($0 as? ManagerError)?.code, .unavailable, "\($0)") }
            XCTAssertFalse(FileManager.default.fileExists(atPath: manager.address.path))
        }
    }

    func testWrongKeyIsRefused() throws {
        let manager = try Manager()
        defer { manager.shutdown() }
        let real = try manager.dict(Int.self, Int.self)
        var key = manager.address.authkey
        key[0] ^= 0xFF
        let forged = DictProxy<Int, Int>(address: ManagerAddress(path: manager.address.path, authkey: key), id: real.id)
        XCTAssertThrowsError(try forged.get(1)) { error in
            XCTAssertEqual((error as? ManagerError)?.code, .authenticationFailed, "\(error)")
        }
        try real.set(1, 2)
        XCTAssertEqual(try real.get(1), 2)
    }

    func testManagerOfAKilledOwnerGoesAwayWithItsSocket() throws {
        // A worker owns a manager; killing the pool kills the worker; the server follows.
        let pool = try Pool(processes: 1, startMethod: .spawn)
        let reply = try pool.apply(NestedManager(), 21)
        XCTAssertTrue(reply.hasPrefix("42 /tmp/swiftmp-manager-"), reply)
        // The worker's manager was dropped at the end of the call: its socket is gone.
        let path = String(reply.split(separator: " ")[1])
        XCTAssertFalse(FileManager.default.fileExists(atPath: path))
        // Now a worker that keeps its manager and is SIGKILLed: the server follows its owner
        // and removes its socket.
        let kept = try pool.apply(KeepManager(), 0)
        let (worker, server, socket) = (Int32(kept[0])!, Int32(kept[1])!, kept[2])
        XCTAssertTrue(FileManager.default.fileExists(atPath: socket))
        kill(worker, SIGKILL)
        let start = Date()
        while (kill(server, 0) == 0 || FileManager.default.fileExists(atPath: socket)) && Date().timeIntervalSince(start) < 5 {
            usleep(20_000)
        }
        XCTAssertNotEqual(kill(server, 0), 0, "the manager server outlived its owner")
        XCTAssertFalse(FileManager.default.fileExists(atPath: socket), "the socket outlived its manager")
        pool.terminate()
        try pool.join()
    }

    func testLargeValuesAndManySmallOnesKeepTheirFrames() throws {
        // Frames larger than the connection's 4 KiB read buffer, then many small ones: the
        // buffered reader must neither split nor merge frames, on the client or the server.
        let manager = try Manager()
        defer { manager.shutdown() }
        let blobs = try manager.dict(Int.self, [UInt8].self)
        let sizes = [0, 1, 4091, 4096, 4097, 65_537, 3 << 20]
        for (i, size) in sizes.enumerated() {
            try blobs.set(i, (0..<size).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ i) })
        }
        for (i, size) in sizes.enumerated() {
            XCTAssertEqual(try blobs.get(i), (0..<size).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ i) }, "size \(size)")
        }
        let numbers = try manager.dict(Int.self, Int.self)
        for i in 0..<2000 { try numbers.set(i, i * i) }
        XCTAssertEqual(try numbers.count(), 2000)
        XCTAssertEqual(try numbers.snapshot().values.reduce(0, +), (0..<2000).reduce(0) { $0 + $1 * $1 })
    }
}
