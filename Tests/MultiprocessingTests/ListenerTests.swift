import Foundation
import Synchronization
import XCTest

@testable import Multiprocessing

#if canImport(Glibc)
import Glibc
#endif

/// A child that connects to `address` with `authkey` and reports how it went on `report`.
struct ConnectAndReport: ParallelFunction {
    var address: ConnectionAddress
    var authkey: [UInt8]?
    var report: Connection
    func callAsFunction(_: Void) throws {
        do {
            let connection = try Client(address, authkey: authkey, timeout: 10)
            try connection.send("connected")
            try report.send("ok")
        } catch {
            try report.send("\(type(of: error)): \(error)")
        }
    }
}

/// Echoes one value on a connection it was handed.
struct EchoOnce: ParallelFunction {
    var connection: Connection
    func callAsFunction(_: Void) throws {
        try connection.send(try connection.recv(String.self) + " back")
    }
}

/// `Listener` and `Client` (Python's `multiprocessing.connection`): the HMAC handshake, time
/// limits, closing, addresses and the errors a caller can act on.
final class ListenerTests: XCTestCase {
    private func hex(_ bytes: [UInt8]) -> String { bytes.map { String(format: "%02x", $0) }.joined() }

    /// FIPS 180-4's and RFC 4231's vectors.
    func testSHA256AndHMACMatchThePublishedVectors() {
        XCTAssertEqual(hex(SHA256.hash([])), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        XCTAssertEqual(hex(SHA256.hash(Array("abc".utf8))), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        XCTAssertEqual(
            hex(SHA256.hash(Array("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8))),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
        XCTAssertEqual(
            hex(SHA256.hash([UInt8](repeating: UInt8(ascii: "a"), count: 1_000_000))),
            "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
        XCTAssertEqual(
            hex(SHA256.authenticationCode(key: [UInt8](repeating: 0x0b, count: 20), message: Array("Hi There".utf8))),
            "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7")
        XCTAssertEqual(
            hex(SHA256.authenticationCode(key: Array("Jefe".utf8), message: Array("what do ya want for nothing?".utf8))),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
        // A key longer than a block is hashed first (RFC 4231 test case 6).
        XCTAssertEqual(
            hex(
                SHA256.authenticationCode(
                    key: [UInt8](repeating: 0xaa, count: 131),
                    message: Array("Test Using Larger Than Block-Size Key - Hash Key First".utf8))),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54")
    }

    /// The same key on both sides: connected, on both families and every start method; another
    /// key: both sides fail with `AuthenticationError`, at once.
    func testTheHandshakeLetsInOnlyTheSameKey() throws {
        let key = Array("the key".utf8)
        for method in [StartMethod.fork, .spawn, .forkserver] {
            for family in ConnectionAddress.families {
                let label = "\(method) \(family)"
                let listener = try Listener(family: family, authkey: key)
                let (report, childEnd) = try Pipe()
                let child = Multiprocessing.Process(
                    target: ConnectAndReport(address: listener.address, authkey: key, report: childEnd), startMethod: method)
                try child.start()
                let connection = try listener.accept(timeout: 30)
                XCTAssertEqual(try connection.recv(String.self), "connected", label)
                XCTAssertEqual(try report.recv(String.self), "ok", label)
                XCTAssertTrue(try child.join(timeout: 30), label)

                let wrong = Multiprocessing.Process(
                    target: ConnectAndReport(address: listener.address, authkey: Array("another".utf8), report: childEnd),
                    startMethod: method)
                try wrong.start()
                let start = monotonicNanoseconds()
                XCTAssertThrowsError(try listener.accept(timeout: 30), label) { error in
                    XCTAssertTrue(error is AuthenticationError, "\(label): \(error)")
                }
                XCTAssertLessThan(monotonicNanoseconds() - start, 10_000_000_000, label)
                XCTAssertTrue(try report.recv(String.self).hasPrefix("AuthenticationError"), label)
                XCTAssertTrue(try wrong.join(timeout: 30), label)
                listener.close()
            }
        }
    }

    /// A peer that connects and says nothing (or has no key) fails the handshake within the
    /// accept's time limit instead of holding `accept` for ever.
    func testASilentPeerFailsTheHandshakeInTime() throws {
        let listener = try Listener(authkey: Array("k".utf8))
        defer { listener.close() }
        let silent = try Client(listener.address) // no key: it never answers the challenge
        defer { silent.close() }
        let start = monotonicNanoseconds()
        XCTAssertThrowsError(try listener.accept(timeout: 0.5)) { error in
            XCTAssertTrue(error is AuthenticationError, "\(error)")
            XCTAssertTrue("\(error)".contains("did not send the answer to its challenge in time"), "\(error)")
        }
        let elapsed = Double(monotonicNanoseconds() - start) / 1e9
        XCTAssertGreaterThanOrEqual(elapsed, 0.95, "the handshake has at least 1 s")
        XCTAssertLessThan(elapsed, 5)
    }

    /// A stranger cannot make a listener with a key allocate what it announces, nor hold
    /// `accept` by sending part of a message (found in review: the handshake read with the
    /// ordinary `recvBytes`, which believed any length up to 1 TiB and waited for it whole).
    func testAStrangerCannotMakeTheHandshakeAllocateOrWait() throws {
        let listener = try Listener(family: .tcp, authkey: Array("k".utf8))
        defer { listener.close() }
        let announced: [UInt8] = withUnsafeBytes(of: UInt64(1 << 40).littleEndian) { Array($0) }
        let cases: [(String, [UInt8])] = [("a 1 TiB header", announced), ("one byte", [7])]
        for (label, bytes) in cases {
            let stranger = try Client(listener.address)
            defer { stranger.close() }
            // The listener's challenge arrives first; the stranger answers with `bytes`, raw.
            XCTAssertEqual(bytes.withUnsafeBytes { Glibc.write(stranger.fileDescriptor, $0.baseAddress, $0.count) }, bytes.count)
            let start = monotonicNanoseconds()
            XCTAssertThrowsError(try listener.accept(timeout: 0.5), label) { error in
                XCTAssertTrue(error is AuthenticationError, "\(label): \(error)")
            }
            XCTAssertLessThan(Double(monotonicNanoseconds() - start) / 1e9, 5, label)
        }
    }

    /// The handshake with a client that came gets its own time (at least 1 s), not what the
    /// wait for it left: `accept(timeout: 0)` lets in a client with the key that is there.
    func testAcceptWithNoTimeLeftStillLetsInAClientWithTheKey() throws {
        let key = Array("the key".utf8)
        let listener = try Listener(authkey: key)
        defer { listener.close() }
        let (report, childEnd) = try Pipe()
        let child = Multiprocessing.Process(target: ConnectAndReport(address: listener.address, authkey: key, report: childEnd))
        try child.start()
        usleep(300_000) // connected, waiting for the challenge
        let connection = try listener.accept(timeout: 0)
        XCTAssertEqual(try connection.recv(String.self), "connected")
        XCTAssertEqual(try report.recv(String.self), "ok")
        XCTAssertTrue(try child.join(timeout: 30))
    }

    /// `Client(timeout:)` to a listener that does not accept (its backlog full) throws
    /// `.timedOut` in time instead of waiting in `connect`.
    func testConnectingToAListenerThatDoesNotAcceptTimesOut() throws {
        let listener = try Listener(backlog: 0)
        defer { listener.close() }
        var queued: [Connection] = []
        var outcome: (any Error)?
        for _ in 0..<20 where outcome == nil {
            let start = monotonicNanoseconds()
            do {
                queued.append(try Client(listener.address, timeout: 0.3))
            } catch {
                outcome = error
            }
            XCTAssertLessThan(Double(monotonicNanoseconds() - start) / 1e9, 3)
        }
        XCTAssertEqual((outcome as? ConnectionError)?.code, .timedOut, "\(String(describing: outcome)) after \(queued.count) queued")
    }

    func testAcceptWithATimeLimitAndNoClientTimesOut() throws {
        let listener = try Listener(family: .tcp)
        defer { listener.close() }
        let start = monotonicNanoseconds()
        XCTAssertThrowsError(try listener.accept(timeout: 0.3)) { error in
            XCTAssertEqual((error as? ConnectionError)?.code, .timedOut, "\(error)")
        }
        let elapsed = Double(monotonicNanoseconds() - start) / 1e9
        XCTAssertGreaterThanOrEqual(elapsed, 0.29)
        XCTAssertLessThan(elapsed, 3)
    }

    /// `close()` from another thread ends a waiting `accept` with `.closed`.
    func testClosingWakesAWaitingAccept() throws {
        let listener = try Listener()
        let outcome = Mutex<(any Error)?>(nil)
        let done = DispatchSemaphore(value: 0)
        Thread.detachNewThread {
            do {
                _ = try listener.accept()
            } catch {
                outcome.withLock { $0 = error }
            }
            done.signal()
        }
        usleep(200_000)
        listener.close()
        XCTAssertEqual(done.wait(timeout: .now() + 10), .success, "accept still waits after close()")
        XCTAssertEqual((outcome.withLock { $0 } as? ConnectionError)?.code, .closed)
    }

    /// The socket (and the directory a default listener made) go with `close()`; a path too
    /// long for a Unix socket is refused clearly; connecting where nothing listens fails with
    /// the system's reason.
    func testAddressesAndTheirErrors() throws {
        let listener = try Listener()
        guard case .unix(let path) = listener.address else { return XCTFail("\(listener.address)") }
        XCTAssertTrue(FileManager.default.fileExists(atPath: path))
        listener.close()
        XCTAssertFalse(FileManager.default.fileExists(atPath: path))
        XCTAssertFalse(FileManager.default.fileExists(atPath: (path as NSString).deletingLastPathComponent))

        let chosen = FileManager.default.temporaryDirectory.appendingPathComponent("swiftmp-listener-test-\(getpid())").path
        let named = try Listener(address: .unix(path: chosen))
        XCTAssertEqual(named.address, .unix(path: chosen))
        named.close()
        XCTAssertFalse(FileManager.default.fileExists(atPath: chosen))

        XCTAssertThrowsError(try Listener(address: .unix(path: "/tmp/" + String(repeating: "x", count: 200)))) { error in
            XCTAssertEqual((error as? ConnectionError)?.code, .invalidArgument, "\(error)")
        }
        XCTAssertThrowsError(try Listener(address: .unix(path: "/tmp/x"), family: .tcp)) { error in
            XCTAssertEqual((error as? ConnectionError)?.code, .invalidArgument, "\(error)")
        }
        XCTAssertThrowsError(try Client(.unix(path: chosen))) { error in
            XCTAssertEqual((error as? SystemError)?.errno, ENOENT, "\(error)")
        }
        let tcp = try Listener(family: .tcp)
        guard case .tcp(let host, let port) = tcp.address else { return XCTFail("\(tcp.address)") }
        XCTAssertEqual(host, "127.0.0.1")
        XCTAssertGreaterThan(port, 0)
        let client = try Client(.tcp(host: "localhost", port: port))
        _ = try tcp.accept(timeout: 10)
        guard case .tcp(let peerHost, let peerPort)? = tcp.lastAccepted else { return XCTFail("\(String(describing: tcp.lastAccepted))") }
        XCTAssertEqual(peerHost, "127.0.0.1")
        XCTAssertGreaterThan(peerPort, 0)
        client.close()
        tcp.close()
        XCTAssertThrowsError(try Client(.tcp(host: "127.0.0.1", port: port))) { error in
            XCTAssertEqual((error as? SystemError)?.errno, ECONNREFUSED, "\(error)")
        }
    }

    /// An accepted connection is a `Connection` like a pipe end: it travels to a child.
    func testAnAcceptedConnectionCanBeHandedToAChild() throws {
        for method in [StartMethod.fork, .spawn, .forkserver] {
            let listener = try Listener(family: .tcp)
            let client = try Client(listener.address)
            let accepted = try listener.accept(timeout: 10)
            let child = Multiprocessing.Process(target: EchoOnce(connection: accepted), startMethod: method)
            try child.start()
            accepted.close()
            try client.send("hello")
            XCTAssertEqual(try client.recv(String.self), "hello back", "\(method)")
            XCTAssertTrue(try child.join(timeout: 30), "\(method)")
            client.close()
            listener.close()
        }
    }
}
