import XCTest

@testable import Multiprocessing

#if canImport(Glibc)
import Glibc
#endif

/// A worker that crashes (segfault, `fatalError`) gives a `WorkerDied` whose crash report
/// says where: the task's function, in the worker's own backtrace.
final class CrashReportTests: XCTestCase {
    func testCrashReportNamesTheCrashingFunction() throws {
        // Every start method, both kinds of crash (a symbolicated report takes ~0.5 s).
        for (method, way) in [(StartMethod.fork, DieOn.Way.segfault), (.forkserver, .fatal), (.spawn, .segfault)] {
            do {
                try Pool.with(processes: 2, startMethod: method, backend: .local) { pool in
                    XCTAssertThrowsError(try pool.map(DieOn(victim: 3, way: way), 0..<6, chunkSize: 1)) { error in
                        guard let died = error as? WorkerDied else { return XCTFail("\(method) \(way): \(error)") }
                        XCTAssertEqual(died.inputIndex, 3, "\(method) \(way)")
                        guard let report = died.crashReport else { return XCTFail("\(method) \(way): no crash report: \(died)") }
                        XCTAssertTrue(report.contains("DieOn.callAsFunction"), "\(method) \(way): \(report)")
                        XCTAssertTrue("\(died)".contains("DieOn.callAsFunction"), "\(method) \(way): \(died)")
                        XCTAssertFalse("\(died)".contains("Registers:"), "the description keeps the frames only: \(died)")
                    }
                    // The pool goes on; a worker killed from outside has no report.
                    XCTAssertThrowsError(try pool.map(DieOn(victim: 1, way: .sigkill), 0..<3, chunkSize: 1)) { error in
                        XCTAssertNil((error as? WorkerDied)?.crashReport, "\(method): \(error)")
                    }
                }
            }
        }
        var status = stat()
        XCTAssertNotEqual(
            lstat(CrashReports.directory(parent: getpid()), &status), 0,
            "the reports' directory is gone once the pools have ended")
    }

    /// A crash signal the task sends itself (`raise(SIGSEGV)`, `kill(getpid(), SIGBUS)`) is not
    /// a fault that happens again when the handlers return: the worker must still die of it
    /// (as in Python), not return the input's result as if nothing happened.
    func testASelfSentCrashSignalKillsTheWorker() throws {
        for method in [StartMethod.fork, .spawn] {
            try Pool.with(processes: 1, startMethod: method, backend: .local) { pool in
                XCTAssertThrowsError(try pool.map(DieOn(victim: 1, way: .raiseSegv), 0..<3, chunkSize: 1)) { error in
                    guard let died = error as? WorkerDied else { return XCTFail("\(method): \(error)") }
                    XCTAssertEqual(died.inputIndex, 1, "\(method)")
                    XCTAssertEqual(died.signal, SIGSEGV, "\(method)")
                    XCTAssertNotNil(died.crashReport, "\(method): the report of its own crash")
                }
                // The replacement, and again: every such signal costs its input.
                XCTAssertThrowsError(try pool.map(DieOn(victim: 0, way: .raiseSegv), 0..<2, chunkSize: 1)) { error in
                    XCTAssertEqual((error as? WorkerDied)?.signal, SIGSEGV, "\(method): \(error)")
                }
                XCTAssertEqual(try pool.map(DieOn(victim: -1, way: .raiseSegv), 0..<3), [0, 1, 2])
            }
        }
    }

    /// A pool terminated while a worker writes its crash report leaves no `swift-backtrace`
    /// process behind: killed in the middle of its report, the worker left its backtracer
    /// waiting for ever (an orphan that outlived the pool, holding the worker's descriptors).
    func testTerminatingDuringACrashReportLeavesNoBacktracerBehind() throws {
        for method in [StartMethod.fork, .spawn, .forkserver] {
            try terminateDuringACrashReport(method)
        }
    }

    func terminateDuringACrashReport(_ method: StartMethod) throws {
        let pool = try Pool(processes: 1, startMethod: method, backend: .local)
        let pid = try pool.apply(WorkerPID(), 0)
        let report = CrashReports.file(parent: getpid(), worker: pid)
        _ = try pool.applyAsync(DieOn(victim: 0, way: .fatal), 0)
        // The worker makes its report's file when it crashes, then starts its backtracer.
        let end = monotonicNanoseconds() + 20_000_000_000
        while access(report, F_OK) != 0 && monotonicNanoseconds() < end { usleep(1_000) }
        XCTAssertEqual(access(report, F_OK), 0, "the worker crashed")
        usleep(20_000)
        pool.terminate()
        try pool.join()
        // A backtracer left waiting stays for ever; one that is ending goes within moments.
        var left = Self.backtracers(writingTo: report)
        let settled = monotonicNanoseconds() + 2_000_000_000
        while !left.isEmpty && monotonicNanoseconds() < settled {
            usleep(50_000)
            left = Self.backtracers(writingTo: report)
        }
        for orphan in left { kill(orphan, SIGKILL) }
        XCTAssertEqual(left, [], "\(method): swift-backtrace processes left writing to \(report)")
        unlink(report)
        rmdir(CrashReports.directory(parent: getpid()))
    }

    /// The `swift-backtrace` processes whose standard output is `path`.
    static func backtracers(writingTo path: String) -> [pid_t] {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return entries.compactMap { Int32($0) }.filter { pid in
            let comm = (try? String(contentsOfFile: "/proc/\(pid)/comm", encoding: .utf8)) ?? ""
            guard comm.hasPrefix("swift-backtrace") else { return false }
            let target = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/fd/1")) ?? ""
            return target.hasPrefix(path)
        }
    }

    func testWithoutSwiftsBacktracerTheReportHasTheRawFrames() throws {
        // The backtracer reads SWIFT_BACKTRACE at start-up: only a spawned worker sees this.
        setenv("SWIFT_BACKTRACE", "enable=no", 1)
        defer { unsetenv("SWIFT_BACKTRACE") }
        try Pool.with(processes: 1, startMethod: .spawn, backend: .local) { pool in
            XCTAssertThrowsError(try pool.map(DieOn(victim: 0, way: .segfault), [0])) { error in
                guard let report = (error as? WorkerDied)?.crashReport else { return XCTFail("no crash report: \(error)") }
                XCTAssertTrue(report.contains("[0x"), "return addresses: \(report)")
            }
        }
    }
}

/// Throws a `TracedError` for input `bad`, two calls deep.
struct ThrowsTraced: ParallelFunction {
    var bad: Int
    func callAsFunction(_ x: Int) throws -> Int {
        try check(x)
        return x
    }
    @inline(never)
    func check(_ x: Int) throws {
        if x == bad { throw TracedError(Boom(value: x)) }
    }
}

/// A `TracedError` thrown in a worker reaches the caller with where it was thrown.
final class TracedErrorTests: XCTestCase {
    func testRemoteErrorShowsWhereTheTaskThrew() throws {
        try Pool.with(processes: 2, backend: .local) { pool in
            XCTAssertThrowsError(try pool.map(ThrowsTraced(bad: 4), 0..<8, chunkSize: 2)) { error in
                guard let remote = error as? RemoteError else { return XCTFail("\(error)") }
                XCTAssertEqual(remote.inputIndex, 4)
                guard let trace = remote.backtrace else { return XCTFail("no backtrace: \(remote)") }
                XCTAssertTrue(trace.contains("ThrowsTraced.check"), trace)
                XCTAssertTrue(trace.contains("ThrowsTraced.callAsFunction"), trace)
                XCTAssertTrue(trace.contains("CrashReportTests.swift"), "file and line: \(trace)")
                XCTAssertFalse(trace.contains("WorkerRuntime"), "the pool's own frames are left out: \(trace)")
                XCTAssertTrue("\(remote)".contains("ThrowsTraced.check"), "printed with the error: \(remote)")
                XCTAssertTrue(remote.message.hasPrefix("MultiprocessingTests.Boom: "), remote.message)
            }
            // Other errors have none.
            XCTAssertThrowsError(try pool.map(ThrowOn(victims: [1]), 0..<3)) { error in
                XCTAssertNil((error as? RemoteError)?.backtrace, "\(error)")
            }
        }
    }
}
