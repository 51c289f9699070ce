/// Rank 0's served events and barriers: the objects whose waiters all go on together.
extension MPIObjectRegistry {
    struct EventState {
        var isSet = false
        var generation: UInt64 = 0
        /// Rank 0's threads in `eventWait` now (worker ranks' waits are parked requests).
        var localWaiters = 0
    }

    final class BarrierState {
        let parties: Int
        /// Whether the last party to arrive runs an action before the pass opens.
        let hasAction: Bool
        /// The pass whose action is running (its last party holds it open), if any.
        var actionPass: UInt64?
        /// Parties arrived in the current pass.
        var count = 0
        /// Incremented when a pass opens or breaks.
        var pass: UInt64 = 0
        var broken = false
        /// Passes that ended broken (their waiters get `BrokenBarrierError`).
        var brokenPasses: Set<UInt64> = []
        init(parties: Int, hasAction: Bool) {
            self.parties = parties
            self.hasAction = hasAction
        }

        /// The last party arrived: opens the pass, or (with an action) returns the pass the
        /// arriving party must run the action for and then end with `actionDone`.
        func lastArrived() -> UInt64? {
            if hasAction {
                actionPass = pass
                return pass
            }
            pass += 1
            count = 0
            return nil
        }

        /// The action of `actionPass` ended: opens the pass if it succeeded, else breaks it.
        /// False when the pass broke meanwhile (a timeout, `abort()`, `reset()`).
        func actionDone(pass actionPass: UInt64, succeeded: Bool) -> Bool {
            guard self.actionPass == actionPass, pass == actionPass else { return false }
            self.actionPass = nil
            if succeeded {
                pass += 1
                count = 0
            } else {
                breakPass()
            }
            return succeeded
        }

        /// Ends the current pass as broken (its waiters fail) and marks the barrier broken.
        func breakPass() {
            actionPass = nil
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
        events[id]!.localWaiters += 1
        defer { events[id]!.localWaiters -= 1 }
        while true {
            let now = events[id]!
            if now.isSet || now.generation != seen.generation { return true }
            if !lock.wait(until: deadline) {
                let last = events[id]!
                return last.isSet || last.generation != seen.generation
            }
        }
    }

    /// The waits in progress on an event: rank 0's threads and worker ranks' parked requests.
    func eventWaiters(_ id: UInt64) throws(MPIObjectError) -> Int {
        lock.lock()
        defer { lock.unlock() }
        guard let event = events[id] else { throw unknown("event", id) }
        return event.localWaiters + parked.count { $0.op == .eventWait && $0.id == id }
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

    func makeBarrier(parties: Int, hasAction: Bool) -> UInt64 {
        lock.withLock { () -> UInt64 in
            let id = newID()
            barriers[id] = BarrierState(parties: parties, hasAction: hasAction)
            return id
        }
    }

    static let brokenMessage = "the Barrier is broken (a wait timed out, abort() or reset() was called): reset() it to use it again"

    /// `Barrier.wait` on rank 0: the arrival index and, for the last party of a barrier
    /// with an action, the pass to run it for (then `barrierActionDone`); nil if the barrier
    /// is or became broken.
    func barrierWait(_ id: UInt64, deadline: UInt64?) throws(MPIObjectError) -> (index: Int, actionPass: UInt64?)? {
        lock.lock()
        defer { lock.unlock() }
        guard let barrier = barriers[id] else { throw unknown("barrier", id) }
        guard !barrier.broken else { return nil }
        let index = barrier.count
        let myPass = barrier.pass
        barrier.count += 1
        if barrier.count == barrier.parties {
            let actionPass = barrier.lastArrived()
            if actionPass == nil { settle() }
            return (index, actionPass)
        }
        while barrier.pass == myPass {
            if !lock.wait(until: deadline), barrier.pass == myPass {
                barrier.breakPass()
                settle()
                return nil
            }
        }
        return barrier.brokenPasses.contains(myPass) ? nil : (index, nil)
    }

    /// Rank 0's last party finished the action of `pass`: true if the pass opened, false if
    /// the barrier broke (the action threw, or the pass broke while it ran).
    func barrierActionDone(_ id: UInt64, pass: UInt64, succeeded: Bool) throws(MPIObjectError) -> Bool {
        lock.lock()
        defer { lock.unlock() }
        guard let barrier = barriers[id] else { throw unknown("barrier", id) }
        let opened = barrier.actionDone(pass: pass, succeeded: succeeded)
        settle()
        return opened
    }

    /// A barrier wait's answer: the arrival index, then 1 and the pass when this party runs
    /// the action, else 0.
    static func barrierReply(index: Int, actionPass: UInt64?) -> [UInt8] {
        var writer = WireWriter(capacity: 17)
        writer.write(Int64(index))
        writer.write(UInt8(actionPass == nil ? 0 : 1))
        if let actionPass { writer.write(actionPass) }
        return MPIObjectProtocol.reply(.ok, writer.bytes)
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
            let actionPass = barrier.lastArrived()
            replies.append((entry.rank, Self.barrierReply(index: entry.index, actionPass: actionPass)))
            if actionPass == nil { settle() }
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
            return Self.barrierReply(index: entry.index, actionPass: nil)
        case .barrierActionDone:
            let done: (pass: UInt64, succeeded: Bool)? = entry.payload.withUnsafeBytes { raw in
                var reader = WireReader(raw)
                guard let pass = try? reader.read(UInt64.self), let flag = try? reader.read(UInt8.self) else { return nil }
                return (pass, flag == 1)
            }
            guard let done else { return MPIObjectProtocol.failure(.failed, "rank 0 cannot read a barrier action's outcome") }
            return barrier.actionDone(pass: done.pass, succeeded: done.succeeded)
                ? MPIObjectProtocol.reply(.ok) : MPIObjectProtocol.failure(.refused, Self.brokenMessage)
        case .barrierAbort, .barrierReset:
            breakBarrier(barrier, reset: entry.op == .barrierReset)
            return MPIObjectProtocol.reply(.ok)
        default:
            return MPIObjectProtocol.reply(.ok, [barrier.broken ? 1 : 0] + Self.encode(Int64(barrier.broken ? 0 : barrier.count)))
        }
    }
}
