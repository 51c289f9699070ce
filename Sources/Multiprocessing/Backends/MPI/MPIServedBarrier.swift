import Wire

/// `Barrier`'s operations on a barrier served by rank 0. With an action, rank 0 holds the
/// pass open when its last party arrives; that party runs the action where it is (rank 0 or
/// a worker rank) and reports the outcome, which opens the pass or breaks the barrier.
struct MPIServedBarrier: Sendable {
    let object: MPIServedObject

    init(parties: Int, hasAction: Bool) {
        object = MPIServedObject(id: MPIObjectRegistry.shared.makeBarrier(parties: parties, hasAction: hasAction))
    }

    init(id: UInt64) {
        object = MPIServedObject(id: id)
    }

    /// Waits for the pass; the last party of a barrier with an action runs `action` first.
    func wait(timeout: Double?, action: (any BarrierAction)?) throws -> Int {
        let arrival: (index: Int, actionPass: UInt64?)
        if object.isLocal {
            guard let local = try MPIObjectRegistry.shared.barrierWait(object.id, deadline: deadline(after: timeout)) else {
                throw BrokenBarrierError(MPIObjectRegistry.brokenMessage)
            }
            arrival = local
        } else {
            let reply = try object.call(.barrierWait, timeout: timeout)
            guard reply.status == .ok else { throw BrokenBarrierError(MPIObjectClient.message(reply)) }
            arrival = try reply.payload.withUnsafeBytes { raw throws -> (Int, UInt64?) in
                var reader = WireReader(raw)
                let index = Int(try reader.read(Int64.self))
                return (index, try reader.read(UInt8.self) == 1 ? try reader.read(UInt64.self) : nil)
            }
        }
        guard let pass = arrival.actionPass else { return arrival.index }
        var failure: (any Error)?
        if let action {
            do { try action() } catch { failure = error }
        } else {
            failure = SynchronizationError(.invalidArgument, "the Barrier has an action but this copy of it arrived without one")
        }
        let opened: Bool
        if object.isLocal {
            opened = try MPIObjectRegistry.shared.barrierActionDone(object.id, pass: pass, succeeded: failure == nil)
        } else {
            var writer = WireWriter(capacity: 9)
            writer.write(pass)
            writer.write(UInt8(failure == nil ? 1 : 0))
            let reply = try writer.bytes.withUnsafeBytes { try object.call(.barrierActionDone, payload: $0) }
            opened = reply.status == .ok
        }
        if let failure { throw BrokenBarrierError("the Barrier's action threw \(failure); the barrier is broken") }
        guard opened else { throw BrokenBarrierError(MPIObjectRegistry.brokenMessage) }
        return arrival.index
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
        object.orAbort(reading: "barrier state") {
            if object.isLocal { return try MPIObjectRegistry.shared.barrierState(object.id) }
            let reply = try object.call(.barrierState)
            return try reply.payload.withUnsafeBytes { raw throws -> (Bool, Int) in
                var reader = WireReader(raw)
                return (try reader.read(UInt8.self) == 1, Int(try reader.read(Int64.self)))
            }
        }
    }
}
