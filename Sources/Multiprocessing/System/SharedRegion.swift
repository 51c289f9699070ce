import CSystemShims

#if canImport(Glibc)
import Glibc
#endif

/// Memory shared between processes: an anonymous `memfd` mapped `MAP_SHARED`.
///
/// Children started with `fork` inherit the mapping; other processes receive the
/// descriptor (inherited by `posix_spawn`, or passed with `SCM_RIGHTS`) and map it again.
/// No name exists in any file system, so no other process can open it.
final class SharedRegion: @unchecked Sendable {
    let base: UnsafeMutableRawPointer
    let size: Int
    /// The memfd, or -1 once closed (the mapping outlives it). Also -1 in a forked child
    /// that inherited the region (its descriptors were closed there, and the number may now
    /// name another file), unless the child kept it (`keptInForkedChild`).
    var descriptor: Int32 {
        storedDescriptor >= 0 && descriptorOwner == getpid() ? storedDescriptor : -1
    }
    private var storedDescriptor: Int32
    /// The process in which `storedDescriptor` is open.
    private var descriptorOwner = getpid()

    /// The descriptor as the parent had it, for a fork that keeps it open in the child.
    var inheritableDescriptor: Int32 { descriptor }

    /// In a forked child that kept `inheritableDescriptor` open: it is this process's now.
    /// Allocates nothing.
    func keptInForkedChild() {
        descriptorOwner = getpid()
    }

    /// Creates a zero-filled region of `size` bytes.
    init(size: Int, name: String = "swiftmp") throws(SystemError) {
        precondition(size > 0)
        let fd = try syscallRetrying("memfd_create") {
            CSystemShims_memfd_create(name, 1) // MFD_CLOEXEC
        }
        do throws(SystemError) {
            try syscallRetrying("ftruncate") { ftruncate(fd, off_t(size)) }
            base = try SharedRegion.map(fd: fd, size: size)
        } catch {
            systemClose(fd)
            throw error
        }
        self.size = size
        self.storedDescriptor = fd
    }

    /// Maps a region received from another process. Takes ownership of `descriptor`.
    init(adopting descriptor: Int32) throws(SystemError) {
        var info = stat()
        try syscallRetrying("fstat") { fstat(descriptor, &info) }
        guard info.st_size > 0 else { throw SystemError("fstat (empty shared region)", errno: EINVAL) }
        self.size = Int(info.st_size)
        self.base = try SharedRegion.map(fd: descriptor, size: Int(info.st_size))
        self.storedDescriptor = descriptor
    }

    private static func map(fd: Int32, size: Int) throws(SystemError) -> UnsafeMutableRawPointer {
        let pointer = mmap(nil, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)
        guard let pointer, pointer != MAP_FAILED else { throw SystemError("mmap", errno: Glibc.errno) }
        return pointer
    }

    /// Closes the descriptor; the mapping stays valid.
    func closeDescriptor() {
        systemClose(descriptor)
        storedDescriptor = -1
    }

    deinit {
        // A robust mutex in here that this thread still holds (a `Lock` dropped while held)
        // is on glibc's list of the thread's robust mutexes, which its next robust unlock
        // walks: the memory stays mapped (for the process's life) rather than crash it then.
        if CSystemShims_robust_list_touches(base, size) != 1 { munmap(base, size) }
        systemClose(descriptor)
    }
}
