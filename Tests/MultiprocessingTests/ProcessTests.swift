import CSystemShims
import XCTest

@testable import Multiprocessing

#if canImport(Glibc)
import Glibc
#endif

final class ProcessTests: XCTestCase {
    static let methods: [StartMethod] = [.fork, .forkserver, .spawn]

    func testStartJoinExitCodeOnEveryStartMethod() throws {
        for method in Self.methods {
            let ok = Process(target: EndWith(way: .success), startMethod: method)
            XCTAssertNil(ok.exitCode)
            XCTAssertFalse(ok.isAlive)
            try ok.start()
            XCTAssertNotNil(ok.pid)
            XCTAssertTrue(try ok.join(timeout: 20), "\(method)")
            XCTAssertEqual(ok.exitCode, 0, "\(method)")
            XCTAssertFalse(ok.isAlive)

            let status = Process(target: EndWith(way: .status, status: 7), startMethod: method)
            try status.start()
            try status.join(timeout: 20)
            XCTAssertEqual(status.exitCode, 7, "\(method)")

            let thrower = Process(target: EndWith(way: .throwing, status: 3), startMethod: method)
            try thrower.start()
            try thrower.join(timeout: 20)
            XCTAssertEqual(thrower.exitCode, 1, "a throwing target exits 1 (\(method))")

            let crash = Process(target: EndWith(way: .segfault), startMethod: method)
            try crash.start()
            try crash.join(timeout: 20)
            XCTAssertEqual(crash.exitCode, -SIGSEGV, "\(method)")
        }
    }

    /// A crash signal the target sends itself (`raise(SIGSEGV)`) ends the child with it, as in
    /// Python (`os.kill(os.getpid(), SIGSEGV)` gives exitcode -11): Swift's backtracer, which
    /// the child inherits, returns from the signal expecting a fault to happen again, and the
    /// child went on and exited 0.
    func testSelfSentCrashSignalEndsTheChildWithIt() throws {
        for method in Self.methods {
            for signal in [SIGSEGV, SIGILL] {
                let crash = Process(target: EndWith(way: .raiseSignal, status: signal), startMethod: method)
                try crash.start()
                XCTAssertTrue(try crash.join(timeout: 20))
                XCTAssertEqual(crash.exitCode, -signal, "\(method) signal \(signal)")
            }
        }
    }

    /// The report Swift's backtracer writes for such a signal is whole: the child serves the
    /// backtracer's reads of its memory until the end (a read that faults is recovered from),
    /// instead of being killed in the middle — which cut the report at "Registers:" and left
    /// the backtracer process waiting for ever (holding the program's standard error: under
    /// mpirun the job then never ended).
    func testASelfSentCrashSignalGetsAWholeCrashReport() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("swiftmp-report-\(getpid())").path
        defer { unlink(path) }
        let file = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        XCTAssertGreaterThanOrEqual(file, 0)
        // The child inherits descriptors 1 and 2 pointing at the file (only while it starts).
        fflush(nil)
        let savedOut = dup(1)
        let savedError = dup(2)
        dup2(file, 1)
        dup2(file, 2)
        close(file)
        let crash = Process(target: EndWith(way: .raiseSignal, status: SIGSEGV), startMethod: .fork)
        let started = Result { try crash.start() }
        dup2(savedOut, 1)
        dup2(savedError, 2)
        close(savedOut)
        close(savedError)
        try started.get()
        XCTAssertTrue(try crash.join(timeout: 20))
        XCTAssertEqual(crash.exitCode, -SIGSEGV)
        var report = ""
        let end = monotonicNanoseconds() + 10_000_000_000
        while monotonicNanoseconds() < end {
            report = (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
            if report.contains("Backtrace took") { break }
            usleep(50_000)
        }
        XCTAssertTrue(report.contains("Registers:"), "a report: \(report)")
        XCTAssertTrue(report.contains("Backtrace took"), "the report goes on to its end: \(report.suffix(300))")
    }

    func testTerminateKillAndJoinTimeout() throws {
        for method in Self.methods {
            let sleeper = Process(target: EndWith(way: .sleep, seconds: 30), startMethod: method)
            try sleeper.start()
            XCTAssertFalse(try sleeper.join(timeout: 0.05))
            XCTAssertTrue(sleeper.isAlive)
            XCTAssertThrowsError(try sleeper.close())
            try sleeper.terminate()
            XCTAssertTrue(try sleeper.join(timeout: 20))
            XCTAssertEqual(sleeper.exitCode, -SIGTERM, "\(method)")
            try sleeper.close()

            let victim = Process(target: EndWith(way: .sleep, seconds: 30), daemon: true, startMethod: method)
            try victim.start()
            try victim.kill()
            try victim.join(timeout: 20)
            XCTAssertEqual(victim.exitCode, -SIGKILL, "\(method)")
        }
    }

    func testMisuseThrows() throws {
        let p = Process(target: EndWith(way: .success))
        XCTAssertThrowsError(try p.join()) { XCTAssertEqual(($0 as? ProcessError)?.code, .notStarted) }
        try p.start()
        XCTAssertThrowsError(try p.start()) { XCTAssertEqual(($0 as? ProcessError)?.code, .alreadyStarted) }
        try p.join(timeout: 20)
    }

    func testNamesAndCurrentProcess() throws {
        XCTAssertTrue(Multiprocessing.currentProcess.isMain)
        XCTAssertEqual(Multiprocessing.currentProcess.name, "MainProcess")
        let queue = try Queue<String>()
        for method in Self.methods {
            let p = Process(target: ReportIdentity(queue: queue), name: "reporter-\(method)", daemon: true, startMethod: method)
            try p.start()
            XCTAssertEqual(try queue.get(timeout: 20), "reporter-\(method) false true true")
            try p.join(timeout: 20)
            XCTAssertEqual(p.exitCode, 0)
        }
        XCTAssertTrue(Process(target: EndWith(way: .success)).name.hasPrefix("Process-"))
    }

    /// A forked child calls the target as it is in the parent's memory (Python's fork); the
    /// other start methods see what its encoding carries.
    func testForkedChildSeesTheTargetAsItIsInMemory() throws {
        for (method, expected) in [(StartMethod.fork, Int32(7)), (.forkserver, 3), (.spawn, 3)] {
            let p = Process(target: ExitWithUncoded(coded: 3, uncoded: 4), startMethod: method)
            try p.start()
            XCTAssertTrue(try p.join(timeout: 20))
            XCTAssertEqual(p.exitCode, expected, "\(method)")
        }
    }

    /// Without join: isAlive and exitCode see the end (and reap the child), and a child that
    /// nobody looks at is reaped by the next start, as in Python.
    func testEndIsSeenWithoutJoinAndUnjoinedChildrenAreReaped() throws {
        let polled = Process(target: EndWith(way: .status, status: 5), startMethod: .fork)
        try polled.start()
        let deadline = monotonicNanoseconds() + 20_000_000_000
        while polled.isAlive && monotonicNanoseconds() < deadline { usleep(1000) }
        XCTAssertFalse(polled.isAlive)
        XCTAssertEqual(polled.exitCode, 5)

        let forgotten = Process(target: EndWith(way: .success), startMethod: .fork)
        try forgotten.start()
        let pid = try XCTUnwrap(forgotten.pid)
        usleep(200_000) // it ends meanwhile: a zombie until someone reaps it
        let next = Process(target: EndWith(way: .success), startMethod: .fork)
        try next.start() // reaps `forgotten`
        try next.join(timeout: 20)
        XCTAssertEqual(kill(pid, 0), -1, "the unjoined child was reaped")
        XCTAssertEqual(forgotten.exitCode, 0)
    }

    /// A thread other than the main thread may end before its children: its children are
    /// forked by the supervisor thread, and still started, joined and reaped as usual.
    func testForkFromAnotherThread() throws {
        let done = ConditionLock()
        nonisolated(unsafe) var result: (Int32?, Bool)?
        try spawnThread(named: "test-forker") {
            let p = Process(target: EndWith(way: .status, status: 9), startMethod: .fork)
            let joined = (try? p.start()).flatMap { try? p.join(timeout: 20) } ?? false
            done.withLock {
                result = (p.exitCode, joined)
                done.broadcast()
            }
        }
        let outcome = done.withLock { () -> (Int32?, Bool) in
            while result == nil { done.wait(until: monotonicNanoseconds() + 30_000_000_000) }
            return result!
        }
        XCTAssertTrue(outcome.1)
        XCTAssertEqual(outcome.0, 9)
    }

    /// A `.fork` child is queued on its parent's CPU (`SameCPUStart`), but runs with the
    /// CPUs its parent's thread may use, and every thread of the parent — the main thread,
    /// which forks itself, and the supervisor, which forks for other threads — has its own
    /// CPUs back afterwards.
    func testForkedChildAndParentKeepTheirCPUs() throws {
        let cpus = CSystemShims_affinity_cpu_count()
        try XCTSkipIf(cpus < 2, "a child held to one CPU cannot be told apart on a machine with one")
        let before = try threadCPUs()
        let child = Process(target: CheckCPUCount(cpus: cpus), startMethod: .fork)
        try child.start()
        XCTAssertTrue(try child.join(timeout: 20))
        XCTAssertEqual(child.exitCode, 0, "the child may run on all \(cpus) CPUs of its parent")

        let done = ConditionLock()
        nonisolated(unsafe) var exitCode: Int32??
        try spawnThread(named: "test-cpus") {
            let p = Process(target: CheckCPUCount(cpus: cpus), startMethod: .fork)
            _ = (try? p.start()).flatMap { try? p.join(timeout: 20) }
            done.withLock {
                exitCode = .some(p.exitCode)
                done.broadcast()
            }
        }
        let fromThread = done.withLock { () -> Int32?? in
            while exitCode == nil { done.wait(until: monotonicNanoseconds() + 30_000_000_000) }
            return exitCode!
        }
        XCTAssertEqual(fromThread, 0, "a child forked by the supervisor thread may run on all \(cpus) CPUs")
        let after = try threadCPUs()
        for (thread, allowed) in after {
            XCTAssertEqual(allowed, before[thread] ?? before[getpid()], "thread \(thread) has its CPUs back")
        }
    }

    /// Each thread of this process: its `Cpus_allowed_list` line.
    private func threadCPUs() throws -> [Int32: String] {
        var result: [Int32: String] = [:]
        guard let directory = opendir("/proc/self/task") else { throw SystemError("opendir", errno: errno) }
        defer { closedir(directory) }
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            guard let thread = Int32(name),
                let status = try? String(decoding: readAll("/proc/self/task/\(name)/status"), as: UTF8.self),
                let line = status.split(separator: "\n").first(where: { $0.hasPrefix("Cpus_allowed_list:") })
            else { continue }
            result[thread] = String(line)
        }
        return result
    }

    private func readAll(_ path: String) throws -> [UInt8] {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw SystemError("open \(path)", errno: errno) }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = read(fd, &buffer, buffer.count)
            if count < 0 { throw SystemError("read \(path)", errno: errno) }
            if count == 0 { return bytes }
            bytes += buffer[0..<count]
        }
    }

    func testLocalTypeIsRejectedWithAClearError() {
        struct Local: ParallelFunction { func callAsFunction(_: Void) {} }
        XCTAssertThrowsError(try Process(target: Local()).start()) { error in
            XCTAssertEqual((error as? ProcessError)?.code, .encoding)
            XCTAssertTrue("\(error)".contains("internal or public"), "\(error)")
        }
    }
}
