import XCTest

@testable import Multiprocessing

#if canImport(Glibc)
import Glibc
#endif

final class PipeTests: XCTestCase {
    func testSendRecvPollInOneProcess() throws {
        let (a, b) = try Pipe()
        XCTAssertFalse(try b.poll())
        try a.send([1.5, 2.5])
        XCTAssertTrue(try b.poll(timeout: 1))
        XCTAssertEqual(try b.recv([Double].self), [1.5, 2.5])
        try b.sendBytes([1, 2, 3])
        XCTAssertEqual(try a.recvBytes(), [1, 2, 3])
        let start = monotonicNanoseconds()
        XCTAssertFalse(try a.poll(timeout: 0.05))
        XCTAssertGreaterThan(monotonicNanoseconds() - start, 40_000_000)
    }

    func testEndOfFileNeverHangs() throws {
        let (a, b) = try Pipe()
        b.close()
        XCTAssertTrue(try a.poll(timeout: 1), "a closed peer polls readable")
        XCTAssertThrowsError(try a.recv(Int.self)) { XCTAssertEqual(($0 as? ConnectionError)?.code, .endOfFile) }
        XCTAssertThrowsError(try a.send(1)) { XCTAssertEqual(($0 as? ConnectionError)?.code, .brokenPipe) }
        XCTAssertThrowsError(try b.send(1)) { XCTAssertEqual(($0 as? ConnectionError)?.code, .closed) }
    }

    func testOneWayPipe() throws {
        let (reader, writer) = try Pipe(duplex: false)
        try writer.send("x")
        XCTAssertEqual(try reader.recv(String.self), "x")
        XCTAssertThrowsError(try reader.send("y")) { XCTAssertEqual(($0 as? ConnectionError)?.code, .wrongDirection) }
        XCTAssertThrowsError(try writer.recv(String.self)) { XCTAssertEqual(($0 as? ConnectionError)?.code, .wrongDirection) }
    }

    func testConnectionPassedToAProcessOnEveryStartMethod() throws {
        for method in ProcessTests.methods {
            let (mine, theirs) = try Pipe()
            let child = Process(target: Echo(connection: theirs), startMethod: method)
            try child.start()
            theirs.close()
            for word in ["hello", "swift", "multiprocessing"] {
                try mine.send(word)
                XCTAssertEqual(try mine.recv(String.self), String(word.reversed()), "\(method)")
            }
            try mine.send("stop")
            try child.join(timeout: 20)
            XCTAssertEqual(child.exitCode, 0, "\(method)")
            // The child is gone and our copy of its end is closed: end of file, no hang.
            XCTAssertThrowsError(try mine.recv(String.self)) { XCTAssertEqual(($0 as? ConnectionError)?.code, .endOfFile) }
        }
    }

    func testConnectionCannotGoThroughAQueue() throws {
        let (a, _) = try Pipe()
        let queue = try Queue<Connection>()
        XCTAssertThrowsError(try queue.put(a)) { error in
            XCTAssertTrue("\(error)".contains("Process target"), "\(error)")
        }
    }

    func testWaitOnConnectionsAndQueues() throws {
        let (a1, b1) = try Pipe()
        let (a2, b2) = try Pipe()
        let queue = try Queue<Int>()
        XCTAssertTrue(Multiprocessing.wait(on: [a1, a2], timeout: 0.05).isEmpty)
        let sender = Process(target: SendOnce(connection: b2, text: "two"))
        try sender.start()
        let ready = Multiprocessing.wait(on: [a1, a2], timeout: 20)
        XCTAssertEqual(ready.count, 1)
        XCTAssertTrue(ready.first === a2)
        XCTAssertEqual(try a2.recv(String.self), "two")
        try sender.join(timeout: 20)

        let mixed: [any Waitable] = [a1, queue]
        XCTAssertTrue(Multiprocessing.wait(on: mixed, timeout: 0.02).isEmpty)
        try queue.put(5)
        let readyMixed = Multiprocessing.wait(on: mixed, timeout: 5)
        XCTAssertEqual(readyMixed.count, 1)
        XCTAssertTrue(readyMixed.first === queue)
        try b1.send(1)
        XCTAssertEqual(Multiprocessing.wait(on: mixed, timeout: 5).count, 2)
        _ = b2
    }
}
