/// A manager's condition variable, as its server holds it: the lock it is over (another of
/// the manager's objects, a `Lock` or an `RLock`) and its waiters. Python's
/// `Manager().Condition()`.
///
/// The server never blocks, so a wait is three steps, each a request answered at once:
/// `beginWait` releases the lock completely and registers the caller as a waiter (in one
/// step: no notify between the two is lost) and hands it a ticket; `notify` moves up to `n` of
/// the oldest waiters to notified; `resume` — which the waiter repeats — takes the lock back
/// (with as many levels as it held) once the waiter was notified or gave up (its timeout), and
/// says which. A waiter that dies leaves its ticket (a notify may be spent on it) and never
/// holds the lock.
struct ManagerCondition {
    /// The id of the lock object the condition is over.
    let lock: UInt64
    /// Tickets of the waiters not yet notified, oldest first.
    private(set) var waiting: [UInt64] = []
    /// Tickets notified, their waiters not back yet.
    private(set) var notified: Set<UInt64> = []
    /// Every ticket not back yet: the levels of the lock its waiter held.
    private var levels: [UInt64: Int] = [:]
    private var nextTicket: UInt64 = 1

    init(lock: UInt64) { self.lock = lock }

    enum Outcome: Equatable {
        case ticket(UInt64)
        /// The waiter has the lock back; whether it was notified.
        case resumed(notified: Bool)
        /// `notify` woke this many.
        case woke(Int)
        /// The caller does not hold the lock (wait, notify), or the waiter must ask again
        /// (resume: not notified yet, or the lock is held).
        case refused
        /// Not a ticket of this condition, or the lock object is gone.
        case invalid
    }

    /// Registers `caller`, which must hold the lock, and releases the lock completely.
    mutating func beginWait(_ caller: UInt64, objects: inout [UInt64: ManagerServer.Object]) -> Outcome {
        guard let held = ManagerLocks.levels(held: lock, by: caller, in: objects) else { return .invalid }
        guard held > 0 else { return .refused }
        ManagerLocks.free(lock, in: &objects)
        let ticket = nextTicket
        nextTicket += 1
        waiting.append(ticket)
        levels[ticket] = held
        return .ticket(ticket)
    }

    /// The waiter of `ticket` asks to go on: once notified, or at once when it gives up (its
    /// timeout ran out; a notify that reached it first still counts), it takes the lock back
    /// if the lock is free.
    mutating func resume(_ caller: UInt64, ticket: UInt64, givingUp: Bool, objects: inout [UInt64: ManagerServer.Object]) -> Outcome {
        guard let held = levels[ticket] else { return .invalid }
        let wasNotified = notified.contains(ticket)
        if !wasNotified {
            guard givingUp else { return .refused }
            waiting.removeAll { $0 == ticket }
        }
        guard let taken = ManagerLocks.take(lock, by: caller, levels: held, in: &objects) else { return .invalid }
        // Given up and not notified: no longer waiting, so no later notify is spent on it.
        guard taken else { return .refused }
        notified.remove(ticket)
        levels[ticket] = nil
        return .resumed(notified: wasNotified)
    }

    /// Wakes up to `n` of the waiters waiting now, oldest first; `caller` must hold the lock.
    mutating func notify(_ caller: UInt64, _ n: Int, objects: [UInt64: ManagerServer.Object]) -> Outcome {
        guard let held = ManagerLocks.levels(held: lock, by: caller, in: objects) else { return .invalid }
        guard held > 0 else { return .refused }
        let woken = waiting.prefix(max(0, n))
        notified.formUnion(woken)
        waiting.removeFirst(woken.count)
        return .woke(woken.count)
    }
}

/// The lock objects a manager's condition is over, seen from its server's table of objects.
enum ManagerLocks {
    /// How many levels `caller` holds lock `id` (a plain lock is not owned: held counts as 1
    /// for anyone, as Python's `Condition` sees a `Lock`); nil if `id` is no lock.
    static func levels(held id: UInt64, by caller: UInt64, in objects: [UInt64: ManagerServer.Object]) -> Int? {
        switch objects[id] {
        case .lock(let held)?: return held ? 1 : 0
        case .rlock(let owner, let count)?: return owner == caller && caller != 0 ? count : 0
        default: return nil
        }
    }

    /// Releases lock `id` completely.
    static func free(_ id: UInt64, in objects: inout [UInt64: ManagerServer.Object]) {
        switch objects[id] {
        case .lock?: objects[id] = .lock(false)
        case .rlock?: objects[id] = .rlock(owner: 0, count: 0)
        default: break
        }
    }

    /// Takes lock `id` for `caller` with `levels` levels if it is free: true if taken, false
    /// if held, nil if `id` is no lock.
    static func take(_ id: UInt64, by caller: UInt64, levels: Int, in objects: inout [UInt64: ManagerServer.Object]) -> Bool? {
        switch objects[id] {
        case .lock(let held)?:
            if held { return false }
            objects[id] = .lock(true)
            return true
        case .rlock(let owner, _)?:
            if owner != 0 || caller == 0 { return false }
            objects[id] = .rlock(owner: caller, count: levels)
            return true
        default: return nil
        }
    }
}
