import Wire

/// A handle of a served object (a `Queue`, `Lock`, `Pipe`… under mpirun, see `MPIObjects`) in
/// one process: an id in rank 0's `MPIObjectRegistry`, counted there while this handle lives
/// (ARCHITECTURE.md §8). Copies of a user value share the handle (a class); each decoded copy
/// is a handle of its own. Rank 0 runs requests on the registry directly; a worker rank sends
/// them through `MPIObjectClient`.
final class MPIServedObject: Sendable {
    let id: UInt64
    /// Whether this handle counts at rank 0 (a pipe end counts its handles itself).
    private let counted: Bool

    /// The handle of an object rank 0 has just added (counted by its creator's handle).
    init(created id: UInt64, counted: Bool = true) {
        self.id = id
        self.counted = counted
    }

    /// The handle of a decoded copy: counted at rank 0 now.
    init(decoded id: UInt64, counted: Bool = true) {
        self.id = id
        self.counted = counted
        guard counted else { return }
        if MPIObjects.isServing {
            MPIObjectRegistry.shared.retain(id)
        } else if MPIObjectClient.isAvailable {
            MPIObjectClient.retain(id)
        }
    }

    deinit {
        guard counted else { return }
        if MPIObjects.isServing {
            MPIObjectRegistry.shared.release(id)
        } else if MPIObjectClient.isAvailable {
            MPIObjectClient.release(id)
        }
    }

    /// Whether this process talks to the registry directly (rank 0).
    var isLocal: Bool { MPIObjects.isServing }

    /// Runs `request` on the object: on rank 0 for the calling thread, waiting at most
    /// `timeout` seconds while it is parked (nil: no limit); on a worker rank, by a message.
    func perform<S: ServedState>(_: S.Type, _ request: S.Request, timeout: Double? = nil) throws(MPIObjectError) -> S.Reply {
        if isLocal {
            return try MPIObjectRegistry.shared.perform(id, S.self, request, from: .currentThread, deadline: deadline(after: timeout))
        }
        var writer = WireWriter(capacity: 32)
        S.encode(request, into: &writer)
        let reply = try MPIObjectClient.call(S.kind, id: id, timeout: timeout.map { max(0, $0) }, body: writer.bytes)
        guard reply.status == .ok else { throw MPIObjectError(.notServed, String(decoding: reply.payload, as: UTF8.self)) }
        let decoded = reply.payload.withUnsafeBytes { raw in
            Result { () throws(WireError) -> S.Reply in
                var reader = WireReader(raw)
                return try S.decodeReply(&reader)
            }
        }
        switch decoded {
        case .success(let reply): return reply
        case .failure(let error): throw MPIObjectError(.transport, "rank 0 sent an unreadable \(S.kind) reply: \(error)")
        }
    }

    /// Checks, while encoding `kind`, that the value is not going to a local child process,
    /// and pins object `id` while the copy travels (`MPIObjectRegistry`).
    static func checkEncoding(_ kind: String, id: UInt64) throws(MPIObjectError) {
        try checkEncoding(kind)
        if MPIObjects.isServing {
            MPIObjectRegistry.shared.pin(id)
        } else if MPIObjectClient.isAvailable {
            MPIObjectClient.pin(id)
        }
    }

    /// Checks, while encoding `kind`, that the value is not going to a local child process.
    static func checkEncoding(_ kind: String) throws(MPIObjectError) {
        if AttachmentContext.isEncodingForChildProcess {
            throw MPIObjectError(
                .wrongProcess,
                "a \(kind) created under mpirun is served by rank 0 over MPI and cannot "
                    + "reach a local child Process: run the work in a Pool (the MPI backend, the default under mpirun), "
                    + "or set SWIFTMP_MPI_OBJECTS=local to keep objects in local shared memory")
        }
    }

    /// Checks, while decoding `kind`, that this process can reach rank 0's registry.
    static func checkDecoding(_ kind: String) throws(MPIObjectError) {
        guard MPIObjects.isServing || MPIObjectClient.isAvailable else {
            throw MPIObjectError(
                .wrongProcess,
                "a \(kind) served by rank 0 of an mpirun job reached a process that is not "
                    + "one of the job's ranks (a local worker process?): use a Pool with the MPI backend, or set "
                    + "SWIFTMP_MPI_OBJECTS=local so that objects live in local shared memory")
        }
    }

    /// Runs `body` for an operation whose API cannot throw (a count, a state, `Event.set`):
    /// a failure ends the job with the reason (`MPIObjectClient.abort`, MPI's fault model);
    /// `what` names the answer when it could not be read.
    func orAbort<R>(reading what: String, _ body: () throws -> R) -> R {
        do {
            return try body()
        } catch let error as MPIObjectError {
            MPIObjectClient.abort(error)
        } catch {
            MPIObjectClient.abort(MPIObjectError(.transport, "unreadable \(what) from rank 0: \(error)"))
        }
    }
}

/// Creates served objects on rank 0.
extension MPIServedObject {
    /// Serves `state`; the handle that counts it.
    static func serve(_ state: some ServedState, counted: Bool = true) -> MPIServedObject {
        MPIServedObject(created: MPIObjectRegistry.shared.add(state, handles: counted ? 1 : 0), counted: counted)
    }
}
