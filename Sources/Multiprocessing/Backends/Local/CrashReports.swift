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
/// The files live in `$TMPDIR/swiftmp-<uid>-crashes-<parent pid>`, one per worker pid: the
/// crashing worker makes the directory (mode 0700; one there that is not this user's and
/// private is used by neither side), the parent removes the file once read and then the
/// directory if it is empty. Nothing is made on the disk until a worker crashes.
enum CrashReports {
    static func directory(parent: pid_t) -> String {
        let base = getenv("TMPDIR").map { String(cString: $0) }.flatMap { $0.isEmpty ? nil : $0 } ?? "/tmp"
        return "\(base)/swiftmp-\(getuid())-crashes-\(parent)"
    }

    static func file(parent: pid_t, worker: pid_t) -> String {
        "\(directory(parent: parent))/\(worker)"
    }

    /// The pool's process, in a fork server (whose children's parent is the server).
    nonisolated(unsafe) static var owner: pid_t?

    /// What a worker's handler needs, worked out before the worker starts: by the pool's
    /// process once for the workers it forks (`LocalBackend`), so that a forked worker runs no
    /// string code for it at its start (every page it writes then is copied first).
    struct Setup: Sendable {
        /// The reports' directory (`directory(parent:)`), NUL-terminated.
        let directory: [CChar]
        /// Swift's backtracer is off: the handler writes the raw return addresses itself.
        let rawFrames: Bool

        /// For the workers of the pool in process `pool`.
        init(pool: pid_t) {
            directory = Array(CrashReports.directory(parent: pool).utf8CString)
            // Swift's backtracer is on unless SWIFT_BACKTRACE turns it off (read at start-up).
            let settings = getenv("SWIFT_BACKTRACE").map { String(cString: $0) } ?? ""
            rawFrames = settings.split(separator: ",").contains { $0.filter { $0 != " " } == "enable=no" }
        }
    }

    /// In a pool worker, before its first task; `setup` made for it (nil: made here).
    static func install(parent: pid_t, setup: Setup? = nil) {
        let setup = setup ?? Setup(pool: owner ?? parent)
        let code = setup.directory.withUnsafeBufferPointer {
            CSystemShims_install_crash_report($0.baseAddress!, setup.rawFrames ? 1 : 0)
        }
        if code != 0 {
            printError("swiftmp worker \(getpid()): no crash report for this worker: \(SystemError("sigaction", errno: errno))")
        }
    }

    /// Kills the worker `pid` with SIGKILL, and first the `swift-backtrace` process it started
    /// if it is writing a crash report: killed in the middle of one, the worker leaves its
    /// backtracer waiting for ever for the worker's answers (it holds both ends of their
    /// socket), a process that would outlive the pool (and, on an MPI rank, keep the job's
    /// output open). The worker is stopped first, so that it starts none meanwhile.
    static func kill(worker pid: pid_t) {
        guard pid > 0 else { return }
        _ = Glibc.kill(pid, SIGSTOP)
        for child in backtracers(of: pid) { _ = Glibc.kill(child, SIGKILL) }
        _ = Glibc.kill(pid, SIGKILL)
    }

    /// The children of `pid` (any of its threads') that run Swift's backtracer.
    static func backtracers(of pid: pid_t) -> [pid_t] {
        guard let tasks = opendir("/proc/\(pid)/task") else { return [] }
        defer { closedir(tasks) }
        var found: [pid_t] = []
        while let entry = readdir(tasks) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            guard let thread = Int32(name) else { continue }
            for child in (readSmallFile("/proc/\(pid)/task/\(thread)/children", limit: 4096) ?? "").split(separator: " ") {
                guard let child = Int32(child.filter { $0 != "\n" }) else { continue }
                if (readSmallFile("/proc/\(child)/comm", limit: 4096) ?? "").hasPrefix("swift-backtrace") { found.append(child) }
            }
        }
        return found
    }

    /// In the parent, once the worker `worker` has ended by a signal: its report (removed
    /// from the disk), or nil if it wrote none (killed, not crashed).
    static func collect(parent: pid_t, worker: pid_t) -> String? {
        let folder = directory(parent: parent)
        var status = stat()
        guard lstat(folder, &status) == 0, status.st_mode & S_IFMT == S_IFDIR, status.st_uid == getuid(),
            status.st_mode & 0o077 == 0
        else { return nil }
        let path = file(parent: parent, worker: worker)
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        unlink(path)
        rmdir(folder) // fails while another worker's report waits there: it goes with that one
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
}
