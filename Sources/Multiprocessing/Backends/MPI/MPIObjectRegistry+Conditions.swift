import Wire

/// Rank 0's served conditions (`Condition` under mpirun): a served lock (the condition's)
/// and the waiters in arrival order. A wait releases the lock and parks the waiter in one
/// step under the registry's lock, so that no notify between the two is lost; a notify wakes
/// the oldest waiters. The woken waiter then acquires the lock again by itself (as with
/// every condition variable, someone else may take it first: re-check the state).
extension MPIObjectRegistry {
    final class ConditionState {
        let lockID: UInt64
        /// Tokens of the waiters not yet notified, oldest first.
        var waiters: [UInt64] = []
        /// Tokens of the waiters notified and not yet gone.
        var notified: Set<UInt64> = []
        init(lockID: UInt64) { self.lockID = lockID }

        func notify(_ count: Int) {
            let woken = waiters.prefix(max(0, count))
            notified.formUnion(woken)
            waiters.removeFirst(woken.count)
        }
    }

    static let conditionNotHeldMessage = "the Condition's lock is not held by the caller: acquire it first (withLock { … })"

    func makeCondition(lockID: UInt64) -> UInt64 {
        lock.withLock { () -> UInt64 in
            let id = newID()
            conditions[id] = ConditionState(lockID: lockID)
            return id
        }
    }

    /// Under `lock`: the condition, if `owner` holds its lock.
    private func condition(_ id: UInt64, heldBy owner: Owner) throws(MPIObjectError) -> ConditionState? {
        guard let condition = conditions[id], let holder = locks[condition.lockID] else { throw unknown("condition", id) }
        return holder == owner ? condition : nil
    }

    // MARK: rank 0's own operations

    /// Releases the lock `owner` holds and waits for a notify until `deadline`: whether it
    /// came, nil if `owner` does not hold the lock. The caller acquires the lock again.
    func conditionWait(_ id: UInt64, by owner: Owner, deadline: UInt64?) throws(MPIObjectError) -> Bool? {
        lock.lock()
        defer { lock.unlock() }
        guard let condition = try condition(id, heldBy: owner) else { return nil }
        let token = newID()
        condition.waiters.append(token)
        _ = give(condition.lockID, by: owner)
        settle()
        while !condition.notified.contains(token) {
            if !lock.wait(until: deadline), !condition.notified.contains(token) {
                condition.waiters.removeAll { $0 == token }
                return false
            }
        }
        condition.notified.remove(token)
        return true
    }

    /// The waiters not yet notified (rank 0's threads and worker ranks' parked requests).
    func conditionWaiters(_ id: UInt64) throws(MPIObjectError) -> Int {
        lock.lock()
        defer { lock.unlock() }
        guard let condition = conditions[id] else { throw unknown("condition", id) }
        return condition.waiters.count
    }

    /// Wakes up to `count` waiters; false if `owner` does not hold the lock.
    func conditionNotify(_ id: UInt64, by owner: Owner, count: Int) throws(MPIObjectError) -> Bool {
        lock.lock()
        defer { lock.unlock() }
        guard let condition = try condition(id, heldBy: owner) else { return false }
        condition.notify(count)
        settle()
        return true
    }

    // MARK: worker requests

    /// Under `lock`: a worker starts waiting (refused if it does not hold the lock): its
    /// lock is released and the request parked until a notify or its deadline.
    func startWaiting(_ request: Parked) {
        let condition: ConditionState?
        do {
            condition = try self.condition(request.id, heldBy: .rank(request.rank))
        } catch {
            replies.append((request.rank, MPIObjectProtocol.failure(.failed, error.message)))
            return
        }
        guard let condition else {
            replies.append((request.rank, MPIObjectProtocol.failure(.refused, Self.conditionNotHeldMessage)))
            return
        }
        let token = newID()
        condition.waiters.append(token)
        _ = give(condition.lockID, by: .rank(request.rank))
        parked.append(Parked(rank: request.rank, op: request.op, id: request.id, deadline: request.deadline,
                             payload: [], generation: token))
        settle()
    }

    /// Under `lock`: the reply to a worker's condition request, nil if it must wait.
    func attemptCondition(_ entry: Parked) -> [UInt8]? {
        guard let condition = conditions[entry.id] else { return unknownReply("condition", entry.id) }
        if entry.op == .conditionWait {
            guard condition.notified.remove(entry.generation) != nil else { return nil }
            return MPIObjectProtocol.reply(.ok)
        }
        guard locks[condition.lockID] == .some(.rank(entry.rank)) else {
            return MPIObjectProtocol.failure(.refused, Self.conditionNotHeldMessage)
        }
        let count = entry.payload.withUnsafeBytes { raw -> Int in
            var reader = WireReader(raw)
            return Int((try? reader.read(Int64.self)) ?? 1)
        }
        condition.notify(count)
        return MPIObjectProtocol.reply(.ok)
    }
}
