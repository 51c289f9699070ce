import Wire

/// A served `Event`: a flag and how many times it was set. A wait on a clear event parks
/// until it is set (a set then clear while it waits still wakes it: it counts the sets).
final class ServedEvent: ServedState {
    static let kind = ServedKind.event

    private(set) var isSet = false
    /// Incremented each time the event goes from clear to set.
    private(set) var generation: UInt64 = 0

    enum Request: Equatable {
        case set
        case clear
        case isSet
        case wait
        /// A wait for a set after `generation` (not sent: what `wait` parks as).
        case waiting(since: UInt64)
    }

    enum Reply: Equatable {
        case done
        /// `isSet`, or a wait's outcome (whether the event was set).
        case flag(Bool)
    }

    func attempt(_ request: inout Request, from _: Requester) -> ServedOutcome<Reply> {
        switch request {
        case .set:
            if !isSet { generation += 1 }
            isSet = true
            return .reply(.done)
        case .clear:
            isSet = false
            return .reply(.done)
        case .isSet:
            return .reply(.flag(isSet))
        case .wait:
            if isSet { return .reply(.flag(true)) }
            request = .waiting(since: generation)
            return .park
        case .waiting(let since):
            return isSet || generation != since ? .reply(.flag(true)) : .park
        }
    }

    func expire(_ request: Request, from _: Requester) -> Reply {
        guard case .waiting(let since) = request else { return .flag(isSet) }
        return .flag(isSet || generation != since)
    }

    static func encode(_ request: Request, into writer: inout WireWriter) {
        switch request {
        case .set: writer.write(UInt8(0))
        case .clear: writer.write(UInt8(1))
        case .isSet: writer.write(UInt8(2))
        case .wait, .waiting: writer.write(UInt8(3))
        }
    }

    static func decodeRequest(_ reader: inout WireReader) throws(WireError) -> Request {
        switch try reader.read(UInt8.self) {
        case 0: .set
        case 1: .clear
        case 2: .isSet
        case 3: .wait
        default: throw WireError.corrupt("unknown event request")
        }
    }

    static func encode(_ reply: Reply, into writer: inout WireWriter) {
        switch reply {
        case .done: writer.write(UInt8(0))
        case .flag(let flag):
            writer.write(UInt8(1))
            writer.write(flag)
        }
    }

    static func decodeReply(_ reader: inout WireReader) throws(WireError) -> Reply {
        switch try reader.read(UInt8.self) {
        case 0: .done
        case 1: .flag(try reader.read(Bool.self))
        default: throw WireError.corrupt("unknown event reply")
        }
    }
}

/// `Event`'s operations on an event served by rank 0. `Event`'s API cannot throw: a worker
/// rank that cannot reach rank 0's service ends the job with the reason (MPI's fault model).
struct MPIServedEvent: Sendable {
    let object: MPIServedObject

    init() {
        object = .serve(ServedEvent())
    }

    init(id: UInt64) {
        object = MPIServedObject(decoded: id)
    }

    private func perform(_ request: ServedEvent.Request, timeout: Double? = nil) -> ServedEvent.Reply {
        object.orAbort(reading: "event state") { try object.perform(ServedEvent.self, request, timeout: timeout) }
    }

    func set(_ up: Bool) {
        _ = perform(up ? .set : .clear)
    }

    var isSet: Bool { perform(.isSet) == .flag(true) }

    /// The waits in progress, counted by rank 0 (its threads' and worker ranks'); nil on a
    /// worker rank.
    var waiterCount: Int? {
        guard object.isLocal else { return nil }
        return MPIObjectRegistry.shared.parkedCount(object.id)
    }

    func wait(timeout: Double?) -> Bool {
        perform(.wait, timeout: timeout) == .flag(true)
    }
}
