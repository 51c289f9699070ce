import Wire

/// A served `Semaphore` or `BoundedSemaphore`: a count; an acquire at zero parks until a
/// release or its timeout.
final class ServedSemaphore: ServedState {
    static let kind = ServedKind.semaphore

    private(set) var value: Int
    /// `BoundedSemaphore`: the initial value, which `release` may not exceed.
    let bound: Int?

    init(value: Int, bounded: Bool) {
        self.value = value
        bound = bounded ? value : nil
    }

    enum Request: Equatable {
        case acquire
        case release(Int)
        case value
    }

    enum Reply: Equatable {
        case done
        case timedOut
        /// A `BoundedSemaphore` released more times than acquired (its bound).
        case tooManyReleases(bound: Int)
        case value(Int)
    }

    func attempt(_ request: inout Request, from _: Requester) -> ServedOutcome<Reply> {
        switch request {
        case .acquire:
            guard value > 0 else { return .park }
            value -= 1
            return .reply(.done)
        case .release(let count):
            if let bound, value + count > bound { return .reply(.tooManyReleases(bound: bound)) }
            value += count
            return .reply(.done)
        case .value:
            return .reply(.value(value))
        }
    }

    func expire(_: Request, from _: Requester) -> Reply { .timedOut }

    func undo(_ request: Request, _ reply: Reply, from _: Requester) {
        if request == .acquire, reply == .done { value += 1 }
    }

    static func encode(_ request: Request, into writer: inout WireWriter) {
        switch request {
        case .acquire: writer.write(UInt8(0))
        case .release(let count):
            writer.write(UInt8(1))
            writer.write(Int64(count))
        case .value: writer.write(UInt8(2))
        }
    }

    static func decodeRequest(_ reader: inout WireReader) throws(WireError) -> Request {
        switch try reader.read(UInt8.self) {
        case 0: .acquire
        case 1: .release(Int(try reader.read(Int64.self)))
        case 2: .value
        default: throw WireError.corrupt("unknown semaphore request")
        }
    }

    static func encode(_ reply: Reply, into writer: inout WireWriter) {
        switch reply {
        case .done: writer.write(UInt8(0))
        case .timedOut: writer.write(UInt8(1))
        case .tooManyReleases(let bound):
            writer.write(UInt8(2))
            writer.write(Int64(bound))
        case .value(let value):
            writer.write(UInt8(3))
            writer.write(Int64(value))
        }
    }

    static func decodeReply(_ reader: inout WireReader) throws(WireError) -> Reply {
        switch try reader.read(UInt8.self) {
        case 0: .done
        case 1: .timedOut
        case 2: .tooManyReleases(bound: Int(try reader.read(Int64.self)))
        case 3: .value(Int(try reader.read(Int64.self)))
        default: throw WireError.corrupt("unknown semaphore reply")
        }
    }
}

/// `Semaphore`'s and `BoundedSemaphore`'s operations on a semaphore served by rank 0. Their
/// `acquire` and `value` cannot throw: a worker rank that cannot reach rank 0 ends the job.
struct MPIServedSemaphore: Sendable {
    let object: MPIServedObject

    init(value: Int, bounded: Bool) {
        object = .serve(ServedSemaphore(value: value, bounded: bounded))
    }

    init(id: UInt64) {
        object = MPIServedObject(decoded: id)
    }

    func acquire(timeout: Double?) -> Bool {
        object.orAbort(reading: "semaphore acquisition") {
            try object.perform(ServedSemaphore.self, .acquire, timeout: timeout) == .done
        }
    }

    func release(_ count: Int) throws(SynchronizationError) {
        let reply: ServedSemaphore.Reply
        do {
            reply = try object.perform(ServedSemaphore.self, .release(count))
        } catch {
            throw SynchronizationError(.systemCall, "cannot release a semaphore served by rank 0: \(error)")
        }
        if case .tooManyReleases(let bound) = reply {
            throw SynchronizationError(
                .releasedTooManyTimes,
                "a BoundedSemaphore was released more times than it was "
                    + "acquired (its value would exceed \(bound))")
        }
    }

    var value: Int {
        object.orAbort(reading: "semaphore value") {
            guard case .value(let value) = try object.perform(ServedSemaphore.self, .value) else {
                throw MPIObjectError(.transport, "rank 0 did not answer a semaphore value")
            }
            return value
        }
    }
}
