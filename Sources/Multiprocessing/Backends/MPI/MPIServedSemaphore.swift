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
        object.orAbort(reading: "semaphore acquisition") {
            if object.isLocal {
                return try MPIObjectRegistry.shared.semaphoreAcquire(object.id, deadline: deadline(after: timeout))
            }
            return try object.call(.semaphoreAcquire, timeout: timeout).status == .ok
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
        object.orAbort(reading: "semaphore value") {
            if object.isLocal { return try MPIObjectRegistry.shared.semaphoreValue(object.id) }
            return try MPIObjectClient.int(try object.call(.semaphoreValue))
        }
    }
}
