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

    /// Items in the queue; a worker that cannot reach rank 0 ends the job (the property
    /// cannot throw).
    var count: Int {
        do {
            if object.isLocal { return try MPIObjectRegistry.shared.queueCount(object.id) }
            let reply = try object.call(.queueCount)
            return try reply.payload.withUnsafeBytes { raw throws -> Int in
                var reader = WireReader(raw)
                return Int(try reader.read(Int64.self))
            }
        } catch let error as MPIObjectError {
            MPIObjectClient.abort(error)
        } catch {
            MPIObjectClient.abort(MPIObjectError(.transport, "unreadable queue count from rank 0: \(error)"))
        }
    }
}
