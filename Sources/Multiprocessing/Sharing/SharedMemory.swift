#if canImport(Glibc)
import Glibc
#endif

/// A named block of shared memory that unrelated processes can open by name: Python's
/// `multiprocessing.shared_memory.SharedMemory`.
///
/// ```swift
/// let block = try SharedMemory(create: true, size: 1 << 20)   // a fresh name: block.name
/// // elsewhere, in any process of this user:
/// let same = try SharedMemory(name: block.name)
/// same.bytes.storeBytes(of: 42, as: Int.self)
/// ```
///
/// A POSIX shared memory object (`shm_open`, under `/dev/shm`), readable and writable by this
/// user only (0600). Its handle is `Codable`: stored in a pool function or a `Process` target,
/// it is opened again by name in the worker.
///
/// **Lifetime.** With `track: true` (the default) the process that created the block owns
/// it: when it calls `close()`, or when its last handle goes away, the block is unlinked
/// (its name removed; processes that still map it keep their memory) — if the name still
/// names that block: once someone else unlinked it and made another block of the same name,
/// closing the old handle leaves the new block alone. Handles that attached
/// by name, and copies in other processes, only unmap. With `track: false` the block stays
/// until someone calls `unlink()`. A tracked block whose creator died without closing it
/// (SIGKILL, a crash) is removed when a process of this user next creates or attaches a block
/// with this library (each process looks at most once a second), or calls `removeOrphans()`
/// (see `SharedMemoryTracker`).
///
/// **Memory.** A new block's pages are allocated as it is made (`posix_fallocate`), so that a
/// full `/dev/shm` is an error then rather than `SIGBUS` at a later write: a large block costs
/// its memory, and the time to clear it, from the start — even if only part of it is used.
public struct SharedMemory: Codable, Sendable {
    let mapping: SharedMemoryMapping

    /// The block's name, without the leading slash (Python's `name`).
    public var name: String { mapping.name }
    /// Its size in bytes.
    public var size: Int { mapping.size }

    /// The block's bytes (Python's `buf`). Valid until `close()`.
    public var bytes: UnsafeMutableRawBufferPointer {
        precondition(!mapping.isClosed, "SharedMemory \(name) was closed: its bytes are no longer mapped")
        return UnsafeMutableRawBufferPointer(start: mapping.base, count: mapping.size)
    }

    /// Creates (`create: true`) or opens (`create: false`) a named block.
    ///
    /// - Parameters:
    ///   - name: 1–250 characters without `/` or NUL; nil with `create: true` picks a fresh
    ///     name (`psm_` and 16 hex digits).
    ///   - create: make a new block (it must not exist) instead of opening an existing one.
    ///   - size: the new block's size in bytes (> 0); ignored when opening (the block's own
    ///     size is used).
    ///   - track: unlink the block when its creator closes it or dies (default).
    /// - Throws: `SharedMemoryError` — `.exists`, `.notFound`, `.invalidName`, `.invalidSize`.
    ///
    /// The corresponding C functions are `shm_open`, `ftruncate`, `posix_fallocate` (every page
    /// allocated at once: a full `/dev/shm` is an error here, not `SIGBUS` at the first write)
    /// and `mmap`.
    public init(name: String? = nil, create: Bool = false, size: Int = 0, track: Bool = true) throws(SharedMemoryError) {
        SharedMemoryTracker.sweepIfDue()
        if create {
            mapping = try SharedMemoryMapping.create(name: name ?? SharedMemory.freshName(), size: size, track: track)
        } else {
            guard let name else {
                throw SharedMemoryError(.invalidName, "SharedMemory(create: false) needs the name of the block to open")
            }
            mapping = try SharedMemoryMapping.attach(name: name)
        }
    }

    private enum CodingKeys: String, CodingKey { case name }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        mapping = try SharedMemoryMapping.attach(name: try container.decode(String.self, forKey: .name))
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(name, forKey: .name)
    }

    /// Unmaps the block from this process (every copy of this handle), and — in its tracked
    /// creator — unlinks it. Closing twice does nothing. The corresponding C function is
    /// `munmap`.
    public func close() {
        mapping.close()
    }

    /// Removes the block's name, so no process can open it any more; processes that map it
    /// keep their memory until they close it. Any process may call it.
    /// - Throws: `SharedMemoryError(.notFound)` if it was unlinked already.
    ///
    /// The corresponding C function is `shm_unlink`.
    public func unlink() throws(SharedMemoryError) {
        try mapping.unlink()
    }

    /// Unlinks every tracked block whose creating process is no longer running; returns
    /// their names. Runs on its own when a block is created or opened (at most once a second).
    @discardableResult
    public static func removeOrphans() -> [String] {
        SharedMemoryTracker.sweep()
    }

    static func freshName() -> String {
        var generator = SystemRandomNumberGenerator()
        let hex = String(generator.next() as UInt64, radix: 16)
        return "psm_" + String(repeating: "0", count: 16 - hex.count) + hex
    }

    static func validate(_ name: String) throws(SharedMemoryError) {
        let bytes = name.utf8
        guard !bytes.isEmpty, bytes.count <= 250 else {
            throw SharedMemoryError(.invalidName, "a SharedMemory name has 1 to 250 bytes, not \(bytes.count)")
        }
        guard !bytes.contains(UInt8(ascii: "/")), !bytes.contains(0), name != ".", name != ".." else {
            throw SharedMemoryError(.invalidName, "the SharedMemory name \"\(name)\" must not contain '/' or NUL, nor be '.' or '..'")
        }
        guard !name.hasPrefix(SharedMemoryTracker.reservedPrefix) else {
            throw SharedMemoryError(.invalidName, "SharedMemory names starting with \(SharedMemoryTracker.reservedPrefix) are reserved for the library")
        }
    }
}

/// One mapping of a named block in this process, shared by the copies of a `SharedMemory`.
final class SharedMemoryMapping: @unchecked Sendable {
    let name: String
    let base: UnsafeMutableRawPointer
    let size: Int
    /// The creating process, when this mapping created the block and tracks it.
    private let trackingCreator: pid_t?
    /// The block's inode, when this mapping created it: closing unlinks the name only while
    /// it still names this block (another may have taken the name since it was unlinked).
    private let inode: UInt64?
    private let lock = ConditionLock()
    private var closed = false
    private var unlinked = false

    private init(name: String, base: UnsafeMutableRawPointer, size: Int, trackingCreator: pid_t?, inode: UInt64? = nil) {
        self.name = name
        self.base = base
        self.size = size
        self.trackingCreator = trackingCreator
        self.inode = inode
    }

    static func create(name: String, size: Int, track: Bool) throws(SharedMemoryError) -> SharedMemoryMapping {
        try SharedMemory.validate(name)
        guard size > 0 else {
            throw SharedMemoryError(.invalidSize, "a new SharedMemory needs a size > 0 bytes, not \(size)")
        }
        // As for a SharedSegment: more than this process can be given would call the kernel's
        // out-of-memory killer as the block is allocated.
        if size > 64 << 20 {
            let limit = MemoryLimit.current
            guard size <= limit.bytes else {
                throw SharedMemoryError(.invalidSize, "a SharedMemory of \(size) bytes is more than \(limit.described): share less")
            }
        }
        let fd = shm_open("/" + name, O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, 0o600)
        if fd < 0 {
            let code = errno
            if code == EEXIST {
                throw SharedMemoryError(
                    .exists, "a shared memory block named \(name) exists already: pick another name, open it with create: false, or unlink it")
            }
            throw failure("shm_open /\(name)", code)
        }
        defer { systemClose(fd) }
        do throws(SystemError) {
            try syscallRetrying("ftruncate") { ftruncate(fd, off_t(size)) }
            // Every page allocated now: in a /dev/shm without room for them the first write
            // past the room would kill the program with SIGBUS (Python's has that crash).
            // A file system without fallocate keeps the sparse block.
            var code: Int32
            repeat { code = posix_fallocate(fd, 0, off_t(size)) } while code == EINTR
            if code != 0 && code != EOPNOTSUPP && code != EINVAL {
                throw SystemError("posix_fallocate of \(size) bytes in /dev/shm (is it full? df /dev/shm)", errno: code)
            }
            var info = stat()
            try syscallRetrying("fstat") { fstat(fd, &info) }
            if track { try SharedMemoryTracker.record(name: name, inode: UInt64(info.st_ino)) }
            let base = try map(fd: fd, size: size)
            return SharedMemoryMapping(
                name: name, base: base, size: size, trackingCreator: track ? getpid() : nil, inode: UInt64(info.st_ino))
        } catch {
            _ = shm_unlink("/" + name)
            SharedMemoryTracker.forget(name: name)
            throw SharedMemoryError(.systemCall, "cannot create shared memory \(name): \(error)", underlyingError: error)
        }
    }

    static func attach(name: String) throws(SharedMemoryError) -> SharedMemoryMapping {
        try SharedMemory.validate(name)
        let fd = shm_open("/" + name, O_RDWR | O_CLOEXEC, 0)
        if fd < 0 {
            let code = errno
            if code == ENOENT {
                throw SharedMemoryError(
                    .notFound, "no shared memory block named \(name): it was never created, or was unlinked (its creator closed it or ended)")
            }
            throw failure("shm_open /\(name)", code)
        }
        defer { systemClose(fd) }
        do throws(SystemError) {
            var info = stat()
            try syscallRetrying("fstat") { fstat(fd, &info) }
            guard info.st_size > 0 else {
                throw SystemError("fstat (the block is empty)", errno: EINVAL)
            }
            let base = try map(fd: fd, size: Int(info.st_size))
            return SharedMemoryMapping(name: name, base: base, size: Int(info.st_size), trackingCreator: nil)
        } catch  where error.errno == EINVAL {
            throw SharedMemoryError(.invalidSize, "the shared memory block \(name) is empty (its creator has not sized it yet?)", underlyingError: error)
        } catch {
            throw SharedMemoryError(.systemCall, "cannot open shared memory \(name): \(error)", underlyingError: error)
        }
    }

    private static func map(fd: Int32, size: Int) throws(SystemError) -> UnsafeMutableRawPointer {
        let pointer = mmap(nil, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)
        guard let pointer, pointer != MAP_FAILED else { throw SystemError("mmap", errno: errno) }
        return pointer
    }

    private static func failure(_ call: String, _ code: Int32) -> SharedMemoryError {
        let error = SystemError(call, errno: code)
        return SharedMemoryError(.systemCall, "\(error)", underlyingError: error)
    }

    var isClosed: Bool { lock.withLock { closed } }

    func close() {
        let (unmap, remove) = lock.withLock { () -> (Bool, Bool) in
            if closed { return (false, false) }
            closed = true
            let remove = trackingCreator == getpid() && !unlinked
            if remove { unlinked = true }
            return (true, remove)
        }
        if unmap { munmap(base, size) }
        if remove { removeOwnBlock() }
    }

    /// Unlinks the block this mapping created — if its name still names it: someone else may
    /// have unlinked it (fine) and made another block of that name since (left alone, with its
    /// tracker record).
    private func removeOwnBlock() {
        guard let inode else { return }
        if SharedMemoryTracker.currentInode(of: name) == inode { _ = shm_unlink("/" + name) }
        SharedMemoryTracker.forget(name: name, inode: inode)
    }

    func unlink() throws(SharedMemoryError) {
        lock.withLock { unlinked = true }
        if shm_unlink("/" + name) != 0 {
            let code = errno
            if code == ENOENT {
                throw SharedMemoryError(.notFound, "no shared memory block named \(name) to unlink: it was unlinked already")
            }
            throw SharedMemoryMapping.failure("shm_unlink /\(name)", code)
        }
        SharedMemoryTracker.forget(name: name)
    }

    deinit {
        if !closed {
            munmap(base, size)
            if trackingCreator == getpid() && !unlinked { removeOwnBlock() }
        }
    }
}
