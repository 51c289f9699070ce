import CSystemShims

#if canImport(Glibc)
import Glibc
#endif

/// One end of a `Pipe`: Python's `multiprocessing.connection.Connection`.
///
/// Messages are frames on a Unix stream socket: an 8-byte little-endian length, then the
/// bytes (a value's `Wire` encoding for `send`/`recv`). `recv` waits for a whole message;
/// if the other end is closed first it throws `ConnectionError` with code `.endOfFile` —
/// it never hangs on a dead peer. Waiting spins for a few microseconds before it sleeps
/// (a sleeping wake-up costs 20–130 µs on small VMs), while the machine has a CPU free for
/// the peer (`SpinGate`).
///
/// Passing a connection to a child: store it in a `Process` target. The child receives its
/// own descriptor for the socket with every start method (SCM_RIGHTS when it starts); close
/// the parent's copy afterwards if the parent does not use that end, or the reader will not
/// see end-of-file when the child exits. Connections cannot be sent through a `Queue`, a
/// `Pipe` or to a pool function (encoding throws `.notTransferable`).
///
/// One thread at a time may send, and one may receive (each direction has its own lock).
///
/// **Under mpirun** (rank 0 of a job with worker ranks, unless `SWIFTMP_MPI_OBJECTS=local`)
/// the pipe is served by rank 0 over MPI messages instead of a socket: its ends work on rank 0
/// and on worker ranks, and can be passed to a `Process` target, a pool function or through a
/// served `Queue`. An end is closed once every handle of it is closed (`close()`, or the
/// handle's deallocation — a `Process` target's when it ends, a pool function's when its pool
/// ends), as locally once every process's descriptor is. `fileDescriptor` is -1 then, and
/// `wait(on:timeout:)` polls such connections.
public final class Connection: Codable, Waitable, @unchecked Sendable {
    private let sendLock = ConditionLock()
    private let receiveLock = ConditionLock()
    private let stateLock = ConditionLock()
    private var fd: Int32
    /// Whether this end can receive.
    public let readable: Bool
    /// Whether this end can send.
    public let writable: Bool
    /// Identifies the socket while it travels to a child.
    private let id: SegmentID
    private var receiveBuffer: [UInt8] = []
    /// Under mpirun: the end rank 0 serves (`fd` is -1).
    private let served: MPIServedPipeEnd?
    /// For a served end: whether this handle is open (under `stateLock`).
    private var servedOpen = false

    init(fd: Int32, readable: Bool, writable: Bool) {
        self.fd = fd
        self.readable = readable
        self.writable = writable
        self.id = .random()
        served = nil
    }

    /// A new handle of an end served by rank 0.
    init(served: MPIServedPipeEnd, readable: Bool, writable: Bool) {
        fd = -1
        self.readable = readable
        self.writable = writable
        id = .random()
        self.served = served
        servedOpen = true
    }

    deinit {
        if let served {
            if servedOpen { served.release() }
        } else {
            systemClose(fd)
        }
    }

    /// Whether `close()` was called.
    public var isClosed: Bool { stateLock.withLock { served == nil ? fd < 0 : !servedOpen } }

    /// The socket descriptor (for `poll`/`select` in your own code); -1 once closed.
    public var fileDescriptor: Int32 { stateLock.withLock { fd } }

    /// Closes this end. The peer's pending `recv` then throws `.endOfFile` (once no other
    /// process holds a copy of this end).
    public func close() {
        if let served {
            let wasOpen = stateLock.withLock { () -> Bool in
                defer { servedOpen = false }
                return servedOpen
            }
            if wasOpen { served.release() }
            return
        }
        let old = stateLock.withLock { () -> Int32 in
            let old = fd
            fd = -1
            return old
        }
        // Not shutdown(): that would end the socket for the copies other processes hold.
        if old >= 0 { systemClose(old) }
    }

    /// A served end, checking that this handle is open.
    private func servedEnd(for action: String) throws(ConnectionError) -> MPIServedPipeEnd? {
        guard let served else { return nil }
        guard stateLock.withLock({ servedOpen }) else {
            throw ConnectionError(.closed, "cannot \(action): the connection is closed")
        }
        return served
    }

    private func descriptor(for action: String) throws(ConnectionError) -> Int32 {
        let fd = stateLock.withLock { self.fd }
        guard fd >= 0 else { throw ConnectionError(.closed, "cannot \(action): the connection is closed") }
        return fd
    }

    // MARK: sending

    /// Sends `value` (any `Encodable`); the peer reads it with `recv(_:)`.
    public func send<T: Encodable>(_ value: T) throws {
        if served != nil {
            guard writable else { throw ConnectionError(.wrongDirection, "this end of a one-way pipe can only receive") }
            var writer = WireWriter(capacity: 64)
            do {
                try AttachmentContext.plainValuesOnly(for: "a connection") { try writer.encode(value) }
            } catch {
                throw ConnectionError(.encoding, "cannot encode \(String(reflecting: T.self)) for a connection: \(error)")
            }
            return try sendServed(writer.bytes)
        }
        if QueueItemKind.of(T.self) == .rawScalar {
            // A plain number: its bytes are its encoding; header and value in one send.
            var frame: (UInt64, UInt64) = (UInt64(MemoryLayout<T>.size).littleEndian, 0)
            try withUnsafeMutableBytes(of: &frame) { raw in
                withUnsafeBytes(of: value) { (raw.baseAddress! + Frame.headerSize).copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
                try sendFrame(header: nil, body: UnsafeRawBufferPointer(rebasing: raw[0..<(Frame.headerSize + MemoryLayout<T>.size)]))
            }
            return
        }
        var writer = WireWriter(capacity: 64)
        Frame.begin(&writer)
        do {
            try AttachmentContext.plainValuesOnly(for: "a connection") { try writer.encode(value) }
        } catch {
            throw ConnectionError(.encoding, "cannot encode \(String(reflecting: T.self)) for a connection: \(error)")
        }
        Frame.finish(&writer)
        try writer.bytes.withUnsafeBytes { try sendFrame(header: nil, body: $0) }
    }

    /// Sends raw bytes as one message; the peer reads them with `recvBytes()`.
    public func sendBytes(_ bytes: UnsafeRawBufferPointer) throws {
        if served != nil {
            guard writable else { throw ConnectionError(.wrongDirection, "this end of a one-way pipe can only receive") }
            return try sendServed(Array(bytes))
        }
        if bytes.count <= 120 {
            // Small: header and bytes in one send (one system call, one segment for the peer).
            var frame:
                (
                    UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64,
                    UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64
                ) =
                    (UInt64(bytes.count).littleEndian, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
            try withUnsafeMutableBytes(of: &frame) { raw in
                if bytes.count > 0 {
                    (raw.baseAddress! + Frame.headerSize).copyMemory(from: bytes.baseAddress!, byteCount: bytes.count)
                }
                try sendFrame(header: nil, body: UnsafeRawBufferPointer(rebasing: raw[0..<(Frame.headerSize + bytes.count)]))
            }
            return
        }
        var header = UInt64(bytes.count).littleEndian
        try withUnsafeBytes(of: &header) { try sendFrame(header: $0, body: bytes) }
    }

    /// Sends raw bytes as one message; the peer reads them with `recvBytes()`.
    public func sendBytes(_ bytes: [UInt8]) throws {
        try bytes.withUnsafeBytes { try sendBytes($0) }
    }

    private func sendServed(_ bytes: [UInt8]) throws {
        guard let served = try servedEnd(for: "send") else { return }
        try sendLock.withLock { try served.send(bytes) }
    }

    /// Receives one served message's bytes.
    private func receiveServed() throws -> [UInt8] {
        guard readable else { throw ConnectionError(.wrongDirection, "this end of a one-way pipe can only send") }
        guard let served = try servedEnd(for: "receive") else { return [] }
        return try receiveLock.withLock { try served.receive() }
    }

    private func sendFrame(header: UnsafeRawBufferPointer?, body: UnsafeRawBufferPointer) throws {
        guard writable else { throw ConnectionError(.wrongDirection, "this end of a one-way pipe can only receive") }
        let fd = try descriptor(for: "send")
        try sendLock.withLock {
            if let header { try writeAll(fd, header) }
            try writeAll(fd, body)
        }
    }

    private func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer) throws(ConnectionError) {
        var done = 0
        while done < bytes.count {
            let n = Glibc.send(fd, bytes.baseAddress! + done, bytes.count - done, Int32(MSG_NOSIGNAL))
            if n > 0 { done += n; continue }
            let code = errno
            if code == EINTR { continue }
            if code == EAGAIN { _ = pollOnce(fd, events: Int16(POLLOUT), timeoutNanoseconds: -1); continue }
            if code == EPIPE || code == ECONNRESET {
                throw ConnectionError(.brokenPipe, "cannot send: the other end of the pipe is closed")
            }
            throw ConnectionError(.brokenPipe, "send on a connection failed: \(SystemError("send", errno: code))")
        }
    }

    // MARK: receiving

    /// Receives the next message, decoded as `T`. Throws `.endOfFile` if the other end
    /// closed first.
    public func recv<T: Decodable>(_ type: T.Type = T.self) throws -> T {
        if served != nil {
            let bytes = try receiveServed()
            do {
                return try bytes.withUnsafeBytes { raw in
                    var reader = WireReader(raw)
                    let value = try reader.decode(T.self)
                    guard reader.isAtEnd else { throw WireError.corrupt("\(reader.remaining) bytes left over") }
                    return value
                }
            } catch {
                throw ConnectionError(.encoding, "cannot decode a \(String(reflecting: T.self)) from a connection: \(error)")
            }
        }
        if QueueItemKind.of(T.self) == .rawScalar {
            return try receiveLock.withLock {
                let count = try receiveFrame()
                guard count == MemoryLayout<T>.size else {
                    throw ConnectionError(
                        .encoding,
                        "cannot decode a \(String(reflecting: T.self)) from a connection: the message has \(count) bytes, not \(MemoryLayout<T>.size)")
                }
                var bits: UInt64 = 0
                receiveBuffer.withUnsafeBytes { raw in
                    withUnsafeMutableBytes(of: &bits) { $0.copyMemory(from: UnsafeRawBufferPointer(rebasing: raw[0..<count])) }
                }
                return withUnsafeBytes(of: &bits) { $0.baseAddress!.load(as: T.self) }
            }
        }
        return try receiveLock.withLock {
            let count = try receiveFrame()
            do {
                return try receiveBuffer.withUnsafeBytes { raw in
                    var reader = WireReader(UnsafeRawBufferPointer(rebasing: raw[0..<count]))
                    let value = try reader.decode(T.self)
                    guard reader.isAtEnd else { throw WireError.corrupt("\(reader.remaining) bytes left over") }
                    return value
                }
            } catch {
                throw ConnectionError(.encoding, "cannot decode a \(String(reflecting: T.self)) from a connection: \(error)")
            }
        }
    }

    /// Receives the next message's bytes (sent with `sendBytes` or `send`).
    public func recvBytes() throws -> [UInt8] {
        if served != nil { return try receiveServed() }
        return try receiveLock.withLock {
            let count = try receiveFrame()
            return Array(receiveBuffer[0..<count])
        }
    }

    /// Whether a message (or end-of-file) can be read now, waiting at most `timeout`
    /// seconds (0: do not wait; nil: without limit).
    public func poll(timeout: Double? = 0) throws -> Bool {
        guard readable else { throw ConnectionError(.wrongDirection, "this end of a one-way pipe can only send") }
        if let served = try servedEnd(for: "poll") {
            return try served.poll(timeout: timeout.map { max(0, $0) })
        }
        let fd = try descriptor(for: "poll")
        let limit: Int64 = timeout.map { $0 > 0 ? Int64(min($0, 1e9) * 1e9) : 0 } ?? -1
        return pollOnce(fd, events: Int16(POLLIN), timeoutNanoseconds: limit)
    }

    /// Reads one frame into `receiveBuffer`; returns its length. Receive lock held.
    private func receiveFrame() throws -> Int {
        guard readable else { throw ConnectionError(.wrongDirection, "this end of a one-way pipe can only send") }
        let fd = try descriptor(for: "receive")
        var header: UInt64 = 0
        try withUnsafeMutableBytes(of: &header) { try readAll(fd, $0, atMessageStart: true) }
        let length = UInt64(littleEndian: header)
        guard length <= Frame.maximumPayload else {
            throw ConnectionError(.encoding, "the peer announced a \(length)-byte message: the stream is corrupt")
        }
        let count = Int(length)
        if receiveBuffer.count < count || receiveBuffer.count > max(count, 1 << 20) * 4 {
            receiveBuffer = [UInt8](repeating: 0, count: count)
        }
        try receiveBuffer.withUnsafeMutableBytes {
            try readAll(fd, UnsafeMutableRawBufferPointer(rebasing: $0[0..<count]), atMessageStart: false)
        }
        return count
    }

    /// Reads exactly `buffer.count` bytes, waiting as `ReadinessWait` does between tries —
    /// or, while the machine has no CPU free for the peer (`SpinGate`), in `recv` itself (one
    /// system call per read, as a blocking C reader; a descriptor made non-blocking by its
    /// owner still waits as `ReadinessWait` does).
    private func readAll(_ fd: Int32, _ buffer: UnsafeMutableRawBufferPointer, atMessageStart: Bool) throws(ConnectionError) {
        var done = 0
        var wait = ReadinessWait()
        let flags = SpinGate.spinningPays() ? Int32(MSG_DONTWAIT) : 0
        while done < buffer.count {
            let n = Glibc.recv(fd, buffer.baseAddress! + done, buffer.count - done, flags)
            if n > 0 { done += n; wait.reset(); continue }
            if n == 0 {
                throw ConnectionError(
                    .endOfFile,
                    atMessageStart && done == 0
                        ? "end of file: the other end of the pipe was closed"
                        : "end of file in the middle of a message: the other end closed while sending")
            }
            let code = errno
            if code == EINTR { continue }
            guard code == EAGAIN || code == EWOULDBLOCK else {
                if code == ECONNRESET { throw ConnectionError(.endOfFile, "end of file: the other end of the pipe was reset") }
                throw ConnectionError(.endOfFile, "recv on a connection failed: \(SystemError("recv", errno: code))")
            }
            wait.pause(fd)
        }
    }

    // MARK: Waitable

    public var _waitDescriptor: Int32? { readable && served == nil ? fileDescriptor : nil }
    public func _isReady() -> Bool { (try? poll(timeout: 0)) ?? true }

    // MARK: Codable

    private enum CodingKeys: String, CodingKey { case served, end, token, id, readable, writable }

    /// Encodes this end for a `Process` target (the socket itself travels beside the
    /// message). Throws `.notTransferable` anywhere else. Under mpirun (a served end): for a
    /// `Process` target, a pool function or a served queue.
    public func encode(to encoder: any Encoder) throws {
        // Wire reads keys in the order they were written: keep this order in init(from:).
        var container = encoder.container(keyedBy: CodingKeys.self)
        if served != nil {
            try MPIServedObject.checkEncoding("Connection")
            guard let served = try servedEnd(for: "pass the connection") else { return }
            try container.encode(served.object.id, forKey: .served)
            try container.encode(served.end, forKey: .end)
            try container.encode(try served.share(), forKey: .token)
            try container.encode(readable, forKey: .readable)
            try container.encode(writable, forKey: .writable)
            return
        }
        let fd = try descriptor(for: "pass the connection")
        guard AttachmentContext.recordDescriptor(fd, id: id) else {
            throw ConnectionError(
                .notTransferable,
                """
                a Connection can be passed to a child only as a stored property of a Process \
                target (not through a Queue, a Pipe or to a pool function)
                """)
        }
        try container.encode(UInt64(0), forKey: .served)
        try container.encode(id, forKey: .id)
        try container.encode(readable, forKey: .readable)
        try container.encode(writable, forKey: .writable)
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        let pipe = try container.decode(UInt64.self, forKey: .served)
        if pipe != 0 {
            try MPIServedObject.checkDecoding("Connection")
            let end = try container.decode(UInt8.self, forKey: .end)
            let token = try container.decode(UInt64.self, forKey: .token)
            let served = MPIServedPipeEnd(id: pipe, end: end)
            fd = -1
            id = .random()
            readable = try container.decode(Bool.self, forKey: .readable)
            writable = try container.decode(Bool.self, forKey: .writable)
            self.served = served
            // Closed if every other handle of the end was closed before this copy arrived.
            servedOpen = try served.adopt(token: token)
            return
        }
        let id = try container.decode(SegmentID.self, forKey: .id)
        guard let fd = try AttachmentContext.descriptor(for: id) else {
            throw ConnectionError(.notTransferable, "connection \(id) did not arrive with the message that mentions it")
        }
        self.fd = fd
        self.id = id
        served = nil
        self.readable = try container.decode(Bool.self, forKey: .readable)
        self.writable = try container.decode(Bool.self, forKey: .writable)
    }
}

/// `poll` on one descriptor; true when an event (or a hang-up or error) is pending.
/// `timeoutNanoseconds < 0` waits without limit.
func pollOnce(_ fd: Int32, events: Int16, timeoutNanoseconds: Int64) -> Bool {
    var entry = pollfd(fd: fd, events: events, revents: 0)
    let end = timeoutNanoseconds >= 0 ? monotonicNanoseconds() &+ UInt64(timeoutNanoseconds) : nil
    while true {
        var left: Int64 = -1
        if let end {
            let now = monotonicNanoseconds()
            left = end > now ? Int64(end - now) : 0
        }
        let result = CSystemShims_ppoll(&entry, 1, left)
        if result > 0 { return true }
        if result == 0 { return false }
        if errno != EINTR { return true } // let the caller's read report the error
    }
}
