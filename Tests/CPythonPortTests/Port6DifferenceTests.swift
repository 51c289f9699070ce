// Differences from Python found by the sixth round of ports of CPython's
// Lib/test/_test_multiprocessing.py, each fixed: every test failed before its fix.
//
// CPython test                                            → Swift test (Port6DifferenceTests)
// TestWait.test_wait_integer / _TestProcess.test_sentinel
//   (a sentinel that wait() reports ready belongs to a
//   process that has ended: exitcode set, not alive)       → testAProcessThatWaitReportsEndedHasItsExitCode
// _TestProcess.test_recursion (children of children) with
//   default names: Python's are 'Process-1:2' (its
//   _identity), unique in the tree                          → testDefaultNamesOfNestedChildrenAreUnique
// TestStartMethod.test_context / test_set_get (a child of
//   every start method runs alike; spawn.prepare() chdirs to
//   the parent's os.getcwd() for spawn and forkserver)      → testForkServerChildrenStartInTheParentsCurrentDirectory
// lock_tests EventTests.test_set_and_clear (gh-57711), with
//   _test_multiprocessing's 'manager' type: Manager().Event()
//   is a threading.Event in the server                     → testManagerEventSetThenClearWakesItsWaiters
// _TestQueue.test_put (after puts that raised Full and a
//   drain, empty() is true; a put that raised Full put
//   nothing), with items larger than the queue's buffer     → testAPutThatThrewFullLeavesTheQueueEmpty
// TestStdinBadfiledescriptor (a child's standard input:
//   BaseProcess._bootstrap closes sys.stdin and opens
//   os.devnull, pool workers included)                      → testChildrenDoNotReadTheParentsStandardInput
// TestStartMethod.test_context / test_set_get (children
//   alike on every start method; spawn.prepare() sets
//   sys.argv = the parent's for spawn and forkserver)       → testChildrenSeeTheParentsCommandLineArguments

import Foundation
import Multiprocessing
import XCTest

#if canImport(Glibc)
import Glibc
#endif

final class Port6DifferenceTests: PortTestCase {
    /// Python: a `.forkserver` child (a Process or a pool worker) is prepared with the
    /// parent's data, which holds `dir=os.getcwd()`, and `spawn.prepare()` chdirs there: it
    /// runs in the directory the parent is in when it starts the child, as `.fork` and
    /// `.spawn` children do. Before the fix a `.forkserver` child ran in the directory the
    /// fork server was started in.
    func testForkServerChildrenStartInTheParentsCurrentDirectory() throws {
        let original = FileManager.default.currentDirectoryPath
        let report = try Queue<String>()
        // The fork server runs (started here, in the original directory).
        try joinOrKill(try started(Port6ReportDirectory(report: report), .forkserver))
        XCTAssertEqual(try report.get(timeout: 10), original)
        let dir = NSTemporaryDirectory() + "port6-cwd-\(getpid())"
        XCTAssertEqual(mkdir(dir, 0o700), 0)
        XCTAssertEqual(chdir(dir), 0)
        defer {
            chdir(original)
            rmdir(dir)
        }
        let here = FileManager.default.currentDirectoryPath
        for method in PortTestCase.methods {
            try joinOrKill(try started(Port6ReportDirectory(report: report), method))
            XCTAssertEqual(try report.get(timeout: 10), here, "\(method): a Process child's working directory")
            try Pool.with(processes: 1, startMethod: method) { pool in
                XCTAssertEqual(try pool.apply(Port6WorkerDirectory(), 0), here, "\(method): a pool worker's working directory")
            }
        }
    }

    /// Python: every child (a Process or a pool worker, any start method) starts its target
    /// with `sys.stdin` closed and replaced by `os.devnull` (BaseProcess._bootstrap): a child
    /// that reads its standard input reads end of file, and the parent's input stays the
    /// parent's. Before the fix children kept the parent's descriptor 0 and took its input.
    func testChildrenDoNotReadTheParentsStandardInput() throws {
        let saved = dup(0)
        defer {
            dup2(saved, 0)
            close(saved)
        }
        for method in PortTestCase.methods {
            var ends: [Int32] = [0, 0]
            XCTAssertEqual(pipe(&ends), 0)
            dup2(ends[0], 0)
            close(ends[0])
            let line = "parent's input \(method)\n"
            _ = line.withCString { write(ends[1], $0, strlen($0)) }
            let report = try Queue<Int>()
            try joinOrKill(try started(Port6ReadStandardInput(report: report), method))
            XCTAssertEqual(try report.get(timeout: 10), 0, "\(method): a Process child read the parent's standard input")
            try Pool.with(processes: 1, startMethod: method) { pool in
                XCTAssertEqual(try pool.apply(Port6WorkerReadsStandardInput(), 0), 0, "\(method): a pool worker read the parent's standard input")
            }
            // What the parent should still find there.
            var buffer = [UInt8](repeating: 0, count: 256)
            _ = fcntl(0, F_SETFL, fcntl(0, F_GETFL) | O_NONBLOCK)
            let n = read(0, &buffer, buffer.count)
            XCTAssertEqual(n > 0 ? String(decoding: buffer[0..<n], as: UTF8.self) : "", line, "\(method): the parent's input")
            close(ends[1])
            dup2(saved, 0)
        }
    }

    /// Python: a `.spawn` or `.forkserver` child (a Process or a pool worker) gets the
    /// parent's `sys.argv` in its preparation data (`spawn.prepare()` sets it), so a target
    /// that reads the command line sees the program's arguments, as a `.fork` child does.
    /// Before the fix their `CommandLine.arguments` was the executable's path alone.
    func testChildrenSeeTheParentsCommandLineArguments() throws {
        // The runner passes no argument when it runs every test: then run this test alone in
        // a new test process, whose command line names it (children must see that).
        let arguments = CommandLine.arguments
        guard arguments.count > 1 else {
            let runner = Foundation.Process()
            runner.executableURL = URL(fileURLWithPath: "/proc/self/exe")
            runner.arguments = ["CPythonPortTests.Port6DifferenceTests/testChildrenSeeTheParentsCommandLineArguments"]
            let output = Foundation.Pipe()
            runner.standardOutput = output
            runner.standardError = output
            try runner.run()
            let transcript = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            runner.waitUntilExit()
            XCTAssertEqual(runner.terminationStatus, 0, transcript)
            XCTAssertTrue(transcript.contains("Executed 1 test, with 0 failures"), transcript)
            return
        }
        for method in PortTestCase.methods {
            let report = try Queue<[String]>()
            try joinOrKill(try started(Port6ReportArguments(report: report), method))
            XCTAssertEqual(try report.get(timeout: 10), arguments, "\(method): a Process child's CommandLine.arguments")
            try Pool.with(processes: 1, startMethod: method) { pool in
                XCTAssertEqual(try pool.apply(Port6WorkerArguments(), 0), arguments, "\(method): a pool worker's CommandLine.arguments")
            }
        }
    }

    /// Python: a `put` that raises `queue.Full` put nothing (it timed out on the queue's
    /// semaphore before the item was handed to the feeder), so the queue is as before:
    /// `empty()` true, its reader not ready for `wait()`. Before the fix a put of an item
    /// larger than the buffer that timed out in its middle left its first part in the ring
    /// until a consumer's next `get` dropped it: `isEmpty` was false and `wait(on:)` reported
    /// the queue ready while `get` found no item (`while !q.isEmpty { try q.get() }` hung).
    func testAPutThatThrewFullLeavesTheQueueEmpty() throws {
        let queue = try Queue<[UInt8]>(maxSize: 4, bufferSize: 4096)
        XCTAssertThrowsError(try queue.put([UInt8](repeating: 1, count: 100_000), timeout: 0.2)) {
            XCTAssertTrue($0 is Full, "\($0)")
        }
        XCTAssertEqual(queue.count, 0)
        XCTAssertTrue(queue.isEmpty, "isEmpty is false after the only put threw Full")
        let (ready, elapsed) = timed { Multiprocessing.wait(on: [queue], timeout: 0.3) }
        XCTAssertTrue(ready.isEmpty, "wait() reported ready a queue without an item (after \(elapsed) s)")
        // The drain idiom, bounded here: each get it makes because isEmpty is false finds nothing.
        var fruitless = 0
        for _ in 0..<3 where !queue.isEmpty {
            do { _ = try queue.get(timeout: 0.2) } catch is Empty { fruitless += 1 }
        }
        XCTAssertEqual(fruitless, 0, "gets made because isEmpty was false found no item")
        try queue.put([5])
        XCTAssertEqual(try queue.get(timeout: 1), [5])
    }

    /// Python: once `wait([p.sentinel])` returns it, the child has ended: `p.exitcode` is
    /// its status and `p.is_alive()` is false (both poll waitpid(WNOHANG), which sees the
    /// zombie the sentinel announced). Before the fix `wait(on: [p])` returned a `.spawn`
    /// child (its pidfd readable) while `exitCode` was still nil and `isAlive` true until
    /// the supervisor thread reaped it, and `close()` threw `.stillRunning`.
    func testAProcessThatWaitReportsEndedHasItsExitCode() throws {
        try forEachMethod { method in
            var stale: [String] = []
            for round in 0..<20 {
                let p = try started(SleepFor(seconds: 0.05), method)
                let ready = Multiprocessing.wait(on: [p], timeout: 30)
                XCTAssertEqual(ready.count, 1, "\(method)")
                let code = p.exitCode
                let alive = p.isAlive
                var closeError = ""
                do {
                    try p.close()
                } catch let error as ProcessError {
                    closeError = ", close() threw .\(error.code)"
                } catch {
                    closeError = ", close() threw \(error)"
                }
                if code == nil || alive || !closeError.isEmpty {
                    let start = monotonicNow()
                    while p.exitCode == nil && monotonicNow() - start < 5 { sched_yield() }
                    stale.append(
                        "round \(round): exitCode \(String(describing: code)), isAlive \(alive), "
                            + "exit code seen \(Int((monotonicNow() - start) * 1e6)) µs later\(closeError)")
                }
                if closeError.isEmpty { XCTAssertEqual(p.exitCode, 0) } else { try joinOrKill(p); try p.close() }
                XCTAssertEqual(p.exitCode, 0)
            }
            XCTAssertEqual(stale, [], "\(method): wait() reported ended processes without an exit code")
        }
    }

    /// Python: `Manager().Event()` is a `threading.Event` in the server, and a proxy's
    /// `wait()` blocks in the server's thread for that connection; `set()` wakes every waiter
    /// and their `wait` returns True even when `clear()` follows at once (lock_tests'
    /// test_set_and_clear, gh-57711). Before the fix `EventProxy.wait` polled `isSet`: a
    /// set() followed by clear() between two polls was never seen, and every waiter slept to
    /// its timeout and returned false.
    func testManagerEventSetThenClearWakesItsWaiters() throws {
        let manager = try Manager()
        defer { manager.shutdown() }
        let event = try manager.event()
        let results = Port6Log<String>()
        let threads = (0..<3).map { _ in
            TestThread {
                let (woken, elapsed) = try timed { try event.wait(timeout: 3) }
                results.append("\(woken) after \(String(format: "%.2f", elapsed)) s")
            }
        }
        usleep(500_000) // the waiters are waiting (a proxy's waiter cannot be counted)
        try event.set()
        try event.clear()
        for t in threads { XCTAssertTrue(try t.wait(20)) }
        let woken = results.all.filter { $0.hasPrefix("true") }
        XCTAssertEqual(woken.count, 3, "set() then clear() woke \(woken.count) of 3 waiters: \(results.all)")
    }

    /// Python names a child `Process-N` and a child's children `Process-N:1`, `Process-N:2`…
    /// (BaseProcess.__init__ joins `_identity`), so default names are unique across the tree
    /// and say where a process sits. Before the fix every process counted on its own from its
    /// copy of a global counter: a forked child's children continued the parent's count
    /// (colliding with the parent's later children), a spawned or fork-server child's
    /// children started again at `Process-1`.
    func testDefaultNamesOfNestedChildrenAreUnique() throws {
        try forEachMethod { method in
            let report = try Queue<String>()
            let p = Multiprocessing.Process(target: Port6ReportNames(report: report, depth: 0), startMethod: method)
            try p.start()
            try joinOrKill(p, 60)
            var names: [String] = []
            while let name = try? report.get(timeout: 0.2) { names.append(name) }
            XCTAssertEqual(names.count, 7, "\(method): \(names)")
            XCTAssertEqual(Set(names).count, names.count, "\(method): default names repeat in the tree: \(names)")
            XCTAssertTrue(
                names.dropFirst().allSatisfy { $0.hasPrefix(p.name + ":") },
                "\(method): names of \(p.name)'s descendants: \(names)")
        }
    }
}

/// Reports the child's working directory.
struct Port6ReportDirectory: ParallelFunction {
    var report: Queue<String>
    func callAsFunction(_: Void) throws { try report.put(FileManager.default.currentDirectoryPath) }
}

/// The worker's working directory.
struct Port6WorkerDirectory: ParallelFunction {
    func callAsFunction(_: Int) -> String { FileManager.default.currentDirectoryPath }
}

/// Reads its standard input without waiting; the number of bytes read (0 at end of file,
/// -1 when nothing is there yet).
func port6ReadStandardInputNow() -> Int {
    var buffer = [UInt8](repeating: 0, count: 256)
    _ = fcntl(0, F_SETFL, fcntl(0, F_GETFL) | O_NONBLOCK)
    return read(0, &buffer, buffer.count)
}

/// Reports what reading its standard input gave (port6ReadStandardInputNow).
struct Port6ReadStandardInput: ParallelFunction {
    var report: Queue<Int>
    func callAsFunction(_: Void) throws { try report.put(port6ReadStandardInputNow()) }
}

/// What reading the worker's standard input gave (port6ReadStandardInputNow).
struct Port6WorkerReadsStandardInput: ParallelFunction {
    func callAsFunction(_: Int) -> Int { port6ReadStandardInputNow() }
}

/// Reports the child's command line.
struct Port6ReportArguments: ParallelFunction {
    var report: Queue<[String]>
    func callAsFunction(_: Void) throws { try report.put(CommandLine.arguments) }
}

/// The worker's command line.
struct Port6WorkerArguments: ParallelFunction {
    func callAsFunction(_: Int) -> [String] { CommandLine.arguments }
}

/// Reports its name, then (above depth 2) starts two children with default names, one after
/// the other (CPython's `_test_recursion`).
struct Port6ReportNames: ParallelFunction {
    var report: Queue<String>
    var depth: Int
    func callAsFunction(_: Void) throws {
        try report.put(Multiprocessing.currentProcess.name)
        guard depth < 2 else { return }
        for _ in 0..<2 {
            let child = Multiprocessing.Process(target: Port6ReportNames(report: report, depth: depth + 1))
            try child.start()
            try child.join()
        }
    }
}
