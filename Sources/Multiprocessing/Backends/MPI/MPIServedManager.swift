import Wire

/// The requests of a `Manager` rank 0 serves in process (under mpirun): on rank 0 they run
/// on the registry directly; on a worker rank they travel as `managerRequest`s through the
/// MPI object service. Either way the reply is the one a manager server process would send,
/// and a manager that cannot answer is `ManagerError(.unavailable)`, as locally.
enum MPIServedManager {
    static func request(_ manager: UInt64, _ operation: ManagerOperation, object: UInt64,
                        _ arguments: [UInt8]) throws(ManagerError) -> (ManagerStatus, [UInt8]) {
        var writer = WireWriter(capacity: 9 + arguments.count)
        writer.write(operation.rawValue)
        writer.write(object)
        arguments.withUnsafeBytes { writer.writeRaw($0) }
        let reply: [UInt8]
        if MPIObjects.isServing {
            reply = try MPIObjectRegistry.shared.managerRequest(manager, writer.bytes)
        } else {
            let outcome = writer.bytes.withUnsafeBytes { raw in
                Result { () throws(MPIObjectError) -> MPIObjectClient.Reply in
                    try MPIObjectClient.call(.managerRequest, id: manager, payload: raw)
                }
            }
            let answer: MPIObjectClient.Reply
            switch outcome {
            case .success(let reply):
                answer = reply
            case .failure(let error):
                throw ManagerError(.unavailable, "the manager served by rank 0 cannot be reached: \(error)")
            }
            switch answer.status {
            case .ok:
                reply = answer.payload
            case .refused:
                throw ManagerError(.unavailable, MPIObjectClient.message(answer))
            case .failed, .timedOut:
                throw ManagerError(.unavailable, "the manager served by rank 0 cannot answer: \(MPIObjectClient.message(answer))")
            }
        }
        guard let first = reply.first, let status = ManagerStatus(rawValue: first) else {
            throw ManagerError(.unavailable, "the manager served by rank 0 sent an unreadable reply")
        }
        return (status, Array(reply.dropFirst()))
    }
}
