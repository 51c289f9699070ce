// Round 22: CPython's _TestPool.test_map_unplicklable (Issue #19425: "failure to pickle should
// not cause a hang": an argument that cannot be pickled makes the call raise) and
// _TestConnection.test_context (a closed connection: OSError), with what cannot travel here:
// a Connection in a pool function (Connections reach Process children only), and a closed
// Connection in a Process target.
//
// CPython test                                        → Swift test (Port22EncodingPortTests)
// _TestPool.test_map_unplicklable (a function value
//   holding a Connection: the call throws, no hang;
//   the pool goes on)                                  → testAPoolFunctionHoldingAConnectionIsRefused
// _TestConnection.test_context (a closed end given to
//   a child: start throws or the child sees it closed) → testAClosedConnectionInATarget

import Foundation
import Multiprocessing
import XCTest

#if canImport(Glibc)
import Glibc
#endif

struct Port22SendThrough: ParallelFunction {
    var connection: Connection
    func callAsFunction(_ x: Int) throws -> Int {
        try connection.send(x)
        return x
    }
}

struct Port22UseClosed: ParallelFunction {
    var connection: Connection
    var report: Queue<String>
    func callAsFunction(_: Void) throws {
        do {
            try connection.send(1)
            try report.put("sent")
        } catch {
            try report.put("threw \(type(of: error))")
        }
    }
}

final class Port22EncodingPortTests: PortTestCase {
    func testAPoolFunctionHoldingAConnectionIsRefused() throws {
        try forEachMethod { method in
            let pool = try Pool(processes: 2, startMethod: method)
            defer { pool.terminate(); try? pool.join() }
            let (_, b) = try Pipe()
            let thread = TestThread {
                do {
                    _ = try pool.map(Port22SendThrough(connection: b), [1, 2, 3])
                    throw ChildCheckFailed("map of a function holding a Connection returned")
                } catch let error as ChildCheckFailed {
                    throw error
                } catch {
                    print("\(method): map threw \(error)")
                }
            }
            XCTAssertTrue(try thread.wait(30), "\(method): map with a Connection in the function hung")
            XCTAssertEqual(try pool.map(Sqr(), [1, 2, 3]), [1, 4, 9], "\(method): the pool after the refusal")
        }
    }

    func testAClosedConnectionInATarget() throws {
        try forEachMethod { method in
            let (a, b) = try Pipe()
            b.close()
            let report = try Queue<String>()
            let p = Multiprocessing.Process(target: Port22UseClosed(connection: b, report: report), startMethod: method)
            do {
                try p.start()
            } catch {
                print("\(method): start threw \(error)")
                return
            }
            try joinOrKill(p)
            let outcome = try? report.get(timeout: 5)
            print("\(method): child exit \(String(describing: p.exitCode)), reported \(String(describing: outcome))")
            XCTAssertNotEqual(outcome, "sent", "\(method): a closed end sent in the child")
            XCTAssertFalse(try a.poll(timeout: 0.2), "\(method): a message arrived through a closed end")
        }
    }
}
