#if canImport(Glibc)
import Glibc
#endif

/// A system call that failed: which call, the `errno` it left, and `strerror`'s text.
public struct SystemError: Error, CustomStringConvertible, Sendable, Equatable {
    /// The failing C function, e.g. `"mmap"`.
    public var call: String
    /// The `errno` value.
    public var errno: Int32

    public init(_ call: String, errno: Int32) {
        self.call = call
        self.errno = errno
    }

    public var description: String {
        "\(call) failed: \(String(cString: strerror(errno))) (errno \(errno))"
    }
}

/// Runs a system call returning -1 on failure, retrying on `EINTR`; throws `SystemError`.
/// `errno` is read first, before anything else can overwrite it.
@inline(__always)
@discardableResult
func syscallRetrying<T: FixedWidthInteger>(_ call: String, _ body: () -> T) throws(SystemError) -> T {
    while true {
        let result = body()
        if result != -1 { return result }
        let code = Glibc.errno
        if code == EINTR { continue }
        throw SystemError(call, errno: code)
    }
}

/// Closes a descriptor, ignoring `EINTR` on purpose (Linux closes the descriptor anyway;
/// retrying could close a descriptor another thread just opened).
@inline(__always)
func systemClose(_ fd: Int32) {
    if fd >= 0 { _ = Glibc.close(fd) }
}
