import Wire

/// One end of a pipe served by rank 0 (`Pipe()` under mpirun): `Connection`'s operations as
/// requests to rank 0's registry (directly on rank 0, by messages from worker ranks).
/// Messages travel as their bytes; see `MPIObjectRegistry+Pipes.swift` for when an end is
/// closed.
struct MPIServedPipeEnd: Sendable {
    let object: MPIServedObject
    /// 0 or 1.
    let end: UInt8

    /// Both ends of a new pipe.
    static func makePipe() -> (MPIServedPipeEnd, MPIServedPipeEnd) {
        let id = MPIObjectRegistry.shared.makePipe()
        return (MPIServedPipeEnd(id: id, end: 0), MPIServedPipeEnd(id: id, end: 1))
    }

    init(id: UInt64, end: UInt8) {
        object = MPIServedObject(id: id)
        self.end = end
    }

    private var registry: MPIObjectRegistry { .shared }

    private func call(_ op: MPIObjectProtocol.Op, timeout: Double? = nil, _ bytes: [UInt8] = []) throws -> MPIObjectClient.Reply {
        var payload = [end]
        payload.append(contentsOf: bytes)
        return try payload.withUnsafeBytes { raw in try object.call(op, timeout: timeout, payload: raw) }
    }

    func send(_ bytes: [UInt8]) throws {
        if object.isLocal {
            guard try registry.pipeSend(object.id, end: Int(end), bytes) else {
                throw ConnectionError(.brokenPipe, MPIObjectRegistry.brokenPipeMessage)
            }
            return
        }
        let reply = try call(.pipeSend, bytes)
        if reply.status != .ok { throw ConnectionError(.brokenPipe, MPIObjectClient.message(reply)) }
    }

    func receive() throws -> [UInt8] {
        if object.isLocal {
            switch try registry.pipeReceive(object.id, end: Int(end), deadline: nil) {
            case .message(let bytes): return bytes
            case .endOfFile, .timedOut: throw ConnectionError(.endOfFile, MPIObjectRegistry.endOfFileMessage)
            }
        }
        let reply = try call(.pipeReceive)
        guard reply.status == .ok else { throw ConnectionError(.endOfFile, MPIObjectClient.message(reply)) }
        return reply.payload
    }

    /// Whether a message or end-of-file can be received within `timeout` seconds (nil: no limit).
    func poll(timeout: Double?) throws -> Bool {
        if object.isLocal { return try registry.pipePoll(object.id, end: Int(end), deadline: deadline(after: timeout)) }
        return try call(.pipePoll, timeout: timeout).status == .ok
    }

    /// Counts the handle a message carries; the token its copy adopts.
    func share() throws -> UInt64 {
        if object.isLocal { return try registry.pipeShare(object.id, end: Int(end)) }
        let reply = try call(.pipeShare)
        return try reply.payload.withUnsafeBytes { raw throws -> UInt64 in
            var reader = WireReader(raw)
            return UInt64(bitPattern: try reader.read(Int64.self))
        }
    }

    /// Takes over the handle counted for `token`; false if the end was closed meanwhile.
    func adopt(token: UInt64) throws -> Bool {
        if object.isLocal { return try registry.pipeAdopt(object.id, end: Int(end), token: token) }
        var writer = WireWriter(capacity: 8)
        writer.write(token)
        return try call(.pipeAdopt, writer.bytes).payload.first == 1
    }

    /// Gives this handle back (`close()`, or deallocation). Errors are dropped: there is
    /// nobody to report them to, and an unreachable rank 0 ends the job anyway.
    func release() {
        if object.isLocal {
            try? registry.pipeRelease(object.id, end: Int(end))
        } else {
            _ = try? call(.pipeRelease)
        }
    }
}
