#if canImport(Glibc)
import Glibc
#endif

/// The first `limit` bytes of a small file (a /proc, /sys or cgroup file) as text; nil if it
/// cannot be opened or read. `followingLinks: false` refuses a symbolic link (`O_NOFOLLOW`).
func readSmallFile(_ path: String, limit: Int = 64 << 10, followingLinks: Bool = true) -> String? {
    let fd = open(path, O_RDONLY | O_CLOEXEC | (followingLinks ? 0 : O_NOFOLLOW))
    guard fd >= 0 else { return nil }
    defer { systemClose(fd) }
    var bytes = [UInt8](repeating: 0, count: limit)
    var total = 0
    while total < bytes.count {
        let count = bytes.withUnsafeMutableBytes { read(fd, $0.baseAddress! + total, $0.count - total) }
        if count < 0 && errno == EINTR { continue }
        guard count >= 0 else { return nil }
        if count == 0 { break }
        total += count
    }
    return String(decoding: bytes[..<total], as: UTF8.self)
}
