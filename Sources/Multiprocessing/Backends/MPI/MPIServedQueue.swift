import Wire

/// `Queue`'s operations on a queue served by rank 0 (items travel as their `Wire` bytes).
struct MPIServedQueue: Sendable {
    let object: MPIServedObject
    let maxSize: Int

    init(maxSize: Int) {
        object = MPIServedObject(id: MPIObjectRegistry.shared.makeQueue(maxSize: maxSize))
        self.maxSize = maxSize
    }

    init(id: UInt64, maxSize: Int) {
        object = MPIServedObject(id: id)
        self.maxSize = maxSize
    }

    func put(_ item: [UInt8], timeout: Double?) throws {
        if object.isLocal {
            guard try MPIObjectRegistry.shared.queuePut(object.id, item, deadline: deadline(after: timeout)) else { throw Full() }
            return
        }
        let reply = try item.withUnsafeBytes { try object.call(.queuePut, timeout: timeout, payload: $0) }
        if reply.status == .timedOut { throw Full() }
    }

    func get(timeout: Double?) throws -> [UInt8] {
        if object.isLocal {
            guard let item = try MPIObjectRegistry.shared.queueGet(object.id, deadline: deadline(after: timeout)) else { throw Empty() }
            return item
        }
        let reply = try object.call(.queueGet, timeout: timeout)
        if reply.status == .timedOut { throw Empty() }
        return reply.payload
    }

    /// `JoinableQueue.taskDone()`.
    func taskDone() throws {
        if object.isLocal {
            guard try MPIObjectRegistry.shared.queueTaskDone(object.id) else {
                throw QueueError(.taskDoneTooOften, "taskDone() called more times than items were put in the queue")
            }
            return
        }
        let reply = try object.call(.queueTaskDone)
        if reply.status != .ok { throw QueueError(.taskDoneTooOften, MPIObjectClient.message(reply)) }
    }

    /// `JoinableQueue.join(timeout:)`: false on time-out.
    func join(timeout: Double?) throws -> Bool {
        if object.isLocal { return try MPIObjectRegistry.shared.queueJoin(object.id, deadline: deadline(after: timeout)) }
        return try object.call(.queueJoin, timeout: timeout).status == .ok
    }

    /// Items in the queue; a worker that cannot reach rank 0 ends the job (the property
    /// cannot throw).
    var count: Int { number(.queueCount) }

    /// Items put and not yet marked done.
    var unfinished: Int { number(.queueUnfinished) }

    private func number(_ op: MPIObjectProtocol.Op) -> Int {
        object.orAbort(reading: "queue count") {
            if object.isLocal {
                return op == .queueCount ? try MPIObjectRegistry.shared.queueCount(object.id)
                    : try MPIObjectRegistry.shared.queueUnfinished(object.id)
            }
            return try MPIObjectClient.int(try object.call(op))
        }
    }
}
