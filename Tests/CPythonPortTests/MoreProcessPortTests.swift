// More ports of CPython's process tests (Lib/test/_test_multiprocessing.py: _TestProcess,
// _TestAtExit, TestStartMethod), beyond ProcessPortTests and MoreManagerProcessPortTests; on
// every start method.
//
// CPython test                                   → Swift test (MoreProcessPortTests)
// _TestProcess.test_process_mainthread_native_id → testChildsMainThreadHasItsOwnNativeID
// _TestAtExit.test_atexit                        → testAtexitHandlersOfAChildRunOnlyIfItCallsExit
//                                                  (documented difference)
// _TestProcess.check_forkserver_death(SIGINT)
//   (test_forkserver_sigint)                     → Port3DifferenceTests.testForkServerIgnoresSIGINT
// TestStartMethod.test_context / test_set_get
//   (each start method's child runs and reports) → testEveryStartMethodRunsAChild
//
// Not applicable: test_set_executable, test_args_argument (no pickling of arguments),
// TestStartMethod.test_mixed_startmethod (every object works with every start method),
// TestFlags (no interpreter flags), TestNoForkBomb (no `__main__` re-import).
//
// Differences from Python, checked as documented (README, "atexit handlers do not run in
// children"): a child ends with `_exit` once its target returns, so handlers its target
// registered do not run (Python runs them); a target that calls `exit()` runs them.

import Dispatch
import Foundation
import Multiprocessing
import XCTest

#if canImport(Glibc)
import Glibc
#endif

/// The calling thread's native id (`gettid`), read from /proc/thread-self (→ "pid/task/tid").
func port3ThreadID() -> Int32 {
    var buffer = [CChar](repeating: 0, count: 64)
    let n = readlink("/proc/thread-self", &buffer, buffer.count - 1)
    guard n > 0 else { return -1 }
    let link = String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    return link.split(separator: "/").last.flatMap { Int32($0) } ?? -1
}

/// Reports the native id (`gettid`) of the thread that runs the target, and the pid.
struct Port3ReportThreadID: ParallelFunction {
    var queue: Queue<[Int32]>
    func callAsFunction(_: Void) throws {
        try queue.put([port3ThreadID(), getpid()])
    }
}

/// Where the atexit handler of `Port3RegisterAtexit` writes.
nonisolated(unsafe) var port3AtexitPath: [CChar] = []

/// CPython's `_write_file_at_exit`: registers a handler that writes "deadbeef" to `path`;
/// then returns, or calls `exit(0)` itself.
struct Port3RegisterAtexit: ParallelFunction {
    var path: String
    var callExit: Bool
    func callAsFunction(_: Void) throws {
        port3AtexitPath = Array(path.utf8CString)
        atexit {
            guard let file = fopen(port3AtexitPath, "w") else { return }
            fputs("deadbeef", file)
            fclose(file)
        }
        if callExit { exit(0) }
    }
}

/// CPython's `_check_context`: reports that it ran, with its pid and parent's pid.
struct Port3ReportParent: ParallelFunction {
    var connection: Connection
    func callAsFunction(_: Void) throws {
        try connection.send([getpid(), Multiprocessing.parentProcess?.pid ?? -1])
        connection.close()
    }
}

final class MoreProcessPortTests: PortTestCase {
    /// test_process_mainthread_native_id: the child's target runs on a thread whose native
    /// id is not this process's main thread's, and the child is the process it says.
    func testChildsMainThreadHasItsOwnNativeID() throws {
        let mainThreadID = getpid() // on Linux the main thread's tid is the pid
        try forEachMethod { method in
            let queue = try Queue<[Int32]>()
            let p = try started(Port3ReportThreadID(queue: queue), method)
            let reported = try queue.get(timeout: 30)
            try joinOrKill(p)
            XCTAssertEqual(reported.count, 2)
            XCTAssertGreaterThan(reported[0], 0, "\(method): no thread id")
            XCTAssertNotEqual(reported[0], mainThreadID, "\(method)")
            XCTAssertNotEqual(reported[0], port3ThreadID(), "\(method)")
            XCTAssertEqual(reported[1], p.pid, "\(method)")
        }
    }

    /// _TestAtExit.test_atexit, as documented here: a handler a child's target registers
    /// does not run when the target returns (Python's does: "deadbeef" is written); it runs
    /// when the target calls exit() itself (spawn and forkserver children, whose inherited
    /// handlers are the library's own: a forked child would also run its parent's).
    func testAtexitHandlersOfAChildRunOnlyIfItCallsExit() throws {
        var template = Array("/tmp/swiftmp-port3-XXXXXX".utf8CString)
        let directory = template.withUnsafeMutableBufferPointer { String(cString: mkdtemp($0.baseAddress!)) }
        defer { _ = try? FileManager.default.removeItem(atPath: directory) }
        try forEachMethod { method in
            let returned = directory + "/returned-\(method)"
            let p = try started(Port3RegisterAtexit(path: returned, callExit: false), method)
            try joinOrKill(p)
            XCTAssertEqual(p.exitCode, 0, "\(method)")
            XCTAssertNil(readTextFile(returned), "\(method): an atexit handler ran after the target returned")
            guard method != .fork else { return }
            let exited = directory + "/exited-\(method)"
            let q = try started(Port3RegisterAtexit(path: exited, callExit: true), method)
            try joinOrKill(q)
            XCTAssertEqual(q.exitCode, 0, "\(method)")
            XCTAssertEqual(readTextFile(exited), "deadbeef", "\(method): the handler did not run at exit()")
        }
    }

    /// TestStartMethod.test_context / check_context: a child started with each start method
    /// (and `.automatic`) runs and reports back through a one-way pipe; its parent is this
    /// process.
    func testEveryStartMethodRunsAChild() throws {
        try forEachMethod(PortTestCase.methods + [.automatic]) { method in
            let (r, w) = try Pipe(duplex: false)
            let p = try started(Port3ReportParent(connection: w), method)
            w.close()
            let reported = try r.recv([Int32].self)
            r.close()
            try joinOrKill(p)
            XCTAssertEqual(reported, [p.pid ?? 0, getpid()], "\(method)")
            XCTAssertEqual(p.exitCode, 0, "\(method)")
            XCTAssertEqual(p.startMethod, method, "\(method)")
        }
        XCTAssertEqual(Set(StartMethod.allCases), [.fork, .forkserver, .spawn, .automatic])
    }
}
