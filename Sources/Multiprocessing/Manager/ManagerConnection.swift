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
///
/// One request at a time is in flight on it. A call with a timeout (`deadline`) waits for
/// its turn and for the answer at most until then — but at least `answerFloor` after it
/// asks, so that a timeout of 0 still gets an answer from a manager that is running. A call
/// that gets no answer in time drops the connection (the next request opens another) and
/// throws `ManagerError(.timedOut)`. The manager then cannot deliver its answer, and gives
/// back what the answer would have handed over (`ManagerServer.undoUndelivered`): an item
/// taken from a queue, a lock, a unit of a semaphore, a popped entry.
final class ManagerConnection: @unchecked Sendable {
    /// The least time a call with a timeout waits for the manager's answer.
    static let answerFloor: UInt64 = 1_000_000_000

    private static let registryLock = ConditionLock(resetInForkedChild: true)
    nonisolated(unsafe) private static var connections: [ManagerAddress: ManagerConnection] = [:]

    /// This process's connection to `address`, opened if there is none (or it broke). With a
    /// `deadline`, the manager must answer the key by then (at least `answerFloor` from now).
    /// Opened outside the registry's lock: a manager slow to answer holds up no other caller.
    static func to(_ address: ManagerAddress, deadline: UInt64? = nil) throws -> ManagerConnection {
        let pid = getpid()
        if let existing = registryLock.withLock({ connections[address] }), existing.owner == pid, !existing.isBroken {
            return existing
        }
        let opened = try ManagerConnection(address, deadline: deadline)
        let (chosen, replaced) = registryLock.withLock { () -> (ManagerConnection, ManagerConnection?) in
            // Another thread may have opened one meanwhile: the first one in stays.
            if let existing = connections[address], existing.owner == pid, !existing.isBroken { return (existing, nil) }
            let replaced = connections.updateValue(opened, forKey: address)
            return (opened, replaced)
        }
        // A broken or inherited connection closes (this process's copy) here, outside the lock.
        withExtendedLifetime(replaced) {}
        return chosen
    }

    /// Closes this process's connection to `address` (its manager shut down); a later
    /// request opens a new one (and fails, the manager being gone).
    static func forget(_ address: ManagerAddress) {
        let dropped = registryLock.withLock { connections.removeValue(forKey: address) }
        withExtendedLifetime(dropped) {} // closed here, outside the registry's lock
    }

    /// Guards `busy`, `waiting` and `broken`.
    private let state = ConditionLock()
    /// A request is in flight.
    private var busy = false
    /// Threads waiting for their turn.
    private var waiting = 0
    private let socket: FrameSocket
    private let owner = getpid()
    private var broken = false

    private init(_ address: ManagerAddress, deadline: UInt64?) throws {
        let fd = socketCloseOnExec()
        guard fd >= 0 else { throw SystemError("socket", errno: errno) }
        guard let storage = SocketAddress.unix(address.path) else {
            systemClose(fd)
            throw ManagerError(.unavailable, "the manager's socket path is too long: \(address.path)")
        }
        let result = SocketAddress.withGeneric(storage) { connect(fd, $0, $1) }
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
            let by = deadline.map { max($0, monotonicNanoseconds() &+ Self.answerFloor) }
            try socket.send(ManagerFrame.make { writer in address.authkey.withUnsafeBytes { writer.writeRaw($0) } }, deadline: by)
            reply = try socket.receive(deadline: by)
        } catch is FrameSocket.TimedOut {
            throw ManagerError(
                .timedOut,
                "the manager at \(address.path) did not answer a new connection within the call's timeout (at least "
                    + "\(Self.answerFloor / 1_000_000_000) s): its process is stopped or overloaded")
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

    /// The socket's descriptor (tests).
    var descriptorForTests: Int32 { socket.fd }

    deinit {
        // Only where it was opened: in a forked child that replaced the inherited connection
        // (`to`), its number is already another descriptor's — often the new connection's.
        closeIfOpenedHere(socket.fd, owner: owner)
    }

    /// Sends a request and returns the reply's status and the rest of the reply. With a
    /// `deadline`, throws `ManagerError(.timedOut)` when the turn or the answer does not come
    /// by then (nor within `answerFloor`), and `Dropped` when another call dropped the
    /// connection while this one waited for its turn (ask a new connection).
    func request(
        _ operation: ManagerOperation, object: UInt64, deadline: UInt64? = nil,
        _ arguments: (inout WireWriter) -> Void = { _ in }
    ) throws -> (ManagerStatus, [UInt8]) {
        let answerBy = deadline.map { max($0, monotonicNanoseconds() &+ Self.answerFloor) }
        try takeTurn(until: answerBy)
        defer { endTurn() }
        let frame = ManagerFrame.make { writer in
            writer.write(operation.rawValue)
            writer.write(object)
            arguments(&writer)
        }
        do {
            try socket.send(frame, deadline: answerBy)
            var reply: [UInt8]?
            do {
                reply = try socket.receive(deadline: answerBy)
            } catch is FrameSocket.TimedOut {
                // From here the manager cannot answer: what came before is the answer.
                reply = socket.stopReceiving()
                state.withLock { broken = true }
                guard reply != nil else { throw FrameSocket.TimedOut() }
            }
            guard let reply, let first = reply.first, let status = ManagerStatus(rawValue: first) else {
                throw ManagerError(.unavailable, "the manager closed the connection")
            }
            return (status, Array(reply.dropFirst()))
        } catch is FrameSocket.TimedOut {
            state.withLock { broken = true }
            shutdown(socket.fd, Int32(SHUT_RDWR))
            throw ManagerError(
                .timedOut,
                """
                the manager did not answer within the call's timeout (at least \(Self.answerFloor / 1_000_000_000) s): its \
                process is stopped or overloaded. A change the call asked for may still be made when it runs again; \
                what it would have handed over (a queue's item, a lock, a semaphore's unit, a popped entry) stays with the manager
                """)
        } catch let error as ManagerError {
            state.withLock { broken = true }
            throw error
        } catch {
            state.withLock { broken = true }
            throw ManagerError(.unavailable, "the manager is gone: \(error)")
        }
    }

    private var isBroken: Bool { state.withLock { broken } }

    /// Another call dropped the connection while this one waited for its turn.
    struct Dropped: Error {}

    /// Waits until no other request of this process is in flight on the connection.
    private func takeTurn(until deadline: UInt64?) throws {
        state.lock()
        defer { state.unlock() }
        while busy && !broken {
            waiting += 1
            let signalled = state.wait(until: deadline)
            waiting -= 1
            if !signalled, let deadline, monotonicNanoseconds() >= deadline, busy, !broken {
                throw ManagerError(
                    .timedOut,
                    "another call of this process has waited for the manager's answer longer than this call's timeout: "
                        + "the manager's process is stopped or overloaded")
            }
        }
        if broken { throw Dropped() }
        busy = true
    }

    private func endTurn() {
        state.lock()
        busy = false
        if waiting > 0 { state.broadcast() }
        state.unlock()
    }
}

private func socketCloseOnExec() -> Int32 {
    socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
}
