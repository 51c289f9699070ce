import Dispatch
import Foundation
import Synchronization
import XCTest

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

/// A `Process` target: waits for the go event, squares jobs from a manager queue until -1,
/// adds them to a manager value under a manager lock, and edits a dict and a list.
struct SquareFromManagerQueue: ParallelFunction {
    var jobs: QueueProxy<Int>
    var results: QueueProxy<Int>
    var lock: LockProxy
    var go: EventProxy
    var total: ValueProxy<Int>
    var dict: DictProxy<String, Int>
    var list: ListProxy<Int>
    func callAsFunction(_: Void) throws {
        guard try go.wait(timeout: 20) else { throw ManagerError(.invalidRequest, "no go") }
        while true {
            let n = try jobs.get(timeout: 20)
            if n < 0 { break }
            try results.put(n * n)
            try lock.withLock { try total.set(try total.get() + n) }
        }
        try dict.setDefault("children", 0)
        try lock.withLock { try dict.update(["children": (try dict.get("children") ?? 0) + 1]) }
        try list.extend([7, 8])
        try list.insert(6, at: 0)
    }
}

/// A pool task: counts itself in a manager value under a manager lock, reports through a
/// manager queue, and pops its own dict entry.
struct CountInManager: ParallelFunction {
    var results: QueueProxy<Int>
    var lock: LockProxy
    var total: ValueProxy<Int>
    var dict: DictProxy<String, Int>
    func callAsFunction(_ i: Int) throws -> Int {
        try lock.withLock { try total.set(try total.get() + 1) }
        try results.put(i)
        return try dict.pop("task-\(i)") ?? -1
    }
}

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

    /// A manager that goes away while a proxy connects (it shuts down, or its owner exits,
    /// between the proxy's `connect` and the key's answer) is `ManagerError(.unavailable)`,
    /// whether it closed the connection cleanly or reset it — not a `SystemError`, nor a
    /// wrong key.
    func testAManagerGoneDuringTheHandshakeIsUnavailable() throws {
        let directory = NSTemporaryDirectory() + "swiftmp-handshake-\(getpid())"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        for reset in [false, true] {
            let path = directory + "/socket-\(reset)"
            let listener = try listeningSocket(at: path)
            defer { close(listener) }
            // The "server": accepts, waits for the key, then closes — after reading it (a
            // clean end of file for the proxy) or without (a reset).
            let server = Thread {
                let client = accept(listener, nil, nil)
                var ready = pollfd(fd: client, events: Int16(POLLIN), revents: 0)
                _ = poll(&ready, 1, 10_000)
                if !reset {
                    var key = [UInt8](repeating: 0, count: 64)
                    _ = recv(client, &key, key.count, 0)
                }
                close(client)
            }
            server.start()
            let proxy = DictProxy<Int, Int>(address: ManagerAddress(path: path, authkey: Array(repeating: 7, count: 32)), id: 1)
            XCTAssertThrowsError(try proxy.get(1)) { error in
                XCTAssertEqual((error as? ManagerError)?.code, .unavailable, "reset \(reset): \(type(of: error)) \(error)")
            }
        }
    }

    /// A refused key closes the connection's descriptor once: closing it again (as the
    /// connection's deinit did after the refusal had closed it) closes whatever descriptor
    /// another thread opened meanwhile under the same number.
    func testARefusedKeyClosesItsDescriptorOnce() throws {
        let manager = try Manager()
        defer { manager.shutdown() }
        var key = manager.address.authkey
        key[0] ^= 0xFF
        let forged = DictProxy<Int, Int>(address: ManagerAddress(path: manager.address.path, authkey: key), id: 1)
        let stop = Atomic<Bool>(false)
        let closedUnderUs = Atomic<Int>(0)
        let victim = Thread {
            // Opens descriptors as fast as it can; one closed by someone else fails its own close.
            while !stop.load(ordering: .relaxed) {
                let fd = open("/dev/null", O_RDONLY)
                if fd >= 0, close(fd) != 0 { closedUnderUs.add(1, ordering: .relaxed) }
            }
        }
        victim.start()
        let end = monotonicNanoseconds() + 3_000_000_000
        var attempts = 0
        while monotonicNanoseconds() < end && closedUnderUs.load(ordering: .relaxed) == 0 {
            XCTAssertThrowsError(try forged.get(1))
            attempts += 1
        }
        stop.store(true, ordering: .relaxed)
        usleep(10_000)
        XCTAssertEqual(closedUnderUs.load(ordering: .relaxed), 0, "after \(attempts) refused connections")
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

    /// A value larger than a manager frame (1 GiB) is refused before it is sent, as too
    /// large: `ManagerError(.invalidRequest)` saying so (not "the manager is gone", which the
    /// server's refusal of the frame looked like), and the manager goes on serving.
    func testAValueLargerThanAFrameIsRefusedAsTooLarge() throws {
        let manager = try Manager()
        defer { manager.shutdown() }
        let blobs = try manager.list(of: [UInt8].self)
        // 1 025 times the same MiB (one array in this process): a request of just over 1 GiB.
        let mebibyte = [UInt8](repeating: 1, count: 1 << 20)
        XCTAssertThrowsError(try blobs.extend(Array(repeating: mebibyte, count: 1025))) { error in
            XCTAssertEqual((error as? ManagerError)?.code, .invalidRequest, "\(error)")
            XCTAssertTrue("\(error)".contains("too large"), "\(error)")
        }
        try blobs.append([1, 2, 3])
        XCTAssertEqual(try blobs.snapshot(), [[1, 2, 3]])
    }

    // MARK: attacks and leaks

    /// Open descriptors of this process.
    private func openDescriptors() throws -> Int {
        try FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd").count
    }

    func testManagersLeaveNoDescriptorBehind() throws {
        do {
            let warmUp = try Manager() // the supervisor's own descriptors, once
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
            _ = manager // dropped here
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
            let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") })
        else { return -1 }
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
        var announce: [UInt8] = [0, 0, 0, 0x40, 7] // 1 GiB, then one byte of it
        XCTAssertEqual(send(huge, &announce, 5, Int32(MSG_NOSIGNAL)), 5)
        var header: [UInt8] = [32, 0] // half a header
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
        var partial: [UInt8] = [100, 0, 0, 0, 13, 1] // a 100-byte request, 2 bytes of it
        XCTAssertEqual(send(slow, &partial, partial.count, Int32(MSG_NOSIGNAL)), partial.count)
        usleep(100_000)
        let served = finishes(within: 5) { try dict.set(1, 2) }
        if !served { shutdown(slow, Int32(SHUT_RDWR)) }
        XCTAssertTrue(served, "a slow authenticated client stalled the manager")
    }

    // MARK: queue, lock, event, value; more dict and list operations

    func testQueueLockEventValueProxiesInProcessesAndPoolTasks() throws {
        let manager = try Manager()
        defer { manager.shutdown() }
        let jobs = try manager.queue(of: Int.self, maxSize: 2)
        let results = try manager.queue(of: Int.self)
        let lock = try manager.lock()
        let go = try manager.event()
        let total = try manager.value(0)
        let dict = try manager.dict(String.self, Int.self)
        let list = try manager.list(of: Int.self)
        let target = SquareFromManagerQueue(jobs: jobs, results: results, lock: lock, go: go, total: total, dict: dict, list: list)
        let children = (0..<2).map { _ in Multiprocessing.Process(target: target, startMethod: .fork) }
        for child in children { try child.start() }
        XCTAssertFalse(try go.isSet())
        try go.set()
        // maxSize 2: these puts wait for the children to take jobs.
        for n in 1...10 { try jobs.put(n, timeout: 20) }
        for _ in children { try jobs.put(-1, timeout: 20) }
        var squares: [Int] = []
        for _ in 1...10 { squares.append(try results.get(timeout: 20)) }
        for child in children { XCTAssertTrue(try child.join(timeout: 20)) }
        XCTAssertEqual(children.map(\.exitCode), [0, 0])
        XCTAssertEqual(squares.sorted(), (1...10).map { $0 * $0 })
        XCTAssertEqual(try total.get(), 55)
        XCTAssertEqual(try dict.get("children"), 2)
        XCTAssertEqual(try list.count(), 6)
        XCTAssertEqual(try list.items().filter { $0 == 6 }.count, 2)
        XCTAssertEqual(try list.get(0), 6)

        // Timeouts and non-blocking calls.
        XCTAssertThrowsError(try results.get(timeout: 0.1)) { XCTAssertTrue($0 is Empty, "\($0)") }
        XCTAssertThrowsError(try results.getNowait()) { XCTAssertTrue($0 is Empty) }
        try jobs.putNowait(1)
        try jobs.putNowait(2)
        XCTAssertThrowsError(try jobs.put(3, timeout: 0.1)) { XCTAssertTrue($0 is Full, "\($0)") }
        XCTAssertEqual(try jobs.count(), 2)
        XCTAssertEqual(try jobs.get(), 1)
        XCTAssertTrue(try lock.acquire())
        XCTAssertTrue(try lock.isLocked())
        XCTAssertFalse(try lock.acquire(blocking: false))
        XCTAssertFalse(try lock.acquire(timeout: 0.1))
        try lock.release()
        XCTAssertThrowsError(try lock.release()) { XCTAssertEqual(($0 as? ManagerError)?.code, .invalidRequest) }
        try go.clear()
        XCTAssertFalse(try go.wait(timeout: 0.1))

        // The same proxies in pool tasks (spawned workers receive them encoded).
        try total.set(0)
        try dict.update(Dictionary(uniqueKeysWithValues: (0..<8).map { ("task-\($0)", $0 * 10) }))
        let popped = try Pool.with(processes: 2, startMethod: .spawn) { pool in
            try pool.map(CountInManager(results: results, lock: lock, total: total, dict: dict), 0..<8, chunkSize: 1)
        }
        XCTAssertEqual(popped, (0..<8).map { $0 * 10 })
        XCTAssertEqual(try total.get(), 8)
        var reported: [Int] = []
        for _ in 0..<8 { reported.append(try results.get(timeout: 5)) }
        XCTAssertEqual(reported.sorted(), Array(0..<8))
        XCTAssertEqual(try dict.count(), 1) // only "children" is left
    }

    func testDictPopSetDefaultUpdateAndListInsertExtendItems() throws {
        let manager = try Manager()
        defer { manager.shutdown() }
        let dict = try manager.dict(String.self, Int.self)
        XCTAssertNil(try dict.pop("a"))
        XCTAssertEqual(try dict.setDefault("a", 1), 1)
        XCTAssertEqual(try dict.setDefault("a", 2), 1)
        try dict.update(["b": 2, "c": 3, "a": 10])
        XCTAssertEqual(try dict.snapshot(), ["a": 10, "b": 2, "c": 3])
        XCTAssertEqual(try dict.pop("b"), 2)
        XCTAssertNil(try dict.pop("b"))
        XCTAssertEqual(try dict.count(), 2)

        let list = try manager.list(of: String.self)
        try list.extend(["b", "d"])
        try list.insert("a", at: 0)
        try list.insert("c", at: -1) // before the last, as Python's
        try list.insert("e", at: 100) // past the end: appended
        try list.insert("_", at: -100) // before the start: first
        try list.extend([String]())
        XCTAssertEqual(try list.items(), ["_", "a", "b", "c", "d", "e"])
        var seen: [String] = []
        for item in try list.items() { seen.append(item) }
        XCTAssertEqual(seen.count, 6)
    }
}

/// A Unix socket listening at `path`.
private func listeningSocket(at path: String) throws -> Int32 {
    let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
    var address = sockaddr_un()
    address.sun_family = sa_family_t(AF_UNIX)
    withUnsafeMutableBytes(of: &address.sun_path) { raw in
        raw.copyBytes(from: Array(path.utf8))
        raw[path.utf8.count] = 0
    }
    let bound = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
    }
    guard fd >= 0, bound == 0, listen(fd, 4) == 0 else { throw SystemError("bind \(path)", errno: errno) }
    return fd
}
