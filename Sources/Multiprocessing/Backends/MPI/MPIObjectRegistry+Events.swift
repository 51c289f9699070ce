/// Rank 0's served events and barriers: the objects whose waiters all go on together.
extension MPIObjectRegistry {
    struct EventState {
        var isSet = false
        var generation: UInt64 = 0
    }

    final class BarrierState {
        let parties: Int
        /// Parties arrived in the current pass.
        var count = 0
        /// Incremented when a pass opens or breaks.
        var pass: UInt64 = 0
        var broken = false
        /// Passes that ended broken (their waiters get `BrokenBarrierError`).
        var brokenPasses: Set<UInt64> = []
        init(parties: Int) { self.parties = parties }

        /// Ends the current pass as broken (its waiters fail) and marks the barrier broken.
        func breakPass() {
            broken = true
            if count > 0 {
                brokenPasses.insert(pass)
                pass += 1
                count = 0
            }
        }
    }

    // MARK: events

    func makeEvent() -> UInt64 {
        lock.withLock { () -> UInt64 in
            let id = newID()
            events[id] = EventState()
            return id
        }
    }

    func eventSet(_ id: UInt64, _ up: Bool) throws(MPIObjectError) {
        lock.lock()
        defer { lock.unlock() }
        guard var event = events[id] else { throw unknown("event", id) }
        if up && !event.isSet { event.generation += 1 }
        event.isSet = up
        events[id] = event
        if up { settle() }
    }

    func eventIsSet(_ id: UInt64) throws(MPIObjectError) -> Bool {
        lock.lock()
        defer { lock.unlock() }
        guard let event = events[id] else { throw unknown("event", id) }
        return event.isSet
    }

    /// Whether the event was set, or set since the call began, before `deadline`.
    func eventWait(_ id: UInt64, deadline: UInt64?) throws(MPIObjectError) -> Bool {
        lock.lock()
        defer { lock.unlock() }
        guard let seen = events[id] else { throw unknown("event", id) }
        while true {
            let now = events[id]!
            if now.isSet || now.generation != seen.generation { return true }
            if !lock.wait(until: deadline) {
                let last = events[id]!
                return last.isSet || last.generation != seen.generation
            }
        }
    }

    /// Under `lock`: the reply to a worker's event request, nil if it must wait.
    func attemptEvent(_ entry: Parked) -> [UInt8]? {
        guard var event = events[entry.id] else { return unknownReply("event", entry.id) }
        switch entry.op {
        case .eventSet, .eventClear:
            let up = entry.op == .eventSet
            if up && !event.isSet { event.generation += 1 }
            event.isSet = up
            events[entry.id] = event
            return MPIObjectProtocol.reply(.ok)
        case .eventIsSet:
            return MPIObjectProtocol.reply(.ok, [event.isSet ? 1 : 0])
        default:
            guard event.isSet || event.generation != entry.generation else { return nil }
            return MPIObjectProtocol.reply(.ok, [1])
        }
    }

    // MARK: barriers

    func makeBarrier(parties: Int) -> UInt64 {
        lock.withLock { () -> UInt64 in
            let id = newID()
            barriers[id] = BarrierState(parties: parties)
            return id
        }
    }

    static let brokenMessage = "the Barrier is broken (a wait timed out, abort() or reset() was called): reset() it to use it again"

    /// `Barrier.wait` on rank 0: the arrival index, or nil if the barrier is or became broken.
    func barrierWait(_ id: UInt64, deadline: UInt64?) throws(MPIObjectError) -> Int? {
        lock.lock()
        defer { lock.unlock() }
        guard let barrier = barriers[id] else { throw unknown("barrier", id) }
        guard !barrier.broken else { return nil }
        let index = barrier.count
        let myPass = barrier.pass
        barrier.count += 1
        if barrier.count == barrier.parties {
            barrier.pass += 1
            barrier.count = 0
            settle()
            return index
        }
        while barrier.pass == myPass {
            if !lock.wait(until: deadline), barrier.pass == myPass {
                barrier.breakPass()
                settle()
                return nil
            }
        }
        return barrier.brokenPasses.contains(myPass) ? nil : index
    }

    /// `abort()` (breaks) or `reset()` (breaks a pass in progress, then clears).
    func barrierBreak(_ id: UInt64, reset: Bool) throws(MPIObjectError) {
        lock.lock()
        defer { lock.unlock() }
        guard let barrier = barriers[id] else { throw unknown("barrier", id) }
        breakBarrier(barrier, reset: reset)
        settle()
    }

    /// Under `lock`: `abort()` or `reset()`.
    private func breakBarrier(_ barrier: BarrierState, reset: Bool) {
        if reset {
            if barrier.count > 0 { barrier.breakPass() }
            barrier.broken = false
        } else {
            barrier.breakPass()
        }
    }

    func barrierState(_ id: UInt64) throws(MPIObjectError) -> (broken: Bool, waiting: Int) {
        lock.lock()
        defer { lock.unlock() }
        guard let barrier = barriers[id] else { throw unknown("barrier", id) }
        return (barrier.broken, barrier.broken ? 0 : barrier.count)
    }

    /// Under `lock`: a worker arrives at a barrier: answered at once (broken, or the last
    /// party), else parked until its pass opens or breaks.
    func arrive(_ request: Parked) {
        guard let barrier = barriers[request.id] else {
            replies.append((request.rank, unknownReply("barrier", request.id)))
            return
        }
        guard !barrier.broken else {
            replies.append((request.rank, MPIObjectProtocol.failure(.refused, Self.brokenMessage)))
            return
        }
        var entry = Parked(rank: request.rank, op: request.op, id: request.id, deadline: request.deadline,
                           payload: [], generation: barrier.pass)
        entry.index = barrier.count
        barrier.count += 1
        if barrier.count == barrier.parties {
            barrier.pass += 1
            barrier.count = 0
            replies.append((entry.rank, MPIObjectProtocol.reply(.ok, Self.encode(Int64(entry.index)))))
            settle()
        } else {
            parked.append(entry)
        }
    }

    /// Under `lock`: the reply to a worker's barrier request, nil if it must wait.
    func attemptBarrier(_ entry: Parked) -> [UInt8]? {
        guard let barrier = barriers[entry.id] else { return unknownReply("barrier", entry.id) }
        switch entry.op {
        case .barrierWait:
            // Parked: answered once its pass has opened or broken.
            if barrier.pass == entry.generation { return nil }
            if barrier.brokenPasses.contains(entry.generation) {
                return MPIObjectProtocol.failure(.refused, Self.brokenMessage)
            }
            return MPIObjectProtocol.reply(.ok, Self.encode(Int64(entry.index)))
        case .barrierAbort, .barrierReset:
            breakBarrier(barrier, reset: entry.op == .barrierReset)
            return MPIObjectProtocol.reply(.ok)
        default:
            return MPIObjectProtocol.reply(.ok, [barrier.broken ? 1 : 0] + Self.encode(Int64(barrier.broken ? 0 : barrier.count)))
        }
    }
}
