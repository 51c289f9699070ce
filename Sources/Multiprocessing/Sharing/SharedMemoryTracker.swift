import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Remembers the named shared memory blocks this user's processes created, so that a block
/// whose creator died without unlinking it (SIGKILL, a crash) does not stay in `/dev/shm`
/// until the next reboot: Python's resource tracker, without a tracker process.
///
/// A creator writes a record `/dev/shm/swiftmp-tracker-<uid>/<name>` holding its pid, its
/// start time (so that a reused pid is not mistaken for it) and the block's inode (so that a
/// newer block with the same name is never removed). Removing the block removes the record.
/// `sweep()` — run when this library creates or attaches a named block (at most once a second
/// per process: `sweepIfDue`), or explicitly — unlinks every recorded block whose creator is
/// gone. The directory is private to the user
/// (0700) and lives on the same tmpfs as the blocks, so records vanish with them at reboot.
enum SharedMemoryTracker {
    static let shmDirectory = "/dev/shm/"
    static let reservedPrefix = "swiftmp-tracker-"
    static var directory: String { shmDirectory + reservedPrefix + String(getuid()) }

    /// Creates the tracker directory if needed and checks that it is ours and private.
    private static func ensureDirectory() throws(SystemError) -> String {
        let path = directory
        if mkdir(path, 0o700) != 0 {
            let code = errno
            if code != EEXIST { throw SystemError("mkdir \(path)", errno: code) }
        }
        var info = stat()
        try syscallRetrying("lstat \(path)") { lstat(path, &info) }
        guard info.st_mode & S_IFMT == S_IFDIR, info.st_uid == getuid(), info.st_mode & 0o077 == 0 else {
            throw SystemError("lstat \(path) (not a private directory of this user)", errno: EPERM)
        }
        return path
    }

    /// Records that this process created block `name` with inode `inode`.
    static func record(name: String, inode: UInt64) throws(SystemError) {
        let path = try ensureDirectory() + "/" + name
        guard let start = ProcessStat.startTime(of: getpid()) else {
            throw SystemError("read /proc/self/stat", errno: ENOENT)
        }
        let fd = try syscallRetrying("open \(path)") {
            open(path, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0o600)
        }
        defer { systemClose(fd) }
        let line = Array("\(getpid()) \(start) \(inode)\n".utf8)
        let written = try syscallRetrying("write \(path)") {
            line.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        }
        if written != line.count { throw SystemError("write \(path) (short)", errno: EIO) }
    }

    /// Forgets block `name` (it was unlinked). A missing record is fine.
    static func forget(name: String) {
        _ = unlink(directory + "/" + name)
    }

    /// The inode of the block named `name` now, or nil if there is none.
    static func currentInode(of name: String) -> UInt64? {
        var info = stat()
        return stat(shmDirectory + name, &info) == 0 ? UInt64(info.st_ino) : nil
    }

    /// Forgets the record of block `name` if it is the record of the block with `inode` (a
    /// block made later under the same name, by this process or another, has its own).
    static func forget(name: String, inode: UInt64) {
        let recordPath = directory + "/" + name
        guard let text = readSmallFile(recordPath, limit: 4096, followingLinks: false) else { return }
        let fields = text.split(separator: " ").compactMap { UInt64($0.trimmingSuffixNewline) }
        if fields.count == 3 && fields[2] == inode { _ = unlink(recordPath) }
    }

    /// When `sweepIfDue` last swept (monotonic ns; 0: never), and how many sweeps ran.
    private static let lastAutomaticSweep = Atomic<UInt64>(0)
    static let sweeps = Atomic<Int>(0)
    static let automaticSweepInterval: UInt64 = 1_000_000_000

    /// `sweep()` unless this process swept less than a second ago. A sweep reads every record
    /// (and each creator's `/proc/<pid>/stat`): run at every creation, making 1 000 blocks
    /// took 14 s.
    static func sweepIfDue() {
        let now = monotonicNanoseconds()
        let last = lastAutomaticSweep.load(ordering: .relaxed)
        guard last == 0 || now &- last >= automaticSweepInterval,
            lastAutomaticSweep.compareExchange(expected: last, desired: now, ordering: .relaxed).exchanged
        else { return }
        sweep()
    }

    /// Unlinks every recorded block whose creator is no longer running; returns their names.
    @discardableResult
    static func sweep() -> [String] {
        sweeps.add(1, ordering: .relaxed)
        guard let stream = opendir(directory) else { return [] }
        defer { closedir(stream) }
        var names: [String] = []
        while let entry = readdir(stream) {
            let name = withUnsafePointer(to: &entry.pointee.d_name) {
                String(cString: UnsafeRawPointer($0).assumingMemoryBound(to: CChar.self))
            }
            if name == "." || name == ".." { continue }
            names.append(name)
        }
        var removed: [String] = []
        for name in names {
            let recordPath = directory + "/" + name
            guard let text = readSmallFile(recordPath, limit: 4096, followingLinks: false) else { continue }
            let fields = text.split(separator: " ").compactMap { UInt64($0.trimmingSuffixNewline) }
            guard fields.count == 3, let pid = Int32(exactly: fields[0]) else {
                _ = unlink(recordPath) // unreadable: not ours to keep
                continue
            }
            if let start = ProcessStat.startTime(of: pid), start == fields[1] { continue } // creator alive
            var info = stat()
            if stat(shmDirectory + name, &info) == 0, UInt64(info.st_ino) == fields[2] {
                if shm_unlink("/" + name) == 0 { removed.append(name) }
            }
            _ = unlink(recordPath)
        }
        return removed
    }
}

extension Substring {
    fileprivate var trimmingSuffixNewline: Substring { hasSuffix("\n") ? dropLast() : self }
}
