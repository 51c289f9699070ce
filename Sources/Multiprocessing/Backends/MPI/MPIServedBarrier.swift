import Wire

/// `Barrier`'s operations on a barrier served by rank 0 (without an action: see `Barrier`).
struct MPIServedBarrier: Sendable {
    let object: MPIServedObject

    init(parties: Int) {
        object = MPIServedObject(id: MPIObjectRegistry.shared.makeBarrier(parties: parties))
    }

    init(id: UInt64) {
        object = MPIServedObject(id: id)
    }

    func wait(timeout: Double?) throws -> Int {
        if object.isLocal {
            guard let index = try MPIObjectRegistry.shared.barrierWait(object.id, deadline: deadline(after: timeout)) else {
                throw BrokenBarrierError(MPIObjectRegistry.brokenMessage)
            }
            return index
        }
        let reply = try object.call(.barrierWait, timeout: timeout)
        guard reply.status == .ok else { throw BrokenBarrierError(MPIObjectClient.message(reply)) }
        return try reply.payload.withUnsafeBytes { raw throws -> Int in
            var reader = WireReader(raw)
            return Int(try reader.read(Int64.self))
        }
    }

    func breakOrReset(reset: Bool) throws(SynchronizationError) {
        do {
            if object.isLocal { return try MPIObjectRegistry.shared.barrierBreak(object.id, reset: reset) }
            _ = try object.call(reset ? .barrierReset : .barrierAbort)
        } catch {
            throw SynchronizationError(.systemCall, "cannot \(reset ? "reset" : "abort") a Barrier served by rank 0: \(error)")
        }
    }

    /// (broken, parties waiting); a worker that cannot reach rank 0 ends the job.
    var state: (broken: Bool, waiting: Int) {
        do {
            if object.isLocal { return try MPIObjectRegistry.shared.barrierState(object.id) }
            let reply = try object.call(.barrierState)
            return try reply.payload.withUnsafeBytes { raw throws -> (Bool, Int) in
                var reader = WireReader(raw)
                return (try reader.read(UInt8.self) == 1, Int(try reader.read(Int64.self)))
            }
        } catch let error as MPIObjectError {
            MPIObjectClient.abort(error)
        } catch {
            MPIObjectClient.abort(MPIObjectError(.transport, "unreadable barrier state from rank 0: \(error)"))
        }
    }
}
