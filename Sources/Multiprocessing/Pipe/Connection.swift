import CSystemShims
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// One end of a `Pipe`: Python's `multiprocessing.connection.Connection`.
///
/// Messages are frames on a Unix stream socket: an 8-byte little-endian length, then the
/// bytes (a value's `Wire` encoding for `send`/`recv`; a plain number's own bytes). A message
/// of up to 120 bytes travels padded to a 128-byte frame, and a reader's first `recv` asks for
/// those 128 bytes: one system call reads a small message whole, and a reader never takes
/// bytes of the next message from the socket (another process may read it). `recv` waits for a whole message;
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
    /// The socket; -1 once closed (or for a served end).
    private let fd: Atomic<Int32>
    /// Whether this end can receive.
    public let readable: Bool
    /// Whether this end can send.
    public let writable: Bool
    /// Identifies the socket while it travels to a child.
    private let id: SegmentID
    /// A large message's bytes (under `receiveLock`); small ones are read on the stack.
    private var receiveBuffer: [UInt8] = []
    /// Under mpirun: the end rank 0 serves (`fd` is -1).
    private let served: MPIServedPipeEnd?
    /// For a served end: whether this handle is open (under `stateLock`).
    private var servedOpen = false

    init(fd: Int32, readable: Bool, writable: Bool) {
        self.fd = Atomic(fd)
        self.readable = readable
        self.writable = writable
        self.id = .random()
        served = nil
    }

    /// A new handle of an end served by rank 0.
    init(served: MPIServedPipeEnd, readable: Bool, writable: Bool) {
        fd = Atomic(-1)
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
            systemClose(fd.load(ordering: .acquiring))
        }
    }

    /// Whether `close()` was called.
    public var isClosed: Bool { served == nil ? fd.load(ordering: .acquiring) < 0 : stateLock.withLock { !servedOpen } }

    /// The socket descriptor (for `poll`/`select` in your own code); -1 once closed.
    public var fileDescriptor: Int32 { fd.load(ordering: .acquiring) }

    /// Whether rank 0 serves this end (under mpirun): its messages are not socket frames.
    @usableFromInline
    var isServed: Bool { served != nil }

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
        let old = fd.exchange(-1, ordering: .acquiringAndReleasing)
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
        let fd = self.fd.load(ordering: .acquiring)
        guard fd >= 0 else { throw ConnectionError(.closed, "cannot \(action): the connection is closed") }
        return fd
    }

    // MARK: frames

    /// The size of a small message's frame: its length, its bytes, then zeros. A reader's
    /// first `recv` of a message asks for this many bytes — never more than any frame holds.
    static let smallFrameSize = 128
    /// The largest message that travels in a small frame.
    static let smallPayload = smallFrameSize - Frame.headerSize

    /// One small frame, on the stack.
    private typealias SmallFrame = (
        UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64,
        UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64
    )
    private static var emptyFrame: SmallFrame { (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0) }

    // MARK: sending

    /// Sends `value` (any `Encodable`); the peer reads it with `recv(_:)`.
    ///
    /// Inlinable so that a caller's concrete type is known here: a plain number (`Int`,
    /// `Double`…) then goes straight to the socket as its own bytes, with no type test at run time.
    @inlinable
    public func send<T: Encodable>(_ value: T) throws {
        #if _endian(little)
        if T.self is any WireRawElement.Type && MemoryLayout<T>.size <= 8 && !isServed {
            // A plain number: its bytes are its encoding.
            try withUnsafeBytes(of: value) { try sendMessage($0) }
            return
        }
        #endif
        try sendEncoding(value)
    }

    /// `send` of a value that is not a plain number (or of any value on a served end).
    @usableFromInline
    func sendEncoding<T: Encodable>(_ value: T) throws {
        if served != nil {
            guard writable else { throw ConnectionError(.wrongDirection, "this end of a one-way pipe can only receive") }
            return try sendServed(try Self.encode(value))
        }
        try Self.encode(value).withUnsafeBytes { try sendMessage($0) }
    }

    private static func encode<T: Encodable>(_ value: T) throws -> [UInt8] {
        var writer = WireWriter(capacity: 64)
        do {
            try AttachmentContext.plainValuesOnly(for: "a connection") { try writer.encode(value) }
        } catch {
            throw ConnectionError(.encoding, "cannot encode \(String(reflecting: T.self)) for a connection: \(error)")
        }
        return writer.bytes
    }

    /// Sends raw bytes as one message; the peer reads them with `recvBytes()`.
    public func sendBytes(_ bytes: UnsafeRawBufferPointer) throws {
        if served != nil {
            guard writable else { throw ConnectionError(.wrongDirection, "this end of a one-way pipe can only receive") }
            return try sendServed(Array(bytes))
        }
        try sendMessage(bytes)
    }

    /// Sends raw bytes as one message; the peer reads them with `recvBytes()`.
    public func sendBytes(_ bytes: [UInt8]) throws {
        try bytes.withUnsafeBytes { try sendBytes($0) }
    }

    /// Sends `size` bytes of `bytes` from `offset` (nil: to the end) as one message —
    /// Python's `send_bytes(buf, offset, size)`. An offset or size outside `bytes` throws
    /// `ConnectionError(.invalidArgument)` and sends nothing.
    public func sendBytes(_ bytes: [UInt8], offset: Int, size: Int? = nil) throws {
        guard offset >= 0 else { throw ConnectionError(.invalidArgument, "sendBytes: the offset \(offset) is negative") }
        guard offset <= bytes.count else {
            throw ConnectionError(.invalidArgument, "sendBytes: the offset \(offset) is past the \(bytes.count) bytes given")
        }
        let size = size ?? bytes.count - offset
        guard size >= 0 else { throw ConnectionError(.invalidArgument, "sendBytes: the size \(size) is negative") }
        guard size <= bytes.count - offset else {
            throw ConnectionError(
                .invalidArgument, "sendBytes: \(size) bytes from offset \(offset) run past the \(bytes.count) bytes given")
        }
        try bytes.withUnsafeBytes { try sendBytes(UnsafeRawBufferPointer(rebasing: $0[offset..<(offset + size)])) }
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

    /// Sends `payload` as one frame on the socket, with one system call: a small message
    /// padded to `smallFrameSize` bytes, a larger one as its length and its bytes gathered
    /// by `sendmsg`.
    @usableFromInline
    func sendMessage(_ payload: UnsafeRawBufferPointer) throws {
        guard writable else { throw ConnectionError(.wrongDirection, "this end of a one-way pipe can only receive") }
        let fd = try descriptor(for: "send")
        if payload.count <= Self.smallPayload {
            var frame = Self.emptyFrame
            frame.0 = UInt64(payload.count).littleEndian
            withUnsafeMutableBytes(of: &frame) { raw in
                if payload.count > 0 {
                    (raw.baseAddress! + Frame.headerSize).copyMemory(from: payload.baseAddress!, byteCount: payload.count)
                }
            }
            sendLock.lock()
            defer { sendLock.unlock() }
            try withUnsafeBytes(of: &frame) { try writeAll(fd, $0, then: nil) }
            return
        }
        var header = UInt64(payload.count).littleEndian
        sendLock.lock()
        defer { sendLock.unlock() }
        try withUnsafeBytes(of: &header) { try writeAll(fd, $0, then: payload) }
    }

    /// Writes `first`, then `second`, whole: with `sendmsg` gathering both while some of
    /// `first` is left.
    private func writeAll(_ fd: Int32, _ first: UnsafeRawBufferPointer, then second: UnsafeRawBufferPointer?) throws(ConnectionError) {
        let secondCount = second?.count ?? 0
        let total = first.count + secondCount
        var done = 0
        while done < total {
            let n: Int
            if done < first.count && secondCount > 0 {
                var parts = (
                    iovec(iov_base: UnsafeMutableRawPointer(mutating: first.baseAddress! + done), iov_len: first.count - done),
                    iovec(iov_base: UnsafeMutableRawPointer(mutating: second!.baseAddress!), iov_len: secondCount)
                )
                n = withUnsafeMutablePointer(to: &parts) { pointer in
                    pointer.withMemoryRebound(to: iovec.self, capacity: 2) { vectors in
                        var message = msghdr()
                        message.msg_iov = vectors
                        message.msg_iovlen = 2
                        return Glibc.sendmsg(fd, &message, Int32(MSG_NOSIGNAL))
                    }
                }
            } else if done < first.count {
                n = Glibc.send(fd, first.baseAddress! + done, first.count - done, Int32(MSG_NOSIGNAL))
            } else {
                let offset = done - first.count
                n = Glibc.send(fd, second!.baseAddress! + offset, secondCount - offset, Int32(MSG_NOSIGNAL))
            }
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
    ///
    /// Inlinable for the same reason as `send(_:)`: a plain number is read into its own bytes.
    @inlinable
    public func recv<T: Decodable>(_ type: T.Type = T.self) throws -> T {
        #if _endian(little)
        if T.self is any WireRawElement.Type && MemoryLayout<T>.size <= 8 && !isServed {
            var bits: UInt64 = 0
            try withUnsafeMutableBytes(of: &bits) { raw in
                try receiveNumber(into: UnsafeMutableRawBufferPointer(rebasing: raw[0..<MemoryLayout<T>.size]), type: T.self)
            }
            return withUnsafeBytes(of: &bits) { $0.load(as: T.self) }
        }
        #endif
        return try receiveDecoding(T.self)
    }

    /// Receives a message of exactly `bytes.count` bytes (a plain number's) into `bytes`.
    @usableFromInline
    func receiveNumber(into bytes: UnsafeMutableRawBufferPointer, type: Any.Type) throws {
        try receiveMessage { payload in
            guard payload.count == bytes.count else {
                throw ConnectionError(
                    .encoding,
                    "cannot decode a \(String(reflecting: type)) from a connection: the message has \(payload.count) bytes, not \(bytes.count)")
            }
            bytes.copyMemory(from: payload)
        }
    }

    /// `recv` of a value that is not a plain number (or of any value on a served end).
    @usableFromInline
    func receiveDecoding<T: Decodable>(_: T.Type) throws -> T {
        func decode(_ raw: UnsafeRawBufferPointer) throws -> T {
            do {
                var reader = WireReader(raw)
                let value = try reader.decode(T.self)
                guard reader.isAtEnd else { throw WireError.corrupt("\(reader.remaining) bytes left over") }
                return value
            } catch {
                throw ConnectionError(.encoding, "cannot decode a \(String(reflecting: T.self)) from a connection: \(error)")
            }
        }
        if served != nil {
            return try receiveServed().withUnsafeBytes { try decode($0) }
        }
        return try receiveMessage(decode)
    }

    /// Receives the next message's bytes (sent with `sendBytes` or `send`).
    public func recvBytes() throws -> [UInt8] {
        if served != nil { return try receiveServed() }
        return try receiveMessage { Array($0) }
    }

    /// Receives the next message's bytes if it has at most `maxLength` of them — Python's
    /// `recv_bytes(maxlength)`. A longer message is read and dropped, and
    /// `ConnectionError(.messageTooLong)` thrown; the connection goes on with the next.
    public func recvBytes(maxLength: Int) throws -> [UInt8] {
        guard maxLength >= 0 else { throw ConnectionError(.invalidArgument, "recvBytes: maxLength \(maxLength) is negative") }
        let bytes = try recvBytes()
        guard bytes.count <= maxLength else {
            throw ConnectionError(.messageTooLong, "recvBytes: a \(bytes.count)-byte message, longer than maxLength \(maxLength), was dropped")
        }
        return bytes
    }

    /// Receives the next message into `buffer` from `offset` and returns its length —
    /// Python's `recv_bytes_into(buffer, offset)`. A message longer than the room after
    /// `offset` throws `BufferTooShort` holding the whole message (read, so the next call
    /// gets the next one) and leaves `buffer` as it was; an offset outside `buffer` throws
    /// `ConnectionError(.invalidArgument)` before anything is read.
    public func recvBytes(into buffer: UnsafeMutableRawBufferPointer, offset: Int = 0) throws -> Int {
        guard offset >= 0 else { throw ConnectionError(.invalidArgument, "recvBytes(into:): the offset \(offset) is negative") }
        guard offset <= buffer.count else {
            throw ConnectionError(
                .invalidArgument, "recvBytes(into:): the offset \(offset) is past the buffer's \(buffer.count) bytes")
        }
        let room = buffer.count - offset
        func place(_ payload: UnsafeRawBufferPointer) throws -> Int {
            guard payload.count <= room else { throw BufferTooShort(bytes: Array(payload), room: room) }
            if payload.count > 0 { (buffer.baseAddress! + offset).copyMemory(from: payload.baseAddress!, byteCount: payload.count) }
            return payload.count
        }
        if served != nil { return try receiveServed().withUnsafeBytes { try place($0) } }
        return try receiveMessage(place)
    }

    /// `recvBytes(into:offset:)` into an array's bytes.
    public func recvBytes(into buffer: inout [UInt8], offset: Int = 0) throws -> Int {
        try buffer.withUnsafeMutableBytes { try recvBytes(into: $0, offset: offset) }
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

    /// Reads one frame from the socket and calls `body` with its message's bytes (valid
    /// during the call only): a small message's on the stack, read with one `recv`; a larger
    /// one's in `receiveBuffer`.
    private func receiveMessage<R>(_ body: (UnsafeRawBufferPointer) throws -> R) throws -> R {
        guard readable else { throw ConnectionError(.wrongDirection, "this end of a one-way pipe can only send") }
        let fd = try descriptor(for: "receive")
        receiveLock.lock()
        defer { receiveLock.unlock() }
        var frame = Self.emptyFrame
        // Every frame has at least `smallFrameSize` bytes: this read takes nothing of the next.
        try withUnsafeMutableBytes(of: &frame) { try readAll(fd, $0, atMessageStart: true) }
        let length = UInt64(littleEndian: frame.0)
        guard length <= Frame.maximumPayload else {
            throw ConnectionError(.encoding, "the peer announced a \(length)-byte message: the stream is corrupt")
        }
        let count = Int(length)
        if count <= Self.smallPayload {
            return try withUnsafeBytes(of: &frame) { raw in
                try body(UnsafeRawBufferPointer(rebasing: raw[Frame.headerSize..<(Frame.headerSize + count)]))
            }
        }
        if receiveBuffer.count < count || receiveBuffer.count > max(count, 1 << 20) * 4 {
            receiveBuffer = [UInt8](repeating: 0, count: count)
        }
        try receiveBuffer.withUnsafeMutableBytes { buffer in
            withUnsafeBytes(of: &frame) { raw in
                buffer.baseAddress!.copyMemory(from: raw.baseAddress! + Frame.headerSize, byteCount: Self.smallPayload)
            }
            try readAll(fd, UnsafeMutableRawBufferPointer(rebasing: buffer[Self.smallPayload..<count]), atMessageStart: false)
        }
        return try receiveBuffer.withUnsafeBytes { try body(UnsafeRawBufferPointer(rebasing: $0[0..<count])) }
    }

    /// One message of at most `smallPayload` bytes (one small frame), read before `deadline`
    /// (monotonic ns): for a handshake with a peer that is not trusted yet
    /// (`ConnectionAuthentication`). Nil when the deadline passes first; a longer message is
    /// refused from its header alone (`.messageTooLong`), before anything is allocated or
    /// waited for.
    func receiveSmallMessage(before deadline: UInt64) throws -> [UInt8]? {
        let fd = try descriptor(for: "receive")
        receiveLock.lock()
        defer { receiveLock.unlock() }
        var frame = Self.emptyFrame
        let complete = try withUnsafeMutableBytes(of: &frame) { raw -> Bool in
            var done = 0
            while done < raw.count {
                let now = monotonicNanoseconds()
                guard now < deadline, pollOnce(fd, events: Int16(POLLIN), timeoutNanoseconds: Int64(deadline - now)) else {
                    return false
                }
                let n = Glibc.recv(fd, raw.baseAddress! + done, raw.count - done, Int32(MSG_DONTWAIT))
                if n > 0 {
                    done += n
                    if done >= Frame.headerSize, raw.load(as: UInt64.self).littleEndian > UInt64(Self.smallPayload) {
                        throw ConnectionError(.messageTooLong, "the peer announced a message longer than \(Self.smallPayload) bytes")
                    }
                    continue
                }
                if n == 0 { throw ConnectionError(.endOfFile, "end of file: the other end closed the connection") }
                let code = errno
                guard code == EINTR || code == EAGAIN || code == EWOULDBLOCK else {
                    throw ConnectionError(.endOfFile, "recv on a connection failed: \(SystemError("recv", errno: code))")
                }
            }
            return true
        }
        guard complete else { return nil }
        let count = Int(UInt64(littleEndian: frame.0))
        return withUnsafeBytes(of: &frame) { Array($0[Frame.headerSize..<(Frame.headerSize + count)]) }
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
            fd = Atomic(-1)
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
        self.fd = Atomic(fd)
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
