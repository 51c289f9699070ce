import Dispatch
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

    // MARK: attacks and leaks

    /// Open descriptors of this process.
    private func openDescriptors() throws -> Int {
        try FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd").count
    }

    func testManagersLeaveNoDescriptorBehind() throws {
        do {
            let warmUp = try Manager()           // the supervisor's own descriptors, once
            try warmUp.dict(Int.self, Int.self).set(1, 1)
            warmUp.shutdown()
        }
        let before = try openDescriptors()
        for _ in 0..<20 {
            let manager = try Manager()
            try manager.dict(Int.self, Int.self).set(1, 2)
            manager.shutdown()
        }
        for _ in 0..<20 {
            let manager = try Manager()
            try manager.list(of: Int.self).append(1)
            _ = manager   // dropped here
        }
        let after = try openDescriptors()
        XCTAssertLessThanOrEqual(after, before + 2, "40 managers left \(after - before) descriptors open")
    }

    /// A raw connection to the manager's socket that has not authenticated.
    private func connectRaw(_ manager: Manager) throws -> Int32 {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        XCTAssertGreaterThanOrEqual(fd, 0)
        var storage = sockaddr_un()
        storage.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(manager.address.path.utf8)
        withUnsafeMutableBytes(of: &storage.sun_path) { raw in
            raw.copyBytes(from: bytes)
            raw[bytes.count] = 0
        }
        let result = withUnsafePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        XCTAssertEqual(result, 0, "connect: \(errno)")
        return fd
    }

    private func residentKiB(_ pid: Int32) -> Int {
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
              let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }) else { return -1 }
        return Int(line.split(separator: " ").dropFirst().first ?? "") ?? -1
    }

    /// Runs `body` on another thread; returns whether it finished within `seconds`
    /// (the thread may go on running).
    private func finishes(within seconds: Double, _ body: @escaping @Sendable () throws -> Void) -> Bool {
        let done = DispatchSemaphore(value: 0)
        DispatchQueue.global().async {
            do { try body() } catch { XCTFail("\(error)") }
            done.signal()
        }
        return done.wait(timeout: .now() + seconds) == .success
    }

    /// A stranger without the key (same user) that announces a 1 GiB frame, or sends half a
    /// header, and stays connected, neither stalls the other clients nor makes the server
    /// allocate memory; it is dropped once the authentication deadline passes.
    func testStrangerWithoutKeyCannotFreezeOrBloatTheServer() throws {
        let manager = try Manager()
        defer { manager.shutdown() }
        let dict = try manager.dict(Int.self, Int.self)
        try dict.set(0, 0)
        let baseline = residentKiB(manager.serverPID)
        XCTAssertGreaterThan(baseline, 0)
        let huge = try connectRaw(manager)
        let half = try connectRaw(manager)
        var closed = false
        defer { if !closed { systemClose(huge); systemClose(half) } }
        var announce: [UInt8] = [0, 0, 0, 0x40, 7]        // 1 GiB, then one byte of it
        XCTAssertEqual(send(huge, &announce, 5, Int32(MSG_NOSIGNAL)), 5)
        var header: [UInt8] = [32, 0]                      // half a header
        XCTAssertEqual(send(half, &header, 2, Int32(MSG_NOSIGNAL)), 2)
        usleep(100_000)
        let served = finishes(within: 5) {
            for i in 1...50 {
                try dict.set(i, i * i)
                guard try dict.get(i) == i * i else { throw ManagerError(.invalidRequest, "wrong value") }
            }
        }
        let resident = residentKiB(manager.serverPID)
        if !served {
            // Unblock the server (main's behaviour) so that the test ends.
            systemClose(huge)
            systemClose(half)
            closed = true
        }
        XCTAssertTrue(served, "a client without the key stalled the manager")
        XCTAssertLessThan(resident, 200_000, "the server's memory grew from \(baseline) KiB to \(resident) KiB")
        guard !closed else { return }
        // Both strangers are dropped once the authentication deadline (5 s) passes.
        for fd in [huge, half] {
            var pollEntry = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            XCTAssertEqual(poll(&pollEntry, 1, 10_000), 1, "a stranger was not dropped")
            var byte: UInt8 = 0
            XCTAssertLessThanOrEqual(recv(fd, &byte, 1, Int32(MSG_DONTWAIT)), 0)
        }
    }

    /// A client that authenticated, sent half a request and stopped does not stall the others.
    func testSlowAuthenticatedClientDoesNotStallOthers() throws {
        let manager = try Manager()
        defer { manager.shutdown() }
        let dict = try manager.dict(Int.self, Int.self)
        let slow = try connectRaw(manager)
        defer { systemClose(slow) }
        var frame: [UInt8] = [32, 0, 0, 0] + manager.address.authkey
        XCTAssertEqual(send(slow, &frame, frame.count, Int32(MSG_NOSIGNAL)), frame.count)
        var reply: [UInt8] = [0, 0, 0, 0, 0]
        var got = 0
        let end = monotonicSeconds() + 5
        while got < 5 && monotonicSeconds() < end {
            let n = recv(slow, &reply[got], 5 - got, Int32(MSG_DONTWAIT))
            if n > 0 { got += n } else { usleep(1_000) }
        }
        XCTAssertEqual(reply, [1, 0, 0, 0, 0], "authentication reply")
        var partial: [UInt8] = [100, 0, 0, 0, 13, 1]        // a 100-byte request, 2 bytes of it
        XCTAssertEqual(send(slow, &partial, partial.count, Int32(MSG_NOSIGNAL)), partial.count)
        usleep(100_000)
        let served = finishes(within: 5) { try dict.set(1, 2) }
        if !served { shutdown(slow, Int32(SHUT_RDWR)) }
        XCTAssertTrue(served, "a slow authenticated client stalled the manager")
    }
}
