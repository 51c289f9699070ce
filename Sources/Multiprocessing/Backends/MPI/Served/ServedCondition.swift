import Wire

/// A served `Condition`: a served lock (the condition's) and its waiters in arrival order. A
/// wait releases the lock and parks in one step, so that no notify between the two is lost;
/// a notify wakes the oldest waiters (at most n). The woken waiter then acquires the lock
/// again by itself (as with every condition variable, someone else may take it first:
/// re-check the state).
final class ServedCondition: ServedState {
    static let kind = ServedKind.condition

    let lock: ServedLock
    /// Tokens of the waiters not yet notified, oldest first.
    private(set) var waiters: [UInt64] = []
    /// Tokens of the waiters notified and not yet gone.
    private(set) var notified: Set<UInt64> = []
    private var nextToken: UInt64 = 1

    init(lock: ServedLock) { self.lock = lock }

    enum Request: Equatable {
        case wait
        /// A wait that released the lock, for its notify (not sent: what `wait` parks as).
        case waiting(token: UInt64)
        case notify(Int)
    }

    enum Reply: Equatable {
        /// A wait's end: whether a notify came.
        case woken(Bool)
        case done
        /// The caller does not hold the condition's lock.
        case notHeld
    }

    func attempt(_ request: inout Request, from requester: Requester) -> ServedOutcome<Reply> {
        switch request {
        case .wait:
            guard lock.owner == requester else { return .reply(.notHeld) }
            let token = nextToken
            nextToken += 1
            waiters.append(token)
            _ = lock.give(by: requester)
            request = .waiting(token: token)
            return .park
        case .waiting(let token):
            return notified.remove(token) != nil ? .reply(.woken(true)) : .park
        case .notify(let count):
            guard lock.owner == requester else { return .reply(.notHeld) }
            let woken = waiters.prefix(max(0, count))
            notified.formUnion(woken)
            waiters.removeFirst(woken.count)
            return .reply(.done)
        }
    }

    func expire(_ request: Request, from _: Requester) -> Reply {
        guard case .waiting(let token) = request else { return .woken(false) }
        if notified.remove(token) != nil { return .woken(true) }
        waiters.removeAll { $0 == token }
        return .woken(false)
    }

    func abandon(_ request: Request, from _: Requester) {
        guard case .waiting(let token) = request else { return }
        waiters.removeAll { $0 == token }
        notified.remove(token)
    }

    static func encode(_ request: Request, into writer: inout WireWriter) {
        switch request {
        case .wait, .waiting: writer.write(UInt8(0))
        case .notify(let count):
            writer.write(UInt8(1))
            writer.write(Int64(count))
        }
    }

    static func decodeRequest(_ reader: inout WireReader) throws(WireError) -> Request {
        switch try reader.read(UInt8.self) {
        case 0: .wait
        case 1: .notify(Int(try reader.read(Int64.self)))
        default: throw WireError.corrupt("unknown condition request")
        }
    }

    static func encode(_ reply: Reply, into writer: inout WireWriter) {
        switch reply {
        case .woken(let notified):
            writer.write(UInt8(0))
            writer.write(notified)
        case .done: writer.write(UInt8(1))
        case .notHeld: writer.write(UInt8(2))
        }
    }

    static func decodeReply(_ reader: inout WireReader) throws(WireError) -> Reply {
        switch try reader.read(UInt8.self) {
        case 0: .woken(try reader.read(Bool.self))
        case 1: .done
        case 2: .notHeld
        default: throw WireError.corrupt("unknown condition reply")
        }
    }
}

/// `Condition`'s operations on a condition served by rank 0. Its lock is a served `Lock`.
struct MPIServedCondition: Sendable {
    let object: MPIServedObject
    let lock: MPIServedLock

    init(lock: MPIServedLock) throws(MPIObjectError) {
        let lockState = try MPIObjectRegistry.shared.withState(lock.object.id, as: ServedLock.self) { $0 }
        object = .serve(ServedCondition(lock: lockState))
        self.lock = lock
    }

    init(id: UInt64, lock: MPIServedLock) {
        object = MPIServedObject(decoded: id)
        self.lock = lock
    }

    private func notHeld(_ action: String) -> SynchronizationError {
        SynchronizationError(.notHeld, "Condition.\(action)() without holding its lock: acquire it first (withLock { … })")
    }

    private func perform(_ request: ServedCondition.Request, timeout: Double? = nil, _ action: String) throws(SynchronizationError) -> ServedCondition.Reply {
        let reply: ServedCondition.Reply
        do {
            reply = try object.perform(ServedCondition.self, request, timeout: timeout)
        } catch {
            throw SynchronizationError(.systemCall, "cannot \(action) on a Condition served by rank 0: \(error)")
        }
        if reply == .notHeld { throw notHeld(action) }
        return reply
    }

    /// Releases the lock, waits for a notify until `timeout`, acquires the lock again;
    /// whether a notify came.
    func wait(timeout: Double?) throws(SynchronizationError) -> Bool {
        let reply = try perform(.wait, timeout: timeout, "wait")
        _ = try lock.acquire(timeout: nil)
        return reply == .woken(true)
    }

    /// The waiters not yet notified, counted by rank 0; nil on a worker rank.
    var waiterCount: Int? {
        guard object.isLocal else { return nil }
        return object.orAbort(reading: "condition waiters") { () throws(MPIObjectError) -> Int in
            try MPIObjectRegistry.shared.withState(object.id, as: ServedCondition.self) { $0.waiters.count }
        }
    }

    /// Wakes up to `count` waiters.
    func notify(_ count: Int) throws(SynchronizationError) {
        _ = try perform(.notify(count), "notify")
    }
}
