import CSystemShims

#if canImport(Glibc)
import Glibc
#endif

/// How a local pool starts its workers (Python's start methods).
public enum StartMethod: String, Sendable, CaseIterable, Codable {
    /// `fork()` from the library's supervisor thread: fastest (~0.3 ms), inherits memory
    /// copy-on-write. Unsafe when other threads of this process may hold Swift runtime locks
    /// (measured: 13–37 % of children hung); `.automatic` avoids it then.
    case fork
    /// A single-threaded fork server (spawned once) forks the workers: safe with threads,
    /// ~0.3 ms per worker after an ~8 ms start. Workers do not inherit this process's memory.
    case forkserver
    /// `posix_spawn` of this executable; the library's start-up hook runs the worker before
    /// `main`. Safe with threads, 3–8 ms per worker.
    case spawn
    /// `.fork` when this process has no other threads than the library's own, otherwise
    /// `.forkserver`.
    case automatic

    /// The method `.automatic` resolves to now.
    var resolved: StartMethod {
        guard self == .automatic else { return self }
        return StartMethod.foreignThreadCount() == 0 ? .fork : .forkserver
    }

    /// Threads of this process other than the calling one and the library's own
    /// (named `swiftmp-…`), from /proc/self/task.
    static func foreignThreadCount() -> Int {
        guard let directory = opendir("/proc/self/task") else { return 1 }
        defer { closedir(directory) }
        let me = CSystemShims_gettid()
        var count = 0
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
            }
            guard let tid = Int32(name), tid != me else { continue }
            if threadName("/proc/self/task/\(name)/comm").hasPrefix("swiftmp-") { continue }
            count += 1
        }
        return count
    }

    private static func threadName(_ path: String) -> String {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return "" }
        defer { systemClose(fd) }
        var buffer = [UInt8](repeating: 0, count: 32)
        let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        return n > 0 ? String(decoding: buffer.prefix(n), as: UTF8.self) : ""
    }
}
