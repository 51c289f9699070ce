import CSystemShims
#if canImport(Glibc)
import Glibc
#endif

/// Where a local pool worker crashed, for `WorkerDied.crashReport`.
///
/// A worker (every start method) installs a handler for the crash signals (SIGSEGV, SIGBUS,
/// SIGILL — `fatalError` and other traps —, SIGFPE, SIGABRT, SIGTRAP) before its first task.
/// On a crash it sends descriptors 1 and 2 to a file and lets Swift's backtracer (built into
/// the runtime on Linux, `SWIFT_BACKTRACE`) write its report there: the crashed thread's
/// frames, symbolicated with file and line where the binary has debug information. When the
/// backtracer is off (`SWIFT_BACKTRACE=enable=no`) the handler writes the raw return addresses
/// itself. The parent reads the file when it sees the worker end by a signal, prints the
/// report on its standard error (the report used to go to the worker's standard output) and
/// puts it in the `WorkerDied` of the input that was running.
///
/// The files live in `$TMPDIR/swiftmp-<uid>-crashes-<parent pid>` (mode 0700, made by the
/// parent; a directory there that is not ours and private disables the reports), one file
/// per worker pid, removed once read; the directory is removed when the last pool ends.
enum CrashReports {
    static func directory(parent: pid_t) -> String {
        let base = getenv("TMPDIR").map { String(cString: $0) }.flatMap { $0.isEmpty ? nil : $0 } ?? "/tmp"
        return "\(base)/swiftmp-\(getuid())-crashes-\(parent)"
    }

    static func file(parent: pid_t, worker: pid_t) -> String {
        "\(directory(parent: parent))/\(worker)"
    }

    /// In the parent, before starting a worker: makes the directory (or checks the one there
    /// is this user's and private). False: no reports (the reason is printed once).
    @discardableResult
    static func prepare(parent: pid_t) -> Bool {
        let path = directory(parent: parent)
        if mkdir(path, 0o700) == 0 { return true }
        let code = errno
        var status = stat()
        if code == EEXIST, lstat(path, &status) == 0, status.st_mode & S_IFMT == S_IFDIR, status.st_uid == getuid(),
           status.st_mode & 0o077 == 0 {
            return true
        }
        warnOnce("swiftmp: worker crash reports are off: cannot use \(path) "
                 + "(\(code == EEXIST ? "it exists and is not a private directory of this user" : SystemError("mkdir", errno: code).description)); "
                 + "set TMPDIR to a writable directory of your own")
        return false
    }

    /// The pool's process, in a fork server (whose children's parent is the server).
    nonisolated(unsafe) static var owner: pid_t?

    /// In a pool worker, before its first task.
    static func install(parent: pid_t) {
        let path = file(parent: owner ?? parent, worker: getpid())
        // Swift's backtracer is on unless SWIFT_BACKTRACE turns it off (read at start-up).
        let settings = getenv("SWIFT_BACKTRACE").map { String(cString: $0) } ?? ""
        let backtracerOff = settings.split(separator: ",").contains { $0.filter { $0 != " " } == "enable=no" }
        if CSystemShims_install_crash_report(path, backtracerOff ? 1 : 0) != 0 {
            printError("swiftmp worker \(getpid()): no crash report for this worker: \(SystemError("sigaction", errno: errno))")
        }
    }

    /// In the parent, once the worker `worker` has ended by a signal: its report (removed
    /// from the disk), or nil if it wrote none (killed, not crashed).
    static func collect(parent: pid_t, worker: pid_t) -> String? {
        let path = file(parent: parent, worker: worker)
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        unlink(path)
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 64 << 10)
        while bytes.count < 4 << 20 {
            let count = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if count < 0 && errno == EINTR { continue }
            guard count > 0 else { break }
            bytes.append(contentsOf: chunk[0..<count])
        }
        guard !bytes.isEmpty else { return nil }
        let report = String(decoding: bytes, as: UTF8.self)
        printError("swiftmp: worker process \(worker) crashed; its report:\n\(report)")
        return report
    }

    /// In the parent, when a pool has ended: the directory goes if it is empty (another
    /// pool's workers may still use it: then it stays, and `prepare` makes it again anyway).
    static func cleanUp(parent: pid_t) {
        rmdir(directory(parent: parent))
    }

    /// The lines of `report` that say where it crashed: up to the registers or the images.
    static func summary(_ report: String) -> String {
        var lines: [Substring] = []
        for line in report.split(separator: "\n", omittingEmptySubsequences: false) {
            if line.hasPrefix("Registers:") || line.hasPrefix("Images") { break }
            lines.append(line)
        }
        while let last = lines.last, last.allSatisfy({ $0 == " " }) { lines.removeLast() }
        return lines.joined(separator: "\n")
    }

    private static let warned = ConditionLock(resetInForkedChild: true)
    nonisolated(unsafe) private static var hasWarned = false

    private static func warnOnce(_ message: String) {
        let first = warned.withLock { () -> Bool in
            defer { hasWarned = true }
            return !hasWarned
        }
        if first { printError(message) }
    }
}
