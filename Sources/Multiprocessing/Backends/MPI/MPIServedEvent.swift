/// `Event`'s operations on an event served by rank 0. `Event`'s API cannot throw: a worker
/// rank that cannot reach rank 0's service ends the job with the reason (MPI's fault model).
struct MPIServedEvent: Sendable {
    let object: MPIServedObject

    init() {
        object = MPIServedObject(id: MPIObjectRegistry.shared.makeEvent())
    }

    init(id: UInt64) {
        object = MPIServedObject(id: id)
    }

    private func perform<R>(_ body: () throws(MPIObjectError) -> R) -> R {
        object.orAbort(reading: "event state") { try body() }
    }

    func set(_ up: Bool) {
        perform { () throws(MPIObjectError) in
            if object.isLocal { return try MPIObjectRegistry.shared.eventSet(object.id, up) }
            _ = try object.call(up ? .eventSet : .eventClear)
        }
    }

    var isSet: Bool {
        perform { () throws(MPIObjectError) -> Bool in
            if object.isLocal { return try MPIObjectRegistry.shared.eventIsSet(object.id) }
            return try object.call(.eventIsSet).payload.first == 1
        }
    }

    /// The waits in progress, counted by rank 0; nil on a worker rank.
    var waiterCount: Int? {
        guard object.isLocal else { return nil }
        return perform { () throws(MPIObjectError) -> Int in try MPIObjectRegistry.shared.eventWaiters(object.id) }
    }

    func wait(timeout: Double?) -> Bool {
        perform { () throws(MPIObjectError) -> Bool in
            if object.isLocal { return try MPIObjectRegistry.shared.eventWait(object.id, deadline: deadline(after: timeout)) }
            return try object.call(.eventWait, timeout: timeout).status == .ok
        }
    }
}
