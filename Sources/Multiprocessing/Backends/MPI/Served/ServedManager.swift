import Wire

/// A `Manager` rank 0 serves in process (under mpirun): the same table of dicts, lists and
/// namespaces a manager server process holds, changed by the same code
/// (`ManagerServer.handle`). Requests never wait. The `Manager` on rank 0 holds its only
/// counted handle (proxies name the manager's id, as a manager server's address): it is
/// freed when that `Manager` is dropped; after `shutdown()` it answers `.unavailable`.
final class ServedManager: ServedState {
    static let kind = ServedKind.manager

    private var objects: [UInt64: ManagerServer.Object] = [:]
    private var nextID: UInt64 = 1
    private(set) var isShutDown = false

    enum Request: Equatable {
        /// A manager server's request ([op][object id][arguments]).
        case request([UInt8])
        case shutdown
    }

    enum Reply: Equatable {
        /// The server's reply ([status][result]).
        case answer([UInt8])
        case shutDown
    }

    static let shutDownMessage =
        "the manager has shut down (rank 0 of the mpirun job served it; shutdown() or dropping "
        + "the Manager ends it)"

    func attempt(_ request: inout Request, from _: Requester) -> ServedOutcome<Reply> {
        guard !isShutDown else { return .reply(.shutDown) }
        switch request {
        case .request(let bytes):
            var writer = WireWriter(capacity: 64)
            if ManagerServer.handle(bytes, objects: &objects, nextID: &nextID, into: &writer) { close() }
            return .reply(.answer(writer.bytes))
        case .shutdown:
            close()
            return .reply(.shutDown)
        }
    }

    private func close() {
        isShutDown = true
        objects = [:]
    }

    func expire(_: Request, from _: Requester) -> Reply { .shutDown }

    func undo(_ request: Request, _ reply: Reply, from _: Requester) {
        guard !isShutDown, case .request(let bytes) = request, case .answer(let answer) = reply else { return }
        ManagerServer.undoUndelivered(request: bytes, reply: answer, objects: &objects)
    }

    static func encode(_ request: Request, into writer: inout WireWriter) {
        switch request {
        case .request(let bytes):
            writer.write(UInt8(0))
            writer.writeBytes(bytes)
        case .shutdown: writer.write(UInt8(1))
        }
    }

    static func decodeRequest(_ reader: inout WireReader) throws(WireError) -> Request {
        switch try reader.read(UInt8.self) {
        case 0: .request(try reader.readBytes())
        case 1: .shutdown
        default: throw WireError.corrupt("unknown manager request")
        }
    }

    static func encode(_ reply: Reply, into writer: inout WireWriter) {
        switch reply {
        case .answer(let bytes):
            writer.write(UInt8(0))
            writer.writeBytes(bytes)
        case .shutDown: writer.write(UInt8(1))
        }
    }

    static func decodeReply(_ reader: inout WireReader) throws(WireError) -> Reply {
        switch try reader.read(UInt8.self) {
        case 0: .answer(try reader.readBytes())
        case 1: .shutDown
        default: throw WireError.corrupt("unknown manager reply")
        }
    }
}

/// The requests of a `Manager` rank 0 serves in process (under mpirun): on rank 0 they run
/// on the registry directly; on a worker rank they travel through the MPI object service.
/// Either way the reply is the one a manager server process would send, and a manager that
/// cannot answer is `ManagerError(.unavailable)`, as locally.
enum MPIServedManager {
    /// A new manager on rank 0; the handle its `Manager` holds.
    static func make() -> MPIServedObject {
        .serve(ServedManager())
    }

    static func shutdown(_ manager: MPIServedObject) {
        _ = try? manager.perform(ServedManager.self, .shutdown)
    }

    static func request(
        _ manager: UInt64, _ operation: ManagerOperation, object: UInt64,
        _ arguments: [UInt8]
    ) throws(ManagerError) -> (ManagerStatus, [UInt8]) {
        var writer = WireWriter(capacity: 9 + arguments.count)
        writer.write(operation.rawValue)
        writer.write(object)
        arguments.withUnsafeBytes { writer.writeRaw($0) }
        let reply: ServedManager.Reply
        do {
            // Proxies do not count: the handle is not retained (`counted: false`).
            reply = try MPIServedObject(decoded: manager, counted: false).perform(ServedManager.self, .request(writer.bytes))
        } catch  where error.code == .notServed {
            throw ManagerError(.unavailable, "the manager served by rank 0 cannot answer: \(error)")
        } catch {
            throw ManagerError(.unavailable, "the manager served by rank 0 cannot be reached: \(error)")
        }
        guard case .answer(let answer) = reply else { throw ManagerError(.unavailable, ServedManager.shutDownMessage) }
        guard let first = answer.first, let status = ManagerStatus(rawValue: first) else {
            throw ManagerError(.unavailable, "the manager served by rank 0 sent an unreadable reply")
        }
        return (status, Array(answer.dropFirst()))
    }
}
