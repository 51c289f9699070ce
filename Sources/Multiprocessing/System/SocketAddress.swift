#if canImport(Glibc)
import Glibc
#endif

/// The C socket addresses this library binds and connects to: a Unix socket's path (a
/// `Manager`'s, a `Listener`'s) and an IPv4 address and port (a `Listener`'s).
enum SocketAddress {
    /// The longest Unix socket path (`sun_path` less its terminating NUL).
    static let longestUnixPath = MemoryLayout.size(ofValue: sockaddr_un().sun_path) - 1

    /// A `sockaddr_un` for `path`; nil if the path is longer than `longestUnixPath` bytes or
    /// holds a NUL.
    static func unix(_ path: String) -> sockaddr_un? {
        let bytes = Array(path.utf8)
        guard bytes.count <= longestUnixPath, !bytes.contains(0) else { return nil }
        var storage = sockaddr_un()
        storage.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &storage.sun_path) { raw in
            raw.copyBytes(from: bytes)
            raw[bytes.count] = 0
        }
        return storage
    }

    /// Calls `body` with `address` as a `sockaddr` and its length (`bind`, `connect`).
    static func withGeneric<Address, R>(_ address: Address, _ body: (UnsafePointer<sockaddr>, socklen_t) -> R) -> R {
        withUnsafePointer(to: address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, socklen_t(MemoryLayout<Address>.size)) }
        }
    }

    /// The IPv4 addresses `host` names ("" is every local address), for a TCP `port`.
    static func ipv4(_ host: String, port: Int) throws(SystemError) -> [sockaddr_in] {
        guard (0...65535).contains(port) else { throw SystemError("getaddrinfo (port \(port))", errno: EINVAL) }
        if host.isEmpty {
            var any = sockaddr_in()
            any.sin_family = sa_family_t(AF_INET)
            any.sin_port = UInt16(port).bigEndian
            return [any]
        }
        var hints = addrinfo()
        hints.ai_family = AF_INET
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var list: UnsafeMutablePointer<addrinfo>?
        let status = getaddrinfo(host, String(port), &hints, &list)
        guard status == 0 else {
            let code = status == EAI_SYSTEM ? errno : ENOENT
            // getaddrinfo's own codes are not errno values: say which, as the system does.
            throw SystemError("getaddrinfo(\(host)): \(String(cString: gai_strerror(status)))", errno: code)
        }
        defer { freeaddrinfo(list) }
        var found: [sockaddr_in] = []
        var entry = list
        while let current = entry {
            if current.pointee.ai_family == AF_INET, let address = current.pointee.ai_addr {
                found.append(UnsafeRawPointer(address).loadUnaligned(as: sockaddr_in.self))
            }
            entry = current.pointee.ai_next
        }
        return found
    }

    /// An IPv4 address's dotted numeric form.
    static func numeric(_ address: sockaddr_in) -> String {
        var text = [CChar](repeating: 0, count: Int(INET_ADDRSTRLEN))
        var raw = address.sin_addr
        _ = inet_ntop(AF_INET, &raw, &text, socklen_t(text.count))
        return String(decoding: text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
