import Wire

/// A served `Lock` or `RLock`: held by one requester (a thread of rank 0, a worker rank, a
/// local worker of a rank). An acquire of a held lock parks until it is released or its
/// timeout passes; an `RLock`'s owner may take it again and must release it as many times.
/// A holder that ends (its rank reports the local worker's end) lets go of it: the next
/// acquirer is told (`Lock.Acquisition.acquiredFromDeadOwner`), as with a local robust mutex.
final class ServedLock: ServedState {
    static let kind = ServedKind.lock

    let recursive: Bool
    private(set) var owner: Requester?
    /// How many times the owner holds it (1 for a `Lock`).
    private(set) var depth = 0
    /// The last holder ended holding it; the next acquirer has not been told yet.
    private var ownerDied = false

    init(recursive: Bool) { self.recursive = recursive }

    enum Request: Equatable {
        case acquire
        case release
        case state
    }

    enum Reply: Equatable {
        case done
        /// Acquired from a holder that ended holding it.
        case doneFromDeadOwner
        case timedOut
        /// A `Lock` its owner tries to take again (it would wait for ever).
        case alreadyHeld
        /// A release by a requester that does not hold it.
        case notHeld
        case state(locked: Bool, mine: Bool)
    }

    /// `requester` takes the lock: nil if another holds it.
    func take(by requester: Requester) -> Reply? {
        if owner == requester {
            guard recursive else { return .alreadyHeld }
            depth += 1
            return .done
        }
        guard owner == nil else { return nil }
        owner = requester
        depth = 1
        defer { ownerDied = false }
        return ownerDied ? .doneFromDeadOwner : .done
    }

    func processesEnded(_ gone: (Int) -> Bool) -> Bool {
        guard let owner, !owner.isThread, gone(owner.rank) else { return false }
        self.owner = nil
        depth = 0
        ownerDied = true
        return true
    }

    /// `requester` releases once; false if it does not hold the lock.
    func give(by requester: Requester) -> Bool {
        guard owner == requester else { return false }
        depth -= 1
        if depth == 0 { owner = nil }
        return true
    }

    func attempt(_ request: inout Request, from requester: Requester) -> ServedOutcome<Reply> {
        switch request {
        case .acquire:
            guard let reply = take(by: requester) else { return .park }
            return .reply(reply)
        case .release:
            return .reply(give(by: requester) ? .done : .notHeld)
        case .state:
            return .reply(.state(locked: owner != nil, mine: owner == requester))
        }
    }

    func expire(_: Request, from _: Requester) -> Reply { .timedOut }

    static func encode(_ request: Request, into writer: inout WireWriter) {
        switch request {
        case .acquire: writer.write(UInt8(0))
        case .release: writer.write(UInt8(1))
        case .state: writer.write(UInt8(2))
        }
    }

    static func decodeRequest(_ reader: inout WireReader) throws(WireError) -> Request {
        switch try reader.read(UInt8.self) {
        case 0: .acquire
        case 1: .release
        case 2: .state
        default: throw WireError.corrupt("unknown lock request")
        }
    }

    static func encode(_ reply: Reply, into writer: inout WireWriter) {
        switch reply {
        case .done: writer.write(UInt8(0))
        case .timedOut: writer.write(UInt8(1))
        case .alreadyHeld: writer.write(UInt8(2))
        case .notHeld: writer.write(UInt8(3))
        case .state(let locked, let mine):
            writer.write(UInt8(4))
            writer.write(locked)
            writer.write(mine)
        case .doneFromDeadOwner: writer.write(UInt8(5))
        }
    }

    static func decodeReply(_ reader: inout WireReader) throws(WireError) -> Reply {
        switch try reader.read(UInt8.self) {
        case 0: .done
        case 1: .timedOut
        case 2: .alreadyHeld
        case 3: .notHeld
        case 4: .state(locked: try reader.read(Bool.self), mine: try reader.read(Bool.self))
        case 5: .doneFromDeadOwner
        default: throw WireError.corrupt("unknown lock reply")
        }
    }
}

/// `Lock`'s (and `RLock`'s) operations on a lock served by rank 0. A lock acquired by a
/// worker rank's task is owned by that rank (or local worker); one acquired on rank 0 by the
/// acquiring thread.
struct MPIServedLock: Sendable {
    let object: MPIServedObject
    /// `RLock` or `Lock`, for messages: the kind the user made.
    let kind: String

    /// `recursive`: an `RLock`'s.
    init(recursive: Bool = false) {
        object = .serve(ServedLock(recursive: recursive))
        kind = recursive ? "RLock" : "Lock"
    }

    /// A decoded copy of a served `kind` ("Lock" or "RLock").
    init(id: UInt64, kind: String) {
        object = MPIServedObject(decoded: id)
        self.kind = kind
    }

    /// "a Lock", "an RLock".
    private var named: String { (kind.first == "R" ? "an " : "a ") + kind }

    private var holder: String { object.isLocal ? "this thread" : "this task" }

    func acquire(timeout: Double?) throws(SynchronizationError) -> Lock.Acquisition {
        switch try perform(.acquire, timeout: timeout, "acquire") {
        case .done: return .acquired
        case .doneFromDeadOwner: return .acquiredFromDeadOwner
        case .timedOut: return .timedOut
        default:
            throw SynchronizationError(
                .wouldDeadlock,
                "\(holder) already holds the \(kind): acquiring it again would wait "
                    + "for ever; release it first, or use an RLock for re-entrant locking")
        }
    }

    func release() throws(SynchronizationError) {
        guard try perform(.release, timeout: nil, "release") == .done else {
            throw SynchronizationError(
                .notHeld,
                "release() of \(named) \(holder) does not hold: only the \(object.isLocal ? "thread" : "task") "
                    + "that acquired it may release it" + (kind == "RLock" ? ", as many times as it acquired it" : ""))
        }
    }

    private func perform(_ request: ServedLock.Request, timeout: Double?, _ action: String) throws(SynchronizationError) -> ServedLock.Reply {
        do {
            return try object.perform(ServedLock.self, request, timeout: timeout)
        } catch {
            throw SynchronizationError(.systemCall, "cannot \(action) \(named) served by rank 0: \(error)")
        }
    }

    /// (locked by anyone, held by the caller); a worker that cannot reach rank 0 ends the job.
    var state: (locked: Bool, mine: Bool) {
        object.orAbort(reading: "lock state") {
            guard case .state(let locked, let mine) = try object.perform(ServedLock.self, .state) else {
                throw MPIObjectError(.transport, "rank 0 did not answer a lock state")
            }
            return (locked, mine)
        }
    }
}
