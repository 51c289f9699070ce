/// `Condition`'s operations on a condition served by rank 0 (see
/// `MPIObjectRegistry+Conditions.swift`). Its lock is a served `Lock`.
struct MPIServedCondition: Sendable {
    let object: MPIServedObject
    let lock: MPIServedLock

    init(lock: MPIServedLock) {
        object = MPIServedObject(id: MPIObjectRegistry.shared.makeCondition(lockID: lock.object.id))
        self.lock = lock
    }

    init(id: UInt64, lock: MPIServedLock) {
        object = MPIServedObject(id: id)
        self.lock = lock
    }

    private func notHeld(_ action: String) -> SynchronizationError {
        SynchronizationError(.notHeld, "Condition.\(action)() without holding its lock: acquire it first (withLock { … })")
    }

    /// Releases the lock, waits for a notify until `timeout`, acquires the lock again;
    /// whether a notify came.
    func wait(timeout: Double?) throws(SynchronizationError) -> Bool {
        let notified: Bool
        do {
            if object.isLocal {
                guard let outcome = try MPIObjectRegistry.shared.conditionWait(object.id, by: .currentThread,
                                                                                  deadline: deadline(after: timeout)) else {
                    throw notHeld("wait")
                }
                notified = outcome
            } else {
                let reply = try object.call(.conditionWait, timeout: timeout)
                if reply.status == .refused { throw notHeld("wait") }
                notified = reply.status == .ok
            }
        } catch let error as SynchronizationError {
            throw error
        } catch {
            throw SynchronizationError(.systemCall, "cannot wait on a Condition served by rank 0: \(error)")
        }
        _ = try lock.acquire(timeout: nil)
        return notified
    }

    /// The waiters not yet notified, counted by rank 0; nil on a worker rank.
    var waiterCount: Int? {
        guard object.isLocal else { return nil }
        return object.orAbort(reading: "condition waiters") { () throws(MPIObjectError) -> Int in
            try MPIObjectRegistry.shared.conditionWaiters(object.id)
        }
    }

    /// Wakes up to `count` waiters.
    func notify(_ count: Int) throws(SynchronizationError) {
        do {
            if object.isLocal {
                guard try MPIObjectRegistry.shared.conditionNotify(object.id, by: .currentThread, count: count) else {
                    throw notHeld("notify")
                }
                return
            }
            let payload = MPIObjectRegistry.encode(Int64(count))
            let reply = try payload.withUnsafeBytes { try object.call(.conditionNotify, payload: $0) }
            if reply.status == .refused { throw notHeld("notify") }
        } catch let error as SynchronizationError {
            throw error
        } catch {
            throw SynchronizationError(.systemCall, "cannot notify a Condition served by rank 0: \(error)")
        }
    }
}
