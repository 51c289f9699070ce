// Ports of CPython's Listener/Client tests (Lib/test/_test_multiprocessing.py: _TestListener,
// _TestListenerClient, TestTimeouts), the client in a child on every start method.
//
// CPython test                              → Swift test (ListenerPortTests)
// _TestListener.test_multiple_bind          → testASecondListenerAtTheSameAddressIsRefused
// _TestListener.test_context                → testAcceptAfterCloseIsRefused
// _TestListenerClient.test_listener_client  → testAClientInAChildIsAccepted
// _TestListenerClient.test_issue14725       → testAClientThatAlreadyLeftIsStillAccepted
// _TestListenerClient.test_issue16955       → testPollSeesWhatTheAcceptedEndSent
// TestTimeouts.test_timeout                 → testAClientThatComesLateIsAccepted
//
// Differences from Python, checked as documented: misuse is `ConnectionError` with a code
// (`.closed` for accept on a closed listener, Python's OSError); a bind conflict is
// `SystemError` (`EADDRINUSE`, Python's OSError). Python's socket default timeout (which
// TestTimeouts sets to 0.1 s) has no counterpart: `accept` and `Client` take their own.

import Multiprocessing
import XCTest

#if canImport(Glibc)
import Glibc
#endif

/// CPython's `_TestListenerClient._test`: connects, sends "hello", closes.
struct SayHello: ParallelFunction {
    var address: ConnectionAddress
    var authkey: [UInt8]?
    func callAsFunction(_: Void) throws {
        let connection = try Client(address, authkey: authkey)
        try connection.send("hello")
        connection.close()
    }
}

/// CPython's `TestTimeouts._test_timeout`: after a second, sends 123 on the pipe, then
/// connects and sends 456.
struct SendThenConnectLate: ParallelFunction {
    var child: Connection
    var address: ConnectionAddress
    func callAsFunction(_: Void) throws {
        usleep(1_000_000)
        try child.send(123)
        child.close()
        let connection = try Client(address)
        try connection.send(456)
        connection.close()
    }
}

final class ListenerPortTests: PortTestCase {
    /// test_multiple_bind: a second listener at a listener's address fails (OSError there).
    func testASecondListenerAtTheSameAddressIsRefused() throws {
        for family in ConnectionAddress.families {
            let listener = try Listener(family: family)
            defer { listener.close() }
            XCTAssertThrowsError(try Listener(address: listener.address, family: family), "\(family)") { error in
                XCTAssertEqual((error as? SystemError)?.errno, EADDRINUSE, "\(family): \(error)")
            }
        }
    }

    /// test_context: a listener, a client and the accepted end talk; after the listener is
    /// closed, accept is refused.
    func testAcceptAfterCloseIsRefused() throws {
        let listener = try Listener()
        do {
            let client = try Client(listener.address)
            let accepted = try listener.accept()
            try client.send(1729)
            XCTAssertEqual(try accepted.recv(Int.self), 1729)
            client.close()
            accepted.close()
        }
        listener.close()
        XCTAssertThrowsError(try listener.accept()) { error in
            XCTAssertEqual((error as? ConnectionError)?.code, .closed, "\(error)")
        }
    }

    /// test_listener_client: for each family, a child connects and sends "hello".
    func testAClientInAChildIsAccepted() throws {
        try forEachMethod { method in
            for family in ConnectionAddress.families {
                let listener = try Listener(family: family)
                let p = try started(SayHello(address: listener.address), daemon: true, method)
                let connection = try listener.accept(timeout: 30)
                XCTAssertEqual(try connection.recv(String.self), "hello", "\(method) \(family)")
                try joinOrKill(p)
                XCTAssertEqual(p.exitCode, 0, "\(method) \(family)")
                listener.close()
            }
        }
    }

    /// test_issue14725: the client connected, wrote and closed a second before accept.
    func testAClientThatAlreadyLeftIsStillAccepted() throws {
        try forEachMethod { method in
            let listener = try Listener()
            let p = try started(SayHello(address: listener.address), daemon: true, method)
            usleep(1_000_000)
            let connection = try listener.accept(timeout: 30)
            XCTAssertEqual(try connection.recv(String.self), "hello", "\(method)")
            connection.close()
            try joinOrKill(p)
            listener.close()
        }
    }

    /// test_issue16955: what the accepted end sends is seen by the client's poll.
    func testPollSeesWhatTheAcceptedEndSent() throws {
        for family in ConnectionAddress.families {
            let listener = try Listener(family: family)
            let client = try Client(listener.address)
            let accepted = try listener.accept()
            try accepted.sendBytes(Array("hello".utf8))
            XCTAssertTrue(try client.poll(timeout: 1), "\(family)")
            accepted.close()
            client.close()
            listener.close()
        }
    }

    /// TestTimeouts.test_timeout: a TCP client that comes a second late is accepted.
    func testAClientThatComesLateIsAccepted() throws {
        try forEachMethod { method in
            let (parent, child) = try Pipe(duplex: true)
            let listener = try Listener(family: .tcp)
            let p = try started(SendThenConnectLate(child: child, address: listener.address), method)
            child.close()
            XCTAssertEqual(try parent.recv(Int.self), 123, "\(method)")
            parent.close()
            let connection = try listener.accept(timeout: 30)
            XCTAssertEqual(try connection.recv(Int.self), 456, "\(method)")
            connection.close()
            listener.close()
            try joinOrKill(p)
        }
    }
}
