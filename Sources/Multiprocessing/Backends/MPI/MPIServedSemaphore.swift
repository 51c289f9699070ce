import Wire

/// `Semaphore`'s and `BoundedSemaphore`'s operations on a semaphore served by rank 0. Their
/// `acquire` and `value` cannot throw: a worker rank that cannot reach rank 0 ends the job.
struct MPIServedSemaphore: Sendable {
    let object: MPIServedObject

    init(value: Int, bounded: Bool) {
        object = MPIServedObject(id: MPIObjectRegistry.shared.makeSemaphore(value: value, bounded: bounded))
    }

    init(id: UInt64) {
        object = MPIServedObject(id: id)
    }

    func acquire(timeout: Double?) -> Bool {
        do {
            if object.isLocal {
                return try MPIObjectRegistry.shared.semaphoreAcquire(object.id, deadline: deadline(after: timeout))
            }
            return try object.call(.semaphoreAcquire, timeout: timeout).status == .ok
        } catch {
            MPIObjectClient.abort(error)
        }
    }

    func release(_ count: Int) throws(SynchronizationError) {
        var refusal: String? = nil
        do {
            if object.isLocal {
                refusal = try MPIObjectRegistry.shared.semaphoreRelease(object.id, count: count)
            } else {
                let payload = MPIObjectRegistry.encode(Int64(count))
                let reply = try payload.withUnsafeBytes { raw in try object.call(.semaphoreRelease, payload: raw) }
                if reply.status != .ok { refusal = MPIObjectClient.message(reply) }
            }
        } catch {
            throw SynchronizationError(.systemCall, "cannot release a semaphore served by rank 0: \(error)")
        }
        if let refusal { throw SynchronizationError(.releasedTooManyTimes, refusal) }
    }

    var value: Int {
        do {
            if object.isLocal { return try MPIObjectRegistry.shared.semaphoreValue(object.id) }
            let reply = try object.call(.semaphoreValue)
            return try reply.payload.withUnsafeBytes { raw throws -> Int in
                var reader = WireReader(raw)
                return Int(try reader.read(Int64.self))
            }
        } catch let error as MPIObjectError {
            MPIObjectClient.abort(error)
        } catch {
            MPIObjectClient.abort(MPIObjectError(.transport, "unreadable semaphore value from rank 0: \(error)"))
        }
    }
}
