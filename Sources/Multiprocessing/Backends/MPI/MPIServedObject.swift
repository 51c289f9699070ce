/// What a served object (a `Queue`, `Lock`, `Pipe` end… under mpirun, see `MPIObjects`) is in a
/// process: an id in rank 0's `MPIObjectRegistry`. Rank 0 operates on the registry directly;
/// a worker rank sends requests through `MPIObjectClient`.
struct MPIServedObject: Sendable, Hashable {
    let id: UInt64

    /// Whether this process talks to the registry directly (rank 0).
    var isLocal: Bool { MPIObjects.isServing }

    /// Checks, while encoding `kind`, that the value is not going to a local child process.
    static func checkEncoding(_ kind: String) throws(MPIObjectError) {
        if AttachmentContext.isEncodingForChildProcess {
            throw MPIObjectError(.wrongProcess, "a \(kind) created under mpirun is served by rank 0 over MPI and cannot "
                + "reach a local child Process: run the work in a Pool (the MPI backend, the default under mpirun), "
                + "or set SWIFTMP_MPI_OBJECTS=local to keep objects in local shared memory")
        }
    }

    /// Checks, while decoding `kind`, that this process can reach rank 0's registry.
    static func checkDecoding(_ kind: String) throws(MPIObjectError) {
        guard MPIObjects.isServing || MPIObjectClient.isAvailable else {
            throw MPIObjectError(.wrongProcess, "a \(kind) served by rank 0 of an mpirun job reached a process that is not "
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

    /// A worker's request; `.failed` becomes `MPIObjectError(.notServed)`.
    func call(_ op: MPIObjectProtocol.Op, timeout: Double? = nil,
              payload: UnsafeRawBufferPointer = UnsafeRawBufferPointer(start: nil, count: 0)) throws(MPIObjectError) -> MPIObjectClient.Reply {
        let reply = try MPIObjectClient.call(op, id: id, timeout: timeout, payload: payload)
        if reply.status == .failed { throw MPIObjectError(.notServed, MPIObjectClient.message(reply)) }
        return reply
    }
}
