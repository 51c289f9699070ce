import Wire

/// Rank 0's served pipes (`Pipe()` under mpirun): per end, a first-in first-out buffer of
/// the messages sent to it, and a count of its open handles.
///
/// A handle is a `Connection` in some process, or one in transit: encoding a connection
/// (to pass it to a `Process` target, a pool function or through a queue) counts a handle
/// for the copy (`pipeShare` gives a token); the first decoded copy takes that count over
/// (`pipeAdopt`), later copies of the same message add their own. `close()` — or the
/// deallocation of an unclosed handle — gives it back (`pipeRelease`). An end with no open
/// handle is closed: its peer's `recv` then throws end-of-file once the buffer is empty,
/// and its peer's `send` throws broken-pipe. As locally, where an end is closed once every
/// process's descriptor of it is.
extension MPIObjectRegistry {
    final class PipeState {
        /// The messages waiting for end 0 and end 1 to receive them.
        var inbox = [ByteFIFO(), ByteFIFO()]
        /// Open handles of each end.
        var handles = [1, 1]

        func isClosed(_ end: Int) -> Bool { handles[end] == 0 }
        /// Whether `end` can receive now: a message, or end-of-file.
        func isReadable(_ end: Int) -> Bool { !inbox[end].isEmpty || isClosed(1 - end) }
    }

    enum PipeReceipt {
        case message([UInt8])
        case endOfFile
        case timedOut
    }

    static let endOfFileMessage = "end of file: the other end of the pipe was closed"
    static let brokenPipeMessage = "cannot send: the other end of the pipe is closed"

    func makePipe() -> UInt64 {
        lock.withLock { () -> UInt64 in
            let id = newID()
            pipes[id] = PipeState()
            return id
        }
    }

    private func pipe(_ id: UInt64, _ end: Int) throws(MPIObjectError) -> PipeState {
        guard let pipe = pipes[id], end == 0 || end == 1 else { throw unknown("pipe", id) }
        return pipe
    }

    // MARK: rank 0's own operations

    /// Sends `bytes` from `end`; false if the other end is closed.
    func pipeSend(_ id: UInt64, end: Int, _ bytes: [UInt8]) throws(MPIObjectError) -> Bool {
        lock.lock()
        defer { lock.unlock() }
        let pipe = try pipe(id, end)
        guard !pipe.isClosed(1 - end) else { return false }
        pipe.inbox[1 - end].append(bytes)
        settle()
        return true
    }

    /// The next message for `end`, end-of-file, or (at `deadline`) nothing.
    func pipeReceive(_ id: UInt64, end: Int, deadline: UInt64?) throws(MPIObjectError) -> PipeReceipt {
        lock.lock()
        defer { lock.unlock() }
        let pipe = try pipe(id, end)
        while true {
            if let message = pipe.inbox[end].removeFirst() { return .message(message) }
            if pipe.isClosed(1 - end) { return .endOfFile }
            if !lock.wait(until: deadline), !pipe.isReadable(end) { return .timedOut }
        }
    }

    /// Whether `end` can receive (a message or end-of-file) before `deadline`.
    func pipePoll(_ id: UInt64, end: Int, deadline: UInt64?) throws(MPIObjectError) -> Bool {
        lock.lock()
        defer { lock.unlock() }
        let pipe = try pipe(id, end)
        while !pipe.isReadable(end) {
            if !lock.wait(until: deadline) { return pipe.isReadable(end) }
        }
        return true
    }

    /// Counts a handle of `end` in transit; the token its decoded copy adopts it with.
    func pipeShare(_ id: UInt64, end: Int) throws(MPIObjectError) -> UInt64 {
        lock.lock()
        defer { lock.unlock() }
        return try share(id, end)
    }

    private func share(_ id: UInt64, _ end: Int) throws(MPIObjectError) -> UInt64 {
        let pipe = try pipe(id, end)
        pipe.handles[end] += 1
        let token = newID()
        pipeTokens[token] = (id, end)
        return token
    }

    /// A decoded copy takes a handle over; false if the end was closed meanwhile (the copy
    /// is then closed too).
    func pipeAdopt(_ id: UInt64, end: Int, token: UInt64) throws(MPIObjectError) -> Bool {
        lock.lock()
        defer { lock.unlock() }
        return try adopt(id, end, token)
    }

    private func adopt(_ id: UInt64, _ end: Int, _ token: UInt64) throws(MPIObjectError) -> Bool {
        let pipe = try pipe(id, end)
        if pipeTokens.removeValue(forKey: token) != nil { return true }
        // Another copy of the same message adopted the token first.
        guard !pipe.isClosed(end) else { return false }
        pipe.handles[end] += 1
        return true
    }

    /// A handle of `end` is closed.
    func pipeRelease(_ id: UInt64, end: Int) throws(MPIObjectError) {
        lock.lock()
        defer { lock.unlock() }
        let pipe = try pipe(id, end)
        if pipe.handles[end] > 0 { pipe.handles[end] -= 1 }
        settle()
    }

    // MARK: worker requests

    /// Under `lock`: the reply to a worker's pipe request, nil if it must wait.
    func attemptPipe(_ entry: Parked) -> [UInt8]? {
        guard let first = entry.payload.first else {
            return MPIObjectProtocol.failure(.failed, "a pipe request without its end (another build?)")
        }
        let end = Int(first)
        do {
            let pipe = try pipe(entry.id, end)
            switch entry.op {
            case .pipeSend:
                guard !pipe.isClosed(1 - end) else { return MPIObjectProtocol.failure(.refused, Self.brokenPipeMessage) }
                pipe.inbox[1 - end].append(Array(entry.payload.dropFirst()))
                return MPIObjectProtocol.reply(.ok)
            case .pipeReceive:
                if let message = pipe.inbox[end].removeFirst() { return MPIObjectProtocol.reply(.ok, message) }
                if pipe.isClosed(1 - end) { return MPIObjectProtocol.failure(.refused, Self.endOfFileMessage) }
                return nil
            case .pipePoll:
                return pipe.isReadable(end) ? MPIObjectProtocol.reply(.ok, [1]) : nil
            case .pipeShare:
                return MPIObjectProtocol.reply(.ok, Self.encode(Int64(bitPattern: try share(entry.id, end))))
            case .pipeAdopt:
                let token = entry.payload.dropFirst().withUnsafeBytes { raw -> UInt64 in
                    var reader = WireReader(raw)
                    return (try? reader.read(UInt64.self)) ?? 0
                }
                return MPIObjectProtocol.reply(.ok, [try adopt(entry.id, end, token) ? 1 : 0])
            default:
                if pipe.handles[end] > 0 { pipe.handles[end] -= 1 }
                return MPIObjectProtocol.reply(.ok)
            }
        } catch {
            return MPIObjectProtocol.failure(.failed, error.message)
        }
    }
}
