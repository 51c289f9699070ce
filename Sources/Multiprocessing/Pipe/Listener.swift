import CSystemShims
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Where a `Listener` listens and a `Client` connects: Python's `multiprocessing.connection`
/// addresses — a path for a Unix socket (family `'AF_UNIX'`), a host and port for TCP
/// (`'AF_INET'`).
public enum ConnectionAddress: Hashable, Sendable, Codable, CustomStringConvertible {
    /// A Unix socket at `path` (at most `SocketAddress.longestUnixPath`, 107, bytes).
    case unix(path: String)
    /// A TCP socket: an IPv4 address or a host name, and a port (0 when listening: any free one).
    case tcp(host: String, port: Int)

    /// Python's address families.
    public enum Family: Sendable, Hashable, CaseIterable {
        case unix, tcp
    }

    /// Every family, as Python's `multiprocessing.connection.families`.
    public static let families = Family.allCases

    public var family: Family {
        switch self {
        case .unix: .unix
        case .tcp: .tcp
        }
    }

    public var description: String {
        switch self {
        case .unix(let path): path
        case .tcp(let host, let port): "\(host):\(port)"
        }
    }
}

/// A socket that accepts connections from `Client`: Python's
/// `multiprocessing.connection.Listener`.
///
/// ```swift
/// let listener = try Listener(authkey: Array("secret".utf8))
/// // … hand `listener.address` to another process, which calls
/// // `Client(listener.address, authkey: Array("secret".utf8))` …
/// let connection = try listener.accept()
/// print(try connection.recv(String.self))
/// ```
///
/// Each accepted connection is a `Connection` like a `Pipe` end (duplex), which can also be
/// passed to a `Process` target. Without an address it listens on a new Unix socket in a
/// directory only this user can enter (`family: .tcp`: on 127.0.0.1, a free port); `address`
/// says where. With an `authkey`, `accept` and `Client` run an HMAC challenge both ways, modelled
/// on Python's
/// (`AuthenticationError` when the keys differ; the key never travels). Without one nothing
/// is checked: anyone who can reach the address can connect — a TCP listener on another
/// address than 127.0.0.1 should have a key.
///
/// `close()` (or dropping the listener) removes a Unix socket it created, as Python does.
public final class Listener: @unchecked Sendable {
    /// Where it listens (for TCP, the port it got).
    public let address: ConnectionAddress
    private let socket: Atomic<Int32>
    private let authkey: [UInt8]?
    /// A directory this listener made for its socket (removed with it).
    private let directory: String?
    private let owner = getpid()
    private let state = ConditionLock()
    private var accepted: ConnectionAddress?
    /// Threads in `accept` (under `state`), and the descriptor `close()` left for the last of
    /// them to close (-1: none).
    private var accepting = 0
    private var closing: Int32 = -1

    /// Listens at `address`; nil: a new address of `family` (default: a Unix socket).
    /// `backlog`: how many connections may wait for `accept`. Throws `SystemError` when it
    /// cannot (`EADDRINUSE`: something already listens there).
    public init(
        address: ConnectionAddress? = nil, family: ConnectionAddress.Family? = nil, backlog: Int = 1, authkey: [UInt8]? = nil
    ) throws {
        if let address, let family, address.family != family {
            throw ConnectionError(.invalidArgument, "Listener: the address \(address) is not of the family \(family)")
        }
        self.authkey = authkey
        let family = address?.family ?? family ?? .unix
        let backlog = Int32(clamping: max(backlog, 0))
        switch address ?? (family == .unix ? nil : .tcp(host: "127.0.0.1", port: 0)) {
        case nil:
            let made = try Self.privateDirectory()
            directory = made
            let fd = try Self.listenUnix(made + "/socket", backlog: backlog, removingOnFailure: made)
            self.address = .unix(path: made + "/socket")
            socket = Atomic(fd)
        case .unix(let path):
            directory = nil
            socket = Atomic(try Self.listenUnix(path, backlog: backlog, removingOnFailure: nil))
            self.address = .unix(path: path)
        case .tcp(let host, let port):
            directory = nil
            let (fd, bound) = try Self.listenTCP(host, port: port, backlog: backlog)
            socket = Atomic(fd)
            self.address = .tcp(host: SocketAddress.numeric(bound), port: Int(UInt16(bigEndian: bound.sin_port)))
        }
    }

    deinit { close() }

    /// The peer address of the last accepted connection (Python's `last_accepted`): a TCP
    /// client's host and port; for a Unix socket an empty path (its clients have no name).
    public var lastAccepted: ConnectionAddress? { state.withLock { accepted } }

    /// Whether `close()` was called.
    public var isClosed: Bool { socket.load(ordering: .acquiring) < 0 }

    /// Waits for the next client — at most `timeout` seconds (nil: without limit), then
    /// `ConnectionError(.timedOut)` — and returns its connection, after the handshake if the
    /// listener has an `authkey` (`AuthenticationError` if the client fails it or does not
    /// answer in time: `timeout` again from when it connected, at least 1 s, or 30 s without
    /// one). Throws
    /// `ConnectionError(.closed)` once the listener is closed.
    public func accept(timeout: Double? = nil) throws -> Connection {
        let end = deadline(after: timeout)
        // The descriptor stays open while any thread is in here (`close()` only shuts it down
        // then; the last one out closes it), so its number is never another file's meanwhile.
        guard
            let listening = state.withLock({ () -> Int32? in
                let fd = socket.load(ordering: .acquiring)
                if fd >= 0 { accepting += 1 }
                return fd >= 0 ? fd : nil
            })
        else { throw ConnectionError(.closed, "accept() on a closed Listener") }
        defer {
            state.withLock {
                accepting -= 1
                if accepting == 0 && closing >= 0 {
                    systemClose(closing)
                    closing = -1
                }
            }
        }
        var peer = sockaddr_storage()
        var length: UInt32 = 0
        var fd: Int32 = -1
        while fd < 0 {
            guard socket.load(ordering: .acquiring) >= 0 else { throw ConnectionError(.closed, "accept() on a closed Listener") }
            let left: Int64 = end.map { $0 > monotonicNanoseconds() ? Int64($0 - monotonicNanoseconds()) : 0 } ?? -1
            guard pollOnce(listening, events: Int16(POLLIN), timeoutNanoseconds: left) else {
                throw ConnectionError(.timedOut, "Listener.accept: no client connected within \(timeout ?? 0) s")
            }
            guard socket.load(ordering: .acquiring) >= 0 else { throw ConnectionError(.closed, "accept() on a closed Listener") }
            length = UInt32(MemoryLayout<sockaddr_storage>.size)
            fd = CSystemShims_accept_cloexec_from(listening, &peer, &length)
            if fd < 0 {
                let code = errno
                // Gone before it was accepted, or taken by another thread's accept (the socket
                // does not block): wait again.
                if [EAGAIN, EWOULDBLOCK, ECONNABORTED, EPROTO].contains(code) { continue }
                if socket.load(ordering: .acquiring) < 0 { throw ConnectionError(.closed, "accept() on a closed Listener") }
                throw SystemError("accept", errno: code)
            }
        }
        let from: ConnectionAddress
        if peer.ss_family == sa_family_t(AF_INET) {
            let address = withUnsafeBytes(of: &peer) { $0.loadUnaligned(as: sockaddr_in.self) }
            from = .tcp(host: SocketAddress.numeric(address), port: Int(UInt16(bigEndian: address.sin_port)))
            Self.sendAtOnce(fd)
        } else {
            from = .unix(path: "")
        }
        let connection = Connection(fd: fd, readable: true, writable: true)
        if let authkey {
            try ConnectionAuthentication.server(connection, key: authkey, deadline: ConnectionAuthentication.deadline(seconds: timeout))
        }
        state.withLock { accepted = from }
        return connection
    }

    /// Stops listening (a thread waiting in `accept` gets `ConnectionError(.closed)`) and
    /// removes the Unix socket. Closing again does nothing.
    public func close() {
        let fd = socket.exchange(-1, ordering: .acquiringAndReleasing)
        guard fd >= 0, owner == getpid() else { return }
        // Wakes a thread waiting in `accept` (its poll sees the hang-up); the last such thread
        // closes the descriptor.
        _ = shutdown(fd, Int32(SHUT_RDWR))
        state.withLock {
            if accepting == 0 { systemClose(fd) } else { closing = fd }
        }
        if case .unix(let path) = address { unlink(path) }
        if let directory { rmdir(directory) }
    }

    // MARK: making the socket

    /// A listening socket does not block: `accept` waits in `poll`, and another thread taking
    /// the client meanwhile makes `accept4` fail with `EAGAIN` rather than wait past the time
    /// limit. (An accepted socket does not inherit this.)
    private static let listeningType = Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue)

    private static func privateDirectory() throws -> String {
        var template = Array("/tmp/swiftmp-listener-XXXXXX".utf8CString)
        guard template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) != nil else {
            throw SystemError("mkdtemp", errno: errno)
        }
        return String(decoding: template.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    private static func listenUnix(_ path: String, backlog: Int32, removingOnFailure directory: String?) throws -> Int32 {
        guard let storage = SocketAddress.unix(path) else {
            if let directory { rmdir(directory) }
            throw ConnectionError(
                .invalidArgument, "a Unix socket path has at most \(SocketAddress.longestUnixPath) bytes and no NUL: \(path)")
        }
        do {
            let fd = try syscallRetrying("socket") { Glibc.socket(AF_UNIX, Self.listeningType, 0) }
            do {
                try syscallRetrying("bind \(path)") { SocketAddress.withGeneric(storage) { bind(fd, $0, $1) } }
                try syscallRetrying("listen") { listen(fd, backlog) }
            } catch {
                systemClose(fd)
                throw error
            }
            return fd
        } catch {
            if let directory {
                unlink(path)
                rmdir(directory)
            }
            throw error
        }
    }

    private static func listenTCP(_ host: String, port: Int, backlog: Int32) throws -> (Int32, sockaddr_in) {
        guard let address = try SocketAddress.ipv4(host, port: port).first else {
            throw SystemError("getaddrinfo(\(host)): no IPv4 address", errno: EADDRNOTAVAIL)
        }
        let fd = try syscallRetrying("socket") { Glibc.socket(AF_INET, Self.listeningType, 0) }
        do {
            var on: Int32 = 1
            // As Python's: a port in TIME_WAIT from an earlier listener can be bound again.
            try syscallRetrying("setsockopt(SO_REUSEADDR)") {
                setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, socklen_t(MemoryLayout<Int32>.size))
            }
            try syscallRetrying("bind \(host):\(port)") { SocketAddress.withGeneric(address) { bind(fd, $0, $1) } }
            try syscallRetrying("listen") { listen(fd, backlog) }
            var bound = sockaddr_in()
            var length = socklen_t(MemoryLayout<sockaddr_in>.size)
            try syscallRetrying("getsockname") {
                withUnsafeMutablePointer(to: &bound) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
            }
            return (fd, bound)
        } catch {
            systemClose(fd)
            throw error
        }
    }

    /// Small messages go out at once (no Nagle delay: a request waits for its answer).
    static func sendAtOnce(_ fd: Int32) {
        var on: Int32 = 1
        _ = setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &on, socklen_t(MemoryLayout<Int32>.size))
    }
}

/// Connects to a `Listener` at `address`: Python's `multiprocessing.connection.Client`. With
/// an `authkey` (the listener's), runs the HMAC challenge both ways (`AuthenticationError`
/// when the keys differ or the listener does not answer in time). The connect takes at most
/// `timeout` seconds (`ConnectionError(.timedOut)`; nil: however long, as Python's), the
/// handshake as long again from then (at least 1 s; nil: 30 s). Throws `SystemError` when
/// nothing listens there (`ECONNREFUSED`, `ENOENT`).
// swift-format-ignore: AlwaysUseLowerCamelCase
// Python's name: multiprocessing.connection.Client().
public func Client(_ address: ConnectionAddress, authkey: [UInt8]? = nil, timeout: Double? = nil) throws -> Connection {
    try Connection.connect(to: address, authkey: authkey, timeout: timeout)
}

extension Connection {
    /// A connection to the `Listener` at `address`; see `Client(_:authkey:timeout:)`.
    public static func connect(to address: ConnectionAddress, authkey: [UInt8]? = nil, timeout: Double? = nil) throws -> Connection {
        let end = deadline(after: timeout)
        let fd: Int32
        switch address {
        case .unix(let path):
            guard let storage = SocketAddress.unix(path) else {
                throw ConnectionError(
                    .invalidArgument, "a Unix socket path has at most \(SocketAddress.longestUnixPath) bytes and no NUL: \(path)")
            }
            fd = try connectSocket(family: AF_UNIX, storage, what: "connect \(path)", before: end)
        case .tcp(let host, let port):
            var lastError = SystemError("getaddrinfo(\(host)): no IPv4 address", errno: EADDRNOTAVAIL)
            var connected: Int32 = -1
            for candidate in try SocketAddress.ipv4(host, port: port) {
                do {
                    connected = try connectSocket(family: AF_INET, candidate, what: "connect \(host):\(port)", before: end)
                    break
                } catch let error as SystemError {
                    lastError = error
                }
            }
            guard connected >= 0 else { throw lastError }
            fd = connected
            Listener.sendAtOnce(fd)
        }
        let connection = Connection(fd: fd, readable: true, writable: true)
        if let authkey {
            try ConnectionAuthentication.client(connection, key: authkey, deadline: ConnectionAuthentication.deadline(seconds: timeout))
        }
        return connection
    }

    /// A new socket of `family` connected to `address` before `end` (nil: however long it
    /// takes): `ConnectionError(.timedOut)` past it. The socket does not block while it
    /// connects (a TCP connect in progress is waited for in `poll`; a Unix listener whose
    /// backlog is full is tried again), and blocks afterwards, as a pipe end's.
    private static func connectSocket<Address>(family: Int32, _ address: Address, what: String, before end: UInt64?) throws -> Int32 {
        let fd = try syscallRetrying("socket") {
            socket(family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        }
        do {
            var pause: UInt32 = 1_000
            while SocketAddress.withGeneric(address, { Glibc.connect(fd, $0, $1) }) != 0 {
                let code = errno
                let timedOut = ConnectionError(.timedOut, "\(what): the listener did not take the connection in time")
                switch code {
                case EINTR:
                    continue
                case EINPROGRESS:
                    // TCP: the handshake goes on; its outcome is the socket's error once writable.
                    let left: Int64 = end.map { $0 > monotonicNanoseconds() ? Int64($0 - monotonicNanoseconds()) : 0 } ?? -1
                    guard pollOnce(fd, events: Int16(POLLOUT), timeoutNanoseconds: left) else { throw timedOut }
                    var failure: Int32 = 0
                    var length = socklen_t(MemoryLayout<Int32>.size)
                    try syscallRetrying("getsockopt(SO_ERROR)") { getsockopt(fd, SOL_SOCKET, SO_ERROR, &failure, &length) }
                    guard failure == 0 else { throw SystemError(what, errno: failure) }
                case EAGAIN:
                    // A Unix listener's backlog is full: it has not accepted the ones before.
                    if let end, monotonicNanoseconds() >= end { throw timedOut }
                    usleep(pause)
                    pause = min(pause * 2, 50_000)
                    continue
                default:
                    throw SystemError(what, errno: code)
                }
                break
            }
            let flags = try syscallRetrying("fcntl(F_GETFL)") { fcntl(fd, F_GETFL) }
            try syscallRetrying("fcntl(F_SETFL)") { fcntl(fd, F_SETFL, flags & ~Int32(O_NONBLOCK)) }
            return fd
        } catch {
            systemClose(fd)
            throw error
        }
    }
}
