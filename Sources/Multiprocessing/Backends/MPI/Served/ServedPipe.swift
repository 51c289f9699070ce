import Wire

/// A served pipe (`Pipe()` under mpirun): per end, a first-in first-out buffer of the
/// messages sent to it, and a count of its open handles.
///
/// A handle is a `Connection` in some process, or one in transit: encoding a connection
/// (to pass it to a `Process` target, a pool function or through a queue) counts a handle
/// for the copy (`share` gives a token); the first decoded copy takes that count over
/// (`adopt`), later copies of the same message add their own. `close()` — or the
/// deallocation of an unclosed handle — gives it back (`release`). An end with no open
/// handle is closed: its peer's `recv` then throws end-of-file once the buffer is empty,
/// and its peer's `send` throws broken-pipe. As locally, where an end is closed once every
/// process's descriptor of it is. The pipe's handles count its ends, not the registry: it is
/// freed once both ends are closed (`keepsAlive`). A process of a worker rank that ends
/// (killed, crashed, its pool closed) never releases the handles it adopted: they are
/// released when its rank reports the end (`processesEnded`), as a dead process's descriptors
/// close locally.
final class ServedPipe: ServedState {
    static let kind = ServedKind.pipe

    /// The messages waiting for end 0 and end 1 to receive them.
    private var inbox = [ByteFIFO(), ByteFIFO()]
    /// Open handles of each end.
    private(set) var handles = [1, 1]
    /// Handles in transit not yet adopted.
    private var tokens: Set<UInt64> = []
    /// Per end, the handles adopted by processes of worker ranks (by `Requester.rank`, their
    /// `ObjectRequester.id`) and not released yet.
    private var adopted: [[Int: Int]] = [[:], [:]]
    private var nextToken: UInt64 = 1

    func isClosed(_ end: Int) -> Bool { handles[end] == 0 }
    /// Whether `end` can receive now: a message, or end-of-file.
    func isReadable(_ end: Int) -> Bool { !inbox[end].isEmpty || isClosed(1 - end) }

    var keepsAlive: Bool { handles[0] + handles[1] > 0 }

    enum Operation: UInt8 {
        case send, receive, poll, share, adopt, release
    }

    struct Request: Equatable {
        var operation: Operation
        /// 0 or 1.
        var end: Int
        /// `send`: the message; `adopt`: the token (8 bytes).
        var bytes: [UInt8] = []
    }

    enum Reply: Equatable {
        case done
        case message([UInt8])
        case endOfFile
        case brokenPipe
        /// `poll`: whether the end can receive (a message or end-of-file).
        case readable(Bool)
        case token(UInt64)
        /// `adopt`: false if the end was closed before the copy arrived.
        case adopted(Bool)
        case timedOut
    }

    static let endOfFileMessage = "end of file: the other end of the pipe was closed"
    static let brokenPipeMessage = "cannot send: the other end of the pipe is closed"

    func attempt(_ request: inout Request, from requester: Requester) -> ServedOutcome<Reply> {
        let end = request.end
        switch request.operation {
        case .send:
            guard !isClosed(1 - end) else { return .reply(.brokenPipe) }
            inbox[1 - end].append(request.bytes)
            return .reply(.done)
        case .receive:
            if let message = inbox[end].removeFirst() { return .reply(.message(message)) }
            return isClosed(1 - end) ? .reply(.endOfFile) : .park
        case .poll:
            return isReadable(end) ? .reply(.readable(true)) : .park
        case .share:
            handles[end] += 1
            let token = nextToken
            nextToken += 1
            tokens.insert(token)
            return .reply(.token(token))
        case .adopt:
            let token = request.bytes.withUnsafeBytes { raw -> UInt64 in
                var reader = WireReader(raw)
                return (try? reader.read(UInt64.self)) ?? 0
            }
            if tokens.remove(token) == nil {
                // Another copy of the same message adopted the token first.
                guard !isClosed(end) else { return .reply(.adopted(false)) }
                handles[end] += 1
            }
            if !requester.isThread { adopted[end][requester.rank, default: 0] += 1 }
            return .reply(.adopted(true))
        case .release:
            if handles[end] > 0 { handles[end] -= 1 }
            if let count = adopted[end][requester.rank] { adopted[end][requester.rank] = count > 1 ? count - 1 : nil }
            return .reply(.done)
        }
    }

    /// The handles that ended processes adopted and never released are released: their
    /// peers' `recv` gets end-of-file, their `send` broken-pipe (parked ones too).
    func processesEnded(_ gone: (Int) -> Bool) -> Bool {
        var changed = false
        for end in 0..<2 {
            for (process, count) in adopted[end] where gone(process) {
                adopted[end][process] = nil
                handles[end] = max(0, handles[end] - count)
                changed = true
            }
        }
        return changed
    }

    func expire(_ request: Request, from _: Requester) -> Reply {
        request.operation == .poll ? .readable(isReadable(request.end)) : .timedOut
    }

    func undo(_ request: Request, _ reply: Reply, from _: Requester) {
        if request.operation == .receive, case .message(let message) = reply { inbox[request.end].pushFront(message) }
    }

    static func encode(_ request: Request, into writer: inout WireWriter) {
        writer.write(request.operation.rawValue)
        writer.write(UInt8(request.end))
        writer.writeBytes(request.bytes)
    }

    static func decodeRequest(_ reader: inout WireReader) throws(WireError) -> Request {
        guard let operation = Operation(rawValue: try reader.read(UInt8.self)) else { throw WireError.corrupt("unknown pipe request") }
        let end = Int(try reader.read(UInt8.self))
        guard end == 0 || end == 1 else { throw WireError.corrupt("pipe end \(end)") }
        return Request(operation: operation, end: end, bytes: try reader.readBytes())
    }

    static func encode(_ reply: Reply, into writer: inout WireWriter) {
        switch reply {
        case .done: writer.write(UInt8(0))
        case .message(let bytes):
            writer.write(UInt8(1))
            writer.writeBytes(bytes)
        case .endOfFile: writer.write(UInt8(2))
        case .brokenPipe: writer.write(UInt8(3))
        case .readable(let readable):
            writer.write(UInt8(4))
            writer.write(readable)
        case .token(let token):
            writer.write(UInt8(5))
            writer.write(token)
        case .adopted(let adopted):
            writer.write(UInt8(6))
            writer.write(adopted)
        case .timedOut: writer.write(UInt8(7))
        }
    }

    static func decodeReply(_ reader: inout WireReader) throws(WireError) -> Reply {
        switch try reader.read(UInt8.self) {
        case 0: .done
        case 1: .message(try reader.readBytes())
        case 2: .endOfFile
        case 3: .brokenPipe
        case 4: .readable(try reader.read(Bool.self))
        case 5: .token(try reader.read(UInt64.self))
        case 6: .adopted(try reader.read(Bool.self))
        case 7: .timedOut
        default: throw WireError.corrupt("unknown pipe reply")
        }
    }
}

/// One end of a pipe served by rank 0 (`Pipe()` under mpirun): `Connection`'s operations as
/// requests to rank 0's registry (directly on rank 0, by messages from worker ranks).
/// Messages travel as their bytes. The `Connection` counts its handle (`adopt`, `release`).
struct MPIServedPipeEnd: Sendable {
    let object: MPIServedObject
    /// 0 or 1.
    let end: UInt8

    /// Both ends of a new pipe.
    static func makePipe() -> (MPIServedPipeEnd, MPIServedPipeEnd) {
        let object = MPIServedObject.serve(ServedPipe(), counted: false)
        return (MPIServedPipeEnd(object: object, end: 0), MPIServedPipeEnd(object: object, end: 1))
    }

    private init(object: MPIServedObject, end: UInt8) {
        self.object = object
        self.end = end
    }

    init(id: UInt64, end: UInt8) {
        object = MPIServedObject(decoded: id, counted: false)
        self.end = end
    }

    private func perform(_ operation: ServedPipe.Operation, timeout: Double? = nil, _ bytes: [UInt8] = []) throws -> ServedPipe.Reply {
        try object.perform(ServedPipe.self, ServedPipe.Request(operation: operation, end: Int(end), bytes: bytes), timeout: timeout)
    }

    func send(_ bytes: [UInt8]) throws {
        if try perform(.send, bytes) != .done { throw ConnectionError(.brokenPipe, ServedPipe.brokenPipeMessage) }
    }

    func receive() throws -> [UInt8] {
        guard case .message(let bytes) = try perform(.receive) else {
            throw ConnectionError(.endOfFile, ServedPipe.endOfFileMessage)
        }
        return bytes
    }

    /// Whether a message or end-of-file can be received within `timeout` seconds (nil: no limit).
    func poll(timeout: Double?) throws -> Bool {
        try perform(.poll, timeout: timeout) == .readable(true)
    }

    /// Counts the handle a message carries; the token its copy adopts.
    func share() throws -> UInt64 {
        guard case .token(let token) = try perform(.share) else {
            throw MPIObjectError(.transport, "rank 0 did not answer a pipe share with a token")
        }
        return token
    }

    /// Takes over the handle counted for `token`; false if the end was closed meanwhile.
    func adopt(token: UInt64) throws -> Bool {
        var writer = WireWriter(capacity: 8)
        writer.write(token)
        return try perform(.adopt, writer.bytes) == .adopted(true)
    }

    /// Gives this handle back (`close()`, or deallocation). Errors are dropped: there is
    /// nobody to report them to, and an unreachable rank 0 ends the job anyway.
    func release() {
        _ = try? perform(.release)
    }
}
