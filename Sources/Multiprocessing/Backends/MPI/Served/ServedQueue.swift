import Wire

/// A served queue (`Queue`, `SimpleQueue`, `JoinableQueue` under mpirun): items are their
/// `Wire` bytes in a first-in first-out buffer. A put on a full queue and a get on an empty
/// one park until the state changes or their timeout passes; `join` parks until every item
/// put was marked done.
final class ServedQueue: ServedState {
    static let kind = ServedKind.queue

    let maxSize: Int
    /// Items put and not yet `taskDone` (`JoinableQueue`).
    private(set) var unfinished = 0
    private var items = ByteFIFO()

    init(maxSize: Int) { self.maxSize = maxSize }

    var count: Int { items.count }
    var isFull: Bool { maxSize > 0 && count >= maxSize }

    enum Request {
        case put([UInt8])
        case get
        case count
        case taskDone
        case join
        case unfinished
    }

    enum Reply: Equatable {
        case done
        case item([UInt8])
        case number(Int)
        case timedOut
        /// `taskDone()` called more times than items were put.
        case tooManyTaskDone
    }

    func attempt(_ request: inout Request, from _: Requester) -> ServedOutcome<Reply> {
        switch request {
        case .put(let item):
            if isFull { return .park }
            items.append(item)
            unfinished += 1
            return .reply(.done)
        case .get:
            guard let item = items.removeFirst() else { return .park }
            return .reply(.item(item))
        case .count:
            return .reply(.number(count))
        case .taskDone:
            guard unfinished > 0 else { return .reply(.tooManyTaskDone) }
            unfinished -= 1
            return .reply(.done)
        case .join:
            return unfinished == 0 ? .reply(.done) : .park
        case .unfinished:
            return .reply(.number(unfinished))
        }
    }

    func expire(_: Request, from _: Requester) -> Reply { .timedOut }

    func undo(_ request: Request, _ reply: Reply, from _: Requester) {
        if case .get = request, case .item(let item) = reply { items.pushFront(item) }
    }

    static func encode(_ request: Request, into writer: inout WireWriter) {
        switch request {
        case .put(let item):
            writer.write(UInt8(0))
            writer.writeBytes(item)
        case .get: writer.write(UInt8(1))
        case .count: writer.write(UInt8(2))
        case .taskDone: writer.write(UInt8(3))
        case .join: writer.write(UInt8(4))
        case .unfinished: writer.write(UInt8(5))
        }
    }

    static func decodeRequest(_ reader: inout WireReader) throws(WireError) -> Request {
        switch try reader.read(UInt8.self) {
        case 0: .put(try reader.readBytes())
        case 1: .get
        case 2: .count
        case 3: .taskDone
        case 4: .join
        case 5: .unfinished
        default: throw WireError.corrupt("unknown queue request")
        }
    }

    static func encode(_ reply: Reply, into writer: inout WireWriter) {
        switch reply {
        case .done: writer.write(UInt8(0))
        case .item(let item):
            writer.write(UInt8(1))
            writer.writeBytes(item)
        case .number(let number):
            writer.write(UInt8(2))
            writer.write(Int64(number))
        case .timedOut: writer.write(UInt8(3))
        case .tooManyTaskDone: writer.write(UInt8(4))
        }
    }

    static func decodeReply(_ reader: inout WireReader) throws(WireError) -> Reply {
        switch try reader.read(UInt8.self) {
        case 0: .done
        case 1: .item(try reader.readBytes())
        case 2: .number(Int(try reader.read(Int64.self)))
        case 3: .timedOut
        case 4: .tooManyTaskDone
        default: throw WireError.corrupt("unknown queue reply")
        }
    }
}

/// `Queue`'s operations on a queue served by rank 0 (items travel as their `Wire` bytes).
struct MPIServedQueue: Sendable {
    let object: MPIServedObject
    let maxSize: Int

    init(maxSize: Int) {
        object = .serve(ServedQueue(maxSize: maxSize))
        self.maxSize = maxSize
    }

    init(id: UInt64, maxSize: Int) {
        object = MPIServedObject(decoded: id)
        self.maxSize = maxSize
    }

    private func perform(_ request: ServedQueue.Request, timeout: Double? = nil) throws(MPIObjectError) -> ServedQueue.Reply {
        try object.perform(ServedQueue.self, request, timeout: timeout)
    }

    func put(_ item: [UInt8], timeout: Double?) throws {
        if try perform(.put(item), timeout: timeout) == .timedOut { throw Full() }
    }

    func get(timeout: Double?) throws -> [UInt8] {
        guard case .item(let item) = try perform(.get, timeout: timeout) else { throw Empty() }
        return item
    }

    /// `JoinableQueue.taskDone()`.
    func taskDone() throws {
        if try perform(.taskDone) == .tooManyTaskDone {
            throw QueueError(.taskDoneTooOften, "taskDone() called more times than items were put in the queue")
        }
    }

    /// `JoinableQueue.join(timeout:)`: false on time-out.
    func join(timeout: Double?) throws -> Bool {
        try perform(.join, timeout: timeout) == .done
    }

    /// Items in the queue; a worker that cannot reach rank 0 ends the job (the property
    /// cannot throw).
    var count: Int { number(.count) }

    /// Items put and not yet marked done.
    var unfinished: Int { number(.unfinished) }

    private func number(_ request: ServedQueue.Request) -> Int {
        object.orAbort(reading: "queue count") {
            guard case .number(let number) = try perform(request) else {
                throw MPIObjectError(.transport, "rank 0 did not answer a queue count with a number")
            }
            return number
        }
    }
}
