import Wire

/// A served `Barrier`: parties arrive and park until the last one opens the pass. With an
/// action, rank 0 holds the pass open when its last party arrives; that party runs the action
/// where it is (rank 0 or a worker rank) and reports the outcome, which opens the pass or
/// breaks the barrier. A wait that times out breaks the barrier, as in Python.
final class ServedBarrier: ServedState {
    static let kind = ServedKind.barrier

    let parties: Int
    /// Whether the last party to arrive runs an action before the pass opens.
    let hasAction: Bool
    /// The pass whose action is running (its last party holds it open), if any.
    private(set) var actionPass: UInt64?
    /// Parties arrived in the current pass.
    private(set) var count = 0
    /// Incremented when a pass opens or breaks.
    private(set) var pass: UInt64 = 0
    private(set) var broken = false
    /// Passes that ended broken (their waiters get `BrokenBarrierError`).
    private var brokenPasses: Set<UInt64> = []

    init(parties: Int, hasAction: Bool) {
        self.parties = parties
        self.hasAction = hasAction
    }

    enum Request: Equatable {
        case wait
        /// An arrival waiting for its pass (not sent: what `wait` parks as).
        case waiting(pass: UInt64, index: Int)
        /// The last party ran the action of `pass`.
        case actionDone(pass: UInt64, succeeded: Bool)
        case abort
        case reset
        case state
    }

    enum Reply: Equatable {
        /// The pass opened: the arrival index, and for the last party of a barrier with an
        /// action the pass to run it for (then `actionDone`).
        case passed(index: Int, actionPass: UInt64?)
        case broken
        case done
        case state(broken: Bool, waiting: Int)
    }

    static let brokenMessage = "the Barrier is broken (a wait timed out, abort() or reset() was called): reset() it to use it again"

    /// Ends the current pass as broken (its waiters fail) and marks the barrier broken.
    private func breakPass() {
        actionPass = nil
        broken = true
        if count > 0 {
            brokenPasses.insert(pass)
            pass += 1
            count = 0
        }
    }

    func attempt(_ request: inout Request, from _: Requester) -> ServedOutcome<Reply> {
        switch request {
        case .wait:
            guard !broken else { return .reply(.broken) }
            let index = count
            count += 1
            guard count == parties else {
                request = .waiting(pass: pass, index: index)
                return .park
            }
            if hasAction {
                actionPass = pass
                return .reply(.passed(index: index, actionPass: pass))
            }
            pass += 1
            count = 0
            return .reply(.passed(index: index, actionPass: nil))
        case .waiting(let myPass, let index):
            if pass == myPass { return .park }
            return .reply(brokenPasses.contains(myPass) ? .broken : .passed(index: index, actionPass: nil))
        case .actionDone(let donePass, let succeeded):
            guard actionPass == donePass, pass == donePass else { return .reply(.broken) }
            actionPass = nil
            guard succeeded else {
                breakPass()
                return .reply(.broken)
            }
            pass += 1
            count = 0
            return .reply(.done)
        case .abort:
            breakPass()
            return .reply(.done)
        case .reset:
            if count > 0 { breakPass() }
            broken = false
            return .reply(.done)
        case .state:
            return .reply(.state(broken: broken, waiting: broken ? 0 : count))
        }
    }

    func expire(_ request: Request, from requester: Requester) -> Reply {
        guard case .waiting(let myPass, _) = request else { return .broken }
        if pass == myPass { breakPass() }
        var request = request
        guard case .reply(let reply) = attempt(&request, from: requester) else { return .broken }
        return reply
    }

    static func encode(_ request: Request, into writer: inout WireWriter) {
        switch request {
        case .wait, .waiting: writer.write(UInt8(0))
        case .actionDone(let pass, let succeeded):
            writer.write(UInt8(1))
            writer.write(pass)
            writer.write(succeeded)
        case .abort: writer.write(UInt8(2))
        case .reset: writer.write(UInt8(3))
        case .state: writer.write(UInt8(4))
        }
    }

    static func decodeRequest(_ reader: inout WireReader) throws(WireError) -> Request {
        switch try reader.read(UInt8.self) {
        case 0: .wait
        case 1: .actionDone(pass: try reader.read(UInt64.self), succeeded: try reader.read(Bool.self))
        case 2: .abort
        case 3: .reset
        case 4: .state
        default: throw WireError.corrupt("unknown barrier request")
        }
    }

    static func encode(_ reply: Reply, into writer: inout WireWriter) {
        switch reply {
        case .passed(let index, let actionPass):
            writer.write(UInt8(0))
            writer.write(Int64(index))
            writer.write(actionPass != nil)
            if let actionPass { writer.write(actionPass) }
        case .broken: writer.write(UInt8(1))
        case .done: writer.write(UInt8(2))
        case .state(let broken, let waiting):
            writer.write(UInt8(3))
            writer.write(broken)
            writer.write(Int64(waiting))
        }
    }

    static func decodeReply(_ reader: inout WireReader) throws(WireError) -> Reply {
        switch try reader.read(UInt8.self) {
        case 0:
            let index = Int(try reader.read(Int64.self))
            return .passed(index: index, actionPass: try reader.read(Bool.self) ? try reader.read(UInt64.self) : nil)
        case 1: return .broken
        case 2: return .done
        case 3: return .state(broken: try reader.read(Bool.self), waiting: Int(try reader.read(Int64.self)))
        default: throw WireError.corrupt("unknown barrier reply")
        }
    }
}

/// `Barrier`'s operations on a barrier served by rank 0.
struct MPIServedBarrier: Sendable {
    let object: MPIServedObject

    init(parties: Int, hasAction: Bool) {
        object = .serve(ServedBarrier(parties: parties, hasAction: hasAction))
    }

    init(id: UInt64) {
        object = MPIServedObject(decoded: id)
    }

    /// Waits for the pass; the last party of a barrier with an action runs `action` first.
    func wait(timeout: Double?, action: (any BarrierAction)?) throws -> Int {
        guard case .passed(let index, let actionPass) = try object.perform(ServedBarrier.self, .wait, timeout: timeout) else {
            throw BrokenBarrierError(ServedBarrier.brokenMessage)
        }
        guard let actionPass else { return index }
        var failure: (any Error)?
        if let action {
            do { try action() } catch { failure = error }
        } else {
            failure = SynchronizationError(.invalidArgument, "the Barrier has an action but this copy of it arrived without one")
        }
        let opened = try object.perform(ServedBarrier.self, .actionDone(pass: actionPass, succeeded: failure == nil)) == .done
        if let failure { throw BrokenBarrierError("the Barrier's action threw \(failure); the barrier is broken") }
        guard opened else { throw BrokenBarrierError(ServedBarrier.brokenMessage) }
        return index
    }

    func breakOrReset(reset: Bool) throws(SynchronizationError) {
        do {
            _ = try object.perform(ServedBarrier.self, reset ? .reset : .abort)
        } catch {
            throw SynchronizationError(.systemCall, "cannot \(reset ? "reset" : "abort") a Barrier served by rank 0: \(error)")
        }
    }

    /// (broken, parties waiting); a worker that cannot reach rank 0 ends the job.
    var state: (broken: Bool, waiting: Int) {
        object.orAbort(reading: "barrier state") {
            guard case .state(let broken, let waiting) = try object.perform(ServedBarrier.self, .state) else {
                throw MPIObjectError(.transport, "rank 0 did not answer a barrier state")
            }
            return (broken, waiting)
        }
    }
}
