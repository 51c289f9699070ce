import CSystemShims

#if canImport(Glibc)
import Glibc
#endif

/// Where a manager listens and the key that opens it — or, for a manager created in rank 0
/// of an mpirun job (`served` ≠ 0), which of rank 0's in-process managers holds the objects
/// (no socket: requests travel through rank 0's MPI object service). Travels inside every
/// proxy.
struct ManagerAddress: Codable, Sendable, Hashable {
    var path: String
    var authkey: [UInt8]
    /// The id of a manager rank 0 serves in process; 0 for a manager server process.
    var served: UInt64 = 0

    init(path: String, authkey: [UInt8], served: UInt64 = 0) {
        self.path = path
        self.authkey = authkey
        self.served = served
    }

    private enum CodingKeys: String, CodingKey { case served, path, authkey }

    // Wire reads keys in the order they were written: keep this order in init(from:).
    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        if served != 0 { try MPIServedObject.checkEncoding("Manager proxy") }
        try container.encode(served, forKey: .served)
        if served == 0 {
            try container.encode(path, forKey: .path)
            try container.encode(authkey, forKey: .authkey)
        }
    }

    init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        served = try container.decode(UInt64.self, forKey: .served)
        if served != 0 {
            try MPIServedObject.checkDecoding("Manager proxy")
            path = ""
            authkey = []
        } else {
            path = try container.decode(String.self, forKey: .path)
            authkey = try container.decode([UInt8].self, forKey: .authkey)
        }
    }
}

/// One connection per process to a manager, shared by the proxies of that process and
/// re-opened in a child that inherited its parent's (forked processes must not share one).
final class ManagerConnection: @unchecked Sendable {
    private static let registryLock = ConditionLock(resetInForkedChild: true)
    nonisolated(unsafe) private static var connections: [ManagerAddress: ManagerConnection] = [:]

    static func to(_ address: ManagerAddress) throws -> ManagerConnection {
        try registryLock.withLock {
            if let existing = connections[address], existing.owner == getpid(), !existing.broken { return existing }
            // A broken or inherited connection closes (this process's copy) as it goes.
            connections[address] = nil
            let connection = try ManagerConnection(address)
            connections[address] = connection
            return connection
        }
    }

    /// Closes this process's connection to `address` (its manager shut down); a later
    /// request opens a new one (and fails, the manager being gone).
    static func forget(_ address: ManagerAddress) {
        let dropped = registryLock.withLock { connections.removeValue(forKey: address) }
        withExtendedLifetime(dropped) {} // closed here, outside the registry's lock
    }

    private let lock = ConditionLock()
    private let socket: FrameSocket
    private let owner = getpid()
    private var broken = false

    private init(_ address: ManagerAddress) throws {
        let fd = socketCloseOnExec()
        guard fd >= 0 else { throw SystemError("socket", errno: errno) }
        var storage = sockaddr_un()
        storage.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(address.path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: storage.sun_path) else {
            systemClose(fd)
            throw ManagerError(.unavailable, "the manager's socket path is too long: \(address.path)")
        }
        withUnsafeMutableBytes(of: &storage.sun_path) { raw in
            raw.copyBytes(from: bytes)
            raw[bytes.count] = 0
        }
        let result = withUnsafePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        if result != 0 {
            let code = errno
            systemClose(fd)
            throw ManagerError(
                .unavailable,
                """
                cannot reach the manager at \(address.path) (\(SystemError("connect", errno: code))): it has \
                shut down, its owner exited, or it runs on another host
                """)
        }
        // From here on `deinit` closes the descriptor, also when this initializer throws.
        socket = FrameSocket(fd: fd)
        let reply: [UInt8]?
        do {
            try socket.send(ManagerFrame.make { writer in address.authkey.withUnsafeBytes { writer.writeRaw($0) } })
            reply = try socket.receive()
        } catch {
            throw ManagerError(.unavailable, ManagerConnection.goneMessage(address, error))
        }
        guard let reply else { throw ManagerError(.unavailable, ManagerConnection.goneMessage(address, nil)) }
        guard reply.first == ManagerStatus.ok.rawValue else {
            throw ManagerError(.authenticationFailed, "the manager refused the connection: wrong authentication key")
        }
    }

    /// The manager closed the connection before it answered the key: it is going away.
    private static func goneMessage(_ address: ManagerAddress, _ error: (any Error)?) -> String {
        "the manager at \(address.path) closed the connection before it answered\(error.map { " (\($0))" } ?? ""): "
            + "it is shutting down, or its owner is exiting"
    }

    deinit {
        // A forked child closes only its copy of the descriptor; the parent's stays open.
        systemClose(socket.fd)
    }

    /// Sends a request and returns the reply's status and the rest of the reply.
    func request(
        _ operation: ManagerOperation, object: UInt64,
        _ arguments: (inout WireWriter) -> Void = { _ in }
    ) throws -> (ManagerStatus, [UInt8]) {
        try lock.withLock {
            let frame = ManagerFrame.make { writer in
                writer.write(operation.rawValue)
                writer.write(object)
                arguments(&writer)
            }
            do {
                try socket.send(frame)
                guard let reply = try socket.receive(), let first = reply.first,
                    let status = ManagerStatus(rawValue: first)
                else {
                    throw ManagerError(.unavailable, "the manager closed the connection")
                }
                return (status, Array(reply.dropFirst()))
            } catch let error as ManagerError {
                broken = true
                throw error
            } catch {
                broken = true
                throw ManagerError(.unavailable, "the manager is gone: \(error)")
            }
        }
    }
}

private func socketCloseOnExec() -> Int32 {
    socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
}
