import CSystemShims

#if canImport(Glibc)
import Glibc
#endif

/// Messages on a ring are frames: a little-endian UInt64 payload length, then the payload.
/// A message larger than `OutOfBand.threshold` travels in a memfd of its own instead
/// (`OutOfBand`): its frame is a reference, the length with `outOfBand` set, then an 8-byte
/// token naming the descriptor sent ahead on the slot's control socket.
enum Frame {
    static let headerSize = 8
    /// The largest payload a peer may announce; a larger length means a corrupt stream.
    static let maximumPayload: UInt64 = 1 << 40
    /// Set in a header's length: the payload is elsewhere (`OutOfBand`), the frame holds its token.
    static let outOfBand: UInt64 = 1 << 63
    /// The bytes of a reference frame: the header, then the token.
    static let referenceSize = headerSize + 8

    /// Writes a reference to an out-of-band message of `size` bytes into `bytes` (16 bytes).
    static func writeReference(size: Int, token: UInt64, into bytes: UnsafeMutableRawPointer) {
        bytes.storeBytes(of: (outOfBand | UInt64(size)).littleEndian, as: UInt64.self)
        (bytes + headerSize).storeBytes(of: token.littleEndian, as: UInt64.self)
    }

    /// Starts a frame: reserves the length, to be completed by `finish`.
    static func begin(_ writer: inout WireWriter) {
        writer.removeAll(keepingCapacity: true)
        writer.write(UInt64(0))
    }

    /// Fills in the payload length of a frame started with `begin` (deferred blocks included).
    static func finish(_ writer: inout WireWriter) {
        writer.patch(UInt64(writer.totalCount - headerSize), at: 0)
    }
}

/// What a frame carries: the message itself, or a reference to one sent out of band.
enum FramePayload {
    case inline(UnsafeRawBufferPointer)
    case outOfBand(token: UInt64, size: Int)
    /// A message whose large arrays stay in the sender's memory (`RemoteTransfer`).
    case remote(UnsafeRawBufferPointer)
}

/// Reassembles frames from a ring without ever waiting: call `poll` whenever bytes may
/// have arrived. Memory grows with the bytes that really arrived, never with a length field
/// alone.
struct FrameAssembler {
    private var header: UInt64 = 0
    private var headerFilled = 0
    private var payload: [UInt8] = []
    private var expected = 0
    private var filled = 0
    private var inPayload = false
    /// The size of the out-of-band message the frame being read refers to, or nil.
    private var referenced: Int?
    /// Whether the frame being read describes a remote message (`RemoteTransfer`).
    private var remote = false

    /// Bytes of a partial frame held here.
    var hasPartialFrame: Bool { headerFilled > 0 || inPayload }

    /// Reads what the ring holds and hands every complete payload to `deliver`.
    /// Returns whether any byte was read. Throws `WireError` on an impossible length.
    mutating func poll(_ ring: Ring, deliver: (FramePayload) throws -> Void) throws -> Bool {
        var progressed = false
        while true {
            if !inPayload {
                let n = withUnsafeMutableBytes(of: &header) { raw in
                    ring.read(into: UnsafeMutableRawBufferPointer(rebasing: raw[headerFilled...]))
                }
                if n == 0 { return progressed }
                progressed = true
                headerFilled += n
                if headerFilled < Frame.headerSize { return progressed }
                var length = UInt64(littleEndian: header)
                referenced = nil
                remote = false
                if length & Frame.outOfBand == 0, length & RemoteTransfer.flag != 0 {
                    length &= ~RemoteTransfer.flag
                    remote = true
                } else if length & Frame.outOfBand != 0 {
                    length &= ~Frame.outOfBand
                    guard length <= Frame.maximumPayload else {
                        throw WireError(code: .tooLarge, message: "a peer announced a \(length)-byte message")
                    }
                    referenced = Int(length)
                    length = UInt64(Frame.referenceSize - Frame.headerSize)
                }
                guard length <= Frame.maximumPayload else {
                    throw WireError(code: .tooLarge, message: "a peer announced a \(length)-byte message")
                }
                expected = Int(length)
                filled = 0
                inPayload = true
                let initial = min(expected, 1 << 20)
                if payload.count < initial || payload.count > (4 << 20) {
                    payload = [UInt8](repeating: 0, count: initial)
                }
            }
            while filled < expected {
                if payload.count < expected && filled == payload.count {
                    payload.append(contentsOf: repeatElement(0, count: min(expected, payload.count * 2) - payload.count))
                }
                let limit = min(expected, payload.count)
                let n = payload.withUnsafeMutableBytes { raw in
                    ring.read(into: UnsafeMutableRawBufferPointer(rebasing: raw[filled..<limit]))
                }
                if n == 0 { return progressed }
                progressed = true
                filled += n
            }
            inPayload = false
            headerFilled = 0
            let count = expected
            if let size = referenced {
                referenced = nil
                let token = payload.withUnsafeBytes { UInt64(littleEndian: $0.loadUnaligned(as: UInt64.self)) }
                try deliver(.outOfBand(token: token, size: size))
                continue
            }
            let isRemote = remote
            remote = false
            try payload.withUnsafeBytes { raw in
                let bytes = UnsafeRawBufferPointer(rebasing: raw[0..<count])
                try deliver(isRemote ? .remote(bytes) : .inline(bytes))
            }
        }
    }

    mutating func reset() {
        self = FrameAssembler()
    }
}

/// Frames waiting to go into a ring, pushed without ever waiting.
struct FrameQueue {
    private var frames: [[UInt8]] = []
    private var head = 0
    private var offset = 0

    var isEmpty: Bool { head == frames.count }
    var pendingFrames: Int { frames.count - head }
    /// Bytes still to go into the ring.
    var pendingBytes: Int { frames[head...].reduce(0) { $0 + $1.count } - offset }

    mutating func append(_ frame: [UInt8]) { frames.append(frame) }

    /// Writes as much as fits; returns whether any byte was written.
    mutating func push(_ ring: Ring) -> Bool {
        var progressed = false
        while head < frames.count {
            let n = frames[head].withUnsafeBytes { raw in
                ring.write(UnsafeRawBufferPointer(rebasing: raw[offset...]))
            }
            if n > 0 { progressed = true }
            offset += n
            if offset < frames[head].count { break }
            head += 1
            offset = 0
        }
        if head == frames.count {
            frames.removeAll(keepingCapacity: true)
            head = 0
        } else if head > 64 {
            frames.removeFirst(head)
            head = 0
        }
        return progressed
    }

    mutating func removeAll() {
        frames.removeAll()
        head = 0
        offset = 0
    }
}

/// Messages larger than `threshold` bytes do not go through a ring, which would take them a
/// ring's capacity at a time, each piece copied in and out, the sender waiting for the
/// receiver between pieces. The sender writes the message once into a memfd of its own,
/// sends the descriptor on the slot's control socket (`SCM_RIGHTS`, in `DescriptorInbox`'s
/// format, the id's high word `marker`), then a reference frame (`Frame.writeReference`) on
/// the ring; the receiver maps the memfd read-only, decodes from the mapping, unmaps it and
/// closes the descriptor.
///
/// Nothing outlives a crash: the sender closes its descriptor once sent; a descriptor sent
/// but not yet received goes with the receiving end of the socket (the worker's when it
/// dies; the pool's when it replaces the worker or ends); a mapping goes with its process.
enum OutOfBand {
    static let threshold = 1 << 20
    /// The high word of the ids of out-of-band messages on a control socket (the ids of
    /// shared segments, which travel there too, are random).
    static let marker: UInt64 = 0x5357_4D50_4D53_4721 // "SWMPMSG!"

    /// For tests only: a worker exits right after sending a message's descriptor, before
    /// the reference (a crash in the middle of a transfer).
    nonisolated(unsafe) static var exitAfterSendingDescriptor = false

    static func id(_ token: UInt64) -> SegmentID { SegmentID(high: marker, low: token) }

    /// A new memfd holding `parts`, one after the other: written straight from where they
    /// are (a message's bytes and the large arrays it references, `WireWriter.withParts`),
    /// never gathered into a buffer first.
    static func store(_ parts: [UnsafeRawBufferPointer]) throws(SystemError) -> Int32 {
        let fd = try syscallRetrying("memfd_create (for a large message)") {
            CSystemShims_memfd_create("swiftmp-message", 1) // MFD_CLOEXEC
        }
        let total = parts.reduce(0) { $0 + $1.count }
        var offset = 0
        for part in parts {
            var done = 0
            while done < part.count {
                let n = pwrite(fd, part.baseAddress! + done, part.count - done, off_t(offset + done))
                if n > 0 {
                    done += n
                    continue
                }
                let code = n < 0 ? Glibc.errno : ENOSPC
                if code == EINTR { continue }
                systemClose(fd)
                throw SystemError(
                    "pwrite (a \(total)-byte message into shared memory: free memory, or pass smaller values)",
                    errno: code)
            }
            offset += part.count
        }
        return fd
    }

    /// Sends the descriptor of message `token` on `socket`.
    static func sendDescriptor(_ fd: Int32, token: UInt64, on socket: Int32) throws(SystemError) {
        var message = WireWriter(capacity: 20)
        message.write(UInt32(1))
        message.write(marker)
        message.write(token)
        var descriptor = fd
        let sent = message.bytes.withUnsafeBytes { raw in
            CSystemShims_send_with_fds(socket, raw.baseAddress, raw.count, &descriptor, 1)
        }
        if sent < 0 { throw SystemError("sendmsg (a large message's descriptor)", errno: Glibc.errno) }
    }

    /// The descriptor of message `token`, read from `socket` without waiting: its sender sent
    /// it before the reference, so it must be there.
    static func receiveDescriptor(token: UInt64, on socket: Int32) throws -> Int32 {
        var ready = pollfd(fd: socket, events: Int16(POLLIN), revents: 0)
        guard socket >= 0, poll(&ready, 1, 0) == 1, ready.revents & Int16(POLLIN) != 0 else {
            throw PoolError(.protocolViolation, "a worker referred to a large message whose descriptor never came")
        }
        var buffer = [UInt8](repeating: 0, count: 64)
        var fds = [Int32](repeating: -1, count: 8)
        var count: Int32 = 0
        var truncated: Int32 = 0
        let n = buffer.withUnsafeMutableBytes { raw in
            fds.withUnsafeMutableBufferPointer {
                CSystemShims_recv_with_fds(socket, raw.baseAddress, raw.count, $0.baseAddress, 8, &count, &truncated)
            }
        }
        let received = Array(fds.prefix(Int(max(0, count))))
        if n < 0 {
            let code = Glibc.errno
            received.forEach(systemClose)
            throw SystemError("recvmsg (a large message's descriptor)", errno: code)
        }
        let id: SegmentID? = buffer.withUnsafeBytes { raw in
            var reader = WireReader(UnsafeRawBufferPointer(rebasing: raw[0..<max(0, n)]))
            guard let count = try? reader.read(UInt32.self), count == 1,
                let high = try? reader.read(UInt64.self), let low = try? reader.read(UInt64.self)
            else { return nil }
            return SegmentID(high: high, low: low)
        }
        guard truncated == 0, received.count == 1, id == OutOfBand.id(token) else {
            received.forEach(systemClose)
            throw PoolError(.protocolViolation, "a worker sent a large message's descriptor out of order")
        }
        return received[0]
    }

    /// Maps a received message (read-only), checking its size.
    static func map(_ fd: Int32, size: Int) throws(SystemError) -> UnsafeRawBufferPointer {
        var info = stat()
        try syscallRetrying("fstat (a large message)") { fstat(fd, &info) }
        guard size > 0, info.st_size == size else {
            throw SystemError("fstat (a large message of \(info.st_size) bytes, announced as \(size))", errno: EINVAL)
        }
        // Not populated: a decoder copying a large array out of it faults its pages in a
        // piece at a time and drops them once copied (`WireSharedMappings`), so the receiver
        // never holds the whole message beside what it decodes.
        let pointer = mmap(nil, size, PROT_READ, MAP_SHARED, fd, 0)
        guard let pointer, pointer != MAP_FAILED else {
            throw SystemError("mmap (a \(size)-byte message: free memory, or pass smaller values)", errno: Glibc.errno)
        }
        let view = UnsafeRawBufferPointer(start: pointer, count: size)
        WireSharedMappings.register(view)
        return view
    }

    static func unmap(_ view: UnsafeRawBufferPointer) {
        WireSharedMappings.unregister(view)
        munmap(UnsafeMutableRawPointer(mutating: view.baseAddress), view.count)
    }

    /// Writes `payload` out of band to the peer behind `socket`; returns the reference frame
    /// to send on the ring instead, or nil when that failed (the message then goes through
    /// the ring).
    static func send(_ payload: UnsafeRawBufferPointer, token: UInt64, on socket: Int32) -> [UInt8]? {
        send(parts: [payload], token: token, on: socket)
    }

    /// `send` of a message in consecutive parts.
    static func send(parts: [UnsafeRawBufferPointer], token: UInt64, on socket: Int32) -> [UInt8]? {
        guard socket >= 0, let fd = try? store(parts) else { return nil }
        defer { systemClose(fd) }
        guard (try? sendDescriptor(fd, token: token, on: socket)) != nil else { return nil }
        let size = parts.reduce(0) { $0 + $1.count }
        var reference = [UInt8](repeating: 0, count: Frame.referenceSize)
        reference.withUnsafeMutableBytes { Frame.writeReference(size: size, token: token, into: $0.baseAddress!) }
        return reference
    }

    /// Whether `message` (a complete frame, `Frame.finish`ed) must go out of band: it
    /// references blocks it does not hold (`WireWriter.defersLargeBlocks`), or it is large.
    static func wants(_ message: WireWriter) -> Bool {
        message.totalCount - Frame.headerSize > threshold
    }

    /// Sends a complete frame that references deferred blocks out of band, its parts written
    /// straight into the memfd, and returns the reference frame to send on the ring instead;
    /// or (small, no control socket, or the memfd failed) copies the blocks into
    /// `message.bytes` and returns nil: the frame then goes as usual.
    static func send(deferred message: inout WireWriter, token: UInt64, on socket: Int32) -> [UInt8]? {
        if wants(message),
            let reference = message.withParts(from: Frame.headerSize, { send(parts: $0, token: token, on: socket) })
        {
            return reference
        }
        message.materializeDeferredBlocks()
        return nil
    }
}

/// The worker's side of a slot: blocking receive of tasks and blocking send of results.
/// Waiting spins briefly, then sleeps on the ring's futex, checking between sleeps that
/// the parent still lives.
final class WorkerChannel {
    let tasks: Ring
    let results: Ring
    let doorbell: Doorbell
    let parent: pid_t
    /// The control socket (descriptors of large messages go out there) and its reader.
    let control: Int32
    let inbox: DescriptorInbox
    /// The slot's words for remote messages, and the pool's process (`RemoteTransfer`).
    let transfer: TransferWords
    let pool: pid_t
    private var storage: UnsafeMutableRawBufferPointer
    /// The mapping of the last message received out of band, until the next `receive`.
    private var mapped: UnsafeRawBufferPointer?
    /// The last message received remote, until `releaseRemoteMessage` or the next `receive`.
    private var remote: RemoteMessage?
    /// A later remote message `receiveCopy` read whole while `remote` was still being decoded:
    /// told to the pool with it (the pool lets go of every message up to the token it is told).
    private var copiedWhileReading: UInt64 = 0
    /// Large results sent remote, kept until the pool has read them (`resultsRead`).
    private var heldResults: [(token: UInt64, blocks: [WireDeferredBlock])] = []
    private var nextToken: UInt64 = 0
    /// Why `receive` returned nil although the parent lives.
    private(set) var failure: String?
    /// Whether to spin (rather than sleep at once) while waiting for the next task. A pool's
    /// worker spins: its master answers within microseconds. A worker hosted by an MPI rank
    /// spins only while the machine has a CPU free (`SpinGate`): its rank and rank 0 already
    /// poll MPI, and a third waiter awake on a full machine takes the CPU the relay needs
    /// (measured under mpirun -np 2 on 2 CPUs: hot round trip 85–112 µs spinning, 30–57 µs not).
    var spinsForTasks: () -> Bool = { true }
    /// A worker hosted by an MPI rank follows its rank's CPU: when it waited for a task that
    /// came alone — the rank had nothing else in flight (`TransferWords.Sender.beckoning`) and the
    /// ring holds only it: a round trip, not a stream of tasks — and runs on another CPU
    /// than the one the rank sent it from, it moves there (`CSystemShims_move_to_cpu`), so
    /// that the rank's next wake-up of it is on its own CPU. A wake-up across CPUs costs ~14 µs per
    /// task on these VMs (an interrupt to the other CPU): a hot `apply` under mpirun -np 3
    /// took 35 µs in the runs where the kernel had put the worker on rank 0's CPU, 21 µs
    /// otherwise. Streams of tasks (a `map`) are left where the kernel puts them.
    var followsRank = false
    /// Whether the last wait for a task was long (`idleNanoseconds`): the pool is not
    /// streaming tasks, so a spin on its CPU would only hold the CPU its next call needs.
    private var wasIdle = false
    static let idleNanoseconds: UInt64 = 200_000
    /// Whether the current `receive` had to wait for its first bytes.
    private var waitedForTask = false

    init(
        tasks: Ring, results: Ring, doorbell: Doorbell, parent: pid_t, control: Int32, inbox: DescriptorInbox,
        transfer: TransferWords, pool: pid_t
    ) {
        self.tasks = tasks
        self.results = results
        self.doorbell = doorbell
        self.parent = parent
        self.control = control
        self.inbox = inbox
        self.transfer = transfer
        self.pool = pool
        self.storage = .allocate(byteCount: 64 << 10, alignment: 16)
    }

    deinit {
        releaseMessage()
        storage.deallocate()
    }

    /// Unmaps the last message if it came out of band (the view `receive` returned dies).
    func releaseMessage() {
        if let mapped { OutOfBand.unmap(mapped) }
        mapped = nil
        releaseRemoteMessage()
    }

    /// Drops the last message if it came remote (the view `receive` returned dies) and tells
    /// the pool it may let go of its arrays.
    func releaseRemoteMessage() {
        guard let message = remote else { return }
        remote = nil
        transfer.inputsRead = max(message.token, copiedWhileReading)
        copiedWhileReading = 0
    }

    /// Lets go of the large results the pool has read.
    private func dropReadResults() {
        guard !heldResults.isEmpty else { return }
        let read = transfer.resultsRead
        heldResults.removeAll { $0.token <= read }
    }

    /// Before the worker exits: waits until the pool has read its large results (or is gone).
    func awaitResultsRead() {
        dropReadResults()
        while !heldResults.isEmpty && !parentIsGone {
            let seen = CSystemShims_load_u32_seqcst(transfer.resultsReadSequence)
            dropReadResults()
            if heldResults.isEmpty { break }
            _ = CSystemShims_futex_wait(transfer.resultsReadSequence, seen, 100_000_000)
            dropReadResults()
        }
    }

    /// Whether this worker runs on the CPU the pool last sent to it from. After an idle wait
    /// (`wasIdle`) it then sleeps at once for its next task instead of spinning: a cold
    /// `apply` (after 1 ms idle) woke the worker on the caller's CPU while the other CPU
    /// idled, and the worker's spin held the CPU the caller needed to take the reply
    /// (`perf sched`): 78–102 µs, 18–20 µs without that spin; hot calls and maps (whose
    /// waits are short) spin as before.
    private func onSendersCPU() -> Bool {
        guard let sender = transfer.sender.cpu else { return false }
        return CSystemShims_current_cpu() == sender
    }

    /// Moves to the CPU the rank last forwarded from, if this worker runs elsewhere
    /// (`followsRank`). A CPU this worker may not use (its affinity changed) ends following.
    private func followRank() {
        let sender = transfer.sender
        guard sender.beckoning, let wanted = sender.cpu, CSystemShims_current_cpu() != wanted else { return }
        if CSystemShims_move_to_cpu(wanted) != 0 { followsRank = false }
    }

    /// Whether the process that started this worker is gone.
    var parentIsGone: Bool { getppid() != parent }

    private func readExactly(_ destination: UnsafeMutableRawBufferPointer) -> Bool {
        var done = 0
        var spins = spinsForTasks() && !(wasIdle && onSendersCPU())
        while done < destination.count {
            let position = tasks.readPosition
            let n = tasks.read(into: UnsafeMutableRawBufferPointer(rebasing: destination[done...]))
            if n > 0 {
                done += n
                // Space freed for the master, which waits for it only when it filled the ring
                // (frames it could not write whole). Otherwise no ring: it would wake a master
                // waiting for this task's reply for nothing (a cold `apply`: once per call).
                if tasks.wasFull(readingFrom: position) { doorbell.ring() }
                spins = spinsForTasks() && !(wasIdle && onSendersCPU())
                continue
            }
            let waitStart = monotonicNanoseconds()
            tasks.waitForData(spinning: spins, timeoutNanoseconds: 100_000_000)
            wasIdle = monotonicNanoseconds() &- waitStart > Self.idleNanoseconds
            waitedForTask = true
            spins = false
            dropReadResults()
            if tasks.available == 0 && parentIsGone { return false }
        }
        return true
    }

    /// Blocks until a whole message arrives; nil when the parent is gone.
    /// The returned view is valid until the next call.
    func receive() -> UnsafeRawBufferPointer? {
        releaseMessage()
        var length: UInt64 = 0
        waitedForTask = false
        guard withUnsafeMutableBytes(of: &length, { readExactly($0) }) else { return nil }
        length = UInt64(littleEndian: length)
        dropReadResults()
        if followsRank && waitedForTask && UInt64(tasks.available) == length { followRank() }
        if length & Frame.outOfBand != 0 {
            return receiveOutOfBand(size: length & ~Frame.outOfBand)
        }
        if length & RemoteTransfer.flag != 0 {
            guard let message = receiveRemote(size: length & ~RemoteTransfer.flag) else { return nil }
            message.register()
            remote = message
            return message.bytes
        }
        guard length <= Frame.maximumPayload else { return nil }
        let count = Int(length)
        if storage.count < count || (storage.count > (16 << 20) && count < (1 << 20)) {
            storage.deallocate()
            storage = .allocate(byteCount: max(count, 64 << 10), alignment: 16)
        }
        let view = UnsafeMutableRawBufferPointer(rebasing: storage[0..<count])
        guard readExactly(view) else { return nil }
        return UnsafeRawBufferPointer(view)
    }

    /// Reads a remote frame's payload of `size` bytes and opens the message it describes.
    /// Reads a remote frame's description (into `storage`, or — `keepingCurrent`, while the
    /// current message may lie in `storage` — into a buffer of its own; `RemoteMessage` copies
    /// what it keeps).
    private func receiveRemote(size: UInt64, keepingCurrent: Bool = false) -> RemoteMessage? {
        guard size <= UInt64(OutOfBand.threshold) else {
            failure = "the pool announced a \(size)-byte remote message description"
            return nil
        }
        let count = Int(size)
        func parse(_ view: UnsafeMutableRawBufferPointer) -> RemoteMessage? {
            guard readExactly(view) else { return nil }
            do {
                return try RemoteMessage(payload: UnsafeRawBufferPointer(view), from: pool)
            } catch {
                failure = "cannot read a large message: \(error)"
                return nil
            }
        }
        if keepingCurrent {
            var description = [UInt8](repeating: 0, count: count)
            return description.withUnsafeMutableBytes { parse($0) }
        }
        if storage.count < count {
            storage.deallocate()
            storage = .allocate(byteCount: max(count, 64 << 10), alignment: 16)
        }
        return parse(UnsafeMutableRawBufferPointer(rebasing: storage[0..<count]))
    }

    private func receiveOutOfBand(size: UInt64) -> UnsafeRawBufferPointer? {
        var token: UInt64 = 0
        guard size <= Frame.maximumPayload, withUnsafeMutableBytes(of: &token, { readExactly($0) }) else { return nil }
        token = UInt64(littleEndian: token)
        do {
            guard let fd = try inbox.descriptor(for: OutOfBand.id(token)) else {
                failure = "the descriptor of a large message never came (the control socket closed)"
                return nil
            }
            defer { systemClose(fd) }
            let view = try OutOfBand.map(fd, size: Int(size))
            mapped = view
            return view
        } catch {
            failure = "cannot read a large message: \(error)"
            return nil
        }
    }

    /// Blocks until a whole message arrives and returns a copy of it (the view `receive`
    /// returned before stays valid: a task reading its answer from the rank while its chunk's
    /// inputs are still being decoded, `ObjectRequestRelay`); nil when the parent is gone.
    func receiveCopy() -> [UInt8]? {
        var length: UInt64 = 0
        guard withUnsafeMutableBytes(of: &length, { readExactly($0) }) else { return nil }
        length = UInt64(littleEndian: length)
        if length & Frame.outOfBand != 0 {
            // Mapped, copied and unmapped at once (the current message's mapping stays).
            let size = length & ~Frame.outOfBand
            var token: UInt64 = 0
            guard size <= Frame.maximumPayload, withUnsafeMutableBytes(of: &token, { readExactly($0) }) else { return nil }
            do {
                guard let fd = try inbox.descriptor(for: OutOfBand.id(UInt64(littleEndian: token))) else { return nil }
                defer { systemClose(fd) }
                let view = try OutOfBand.map(fd, size: Int(size))
                defer { OutOfBand.unmap(view) }
                return Array(view)
            } catch {
                failure = "cannot read a large message: \(error)"
                return nil
            }
        }
        if length & RemoteTransfer.flag != 0 {
            // Read whole at once (the current message stays).
            guard let message = receiveRemote(size: length & ~RemoteTransfer.flag, keepingCurrent: true) else { return nil }
            defer {
                if remote == nil { transfer.inputsRead = message.token } else { copiedWhileReading = message.token }
            }
            do {
                try message.materialize()
            } catch {
                failure = "cannot read a large message: \(error)"
                return nil
            }
            return Array(message.bytes)
        }
        guard length <= Frame.maximumPayload else { return nil }
        var message = [UInt8](repeating: 0, count: Int(length))
        guard message.withUnsafeMutableBytes({ readExactly($0) }) else { return nil }
        return message
    }

    /// Writes a whole message built in `message` (a frame, `Frame.finish`ed), out of band
    /// when it is large, straight from the arrays it references (`WireWriter.defersLargeBlocks`);
    /// false when the parent is gone.
    func send(_ message: inout WireWriter) -> Bool {
        dropReadResults()
        if !message.deferredBlocks.isEmpty {
            nextToken &+= 1
            // The pool reads the arrays from here (`RemoteTransfer`), when it can.
            if OutOfBand.wants(message), RemoteTransfer.enabled, transfer.poolReadsWorker == 1,
                let frame = RemoteTransfer.frame(for: message, token: nextToken)
            {
                heldResults.append((nextToken, message.deferredBlocks))
                if OutOfBand.exitAfterSendingDescriptor { _ = frame.withUnsafeBytes { sendFrame($0) }; _exit(70) }
                return frame.withUnsafeBytes { sendFrame($0) }
            }
            if let reference = OutOfBand.send(deferred: &message, token: nextToken, on: control) {
                if OutOfBand.exitAfterSendingDescriptor { _exit(70) }
                return reference.withUnsafeBytes { sendFrame($0) }
            }
        }
        return message.bytes.withUnsafeBytes { send($0) }
    }

    /// Writes a whole message (a frame), out of band when it is large; false when the
    /// parent is gone.
    func send(_ frame: UnsafeRawBufferPointer) -> Bool {
        if frame.count - Frame.headerSize > OutOfBand.threshold {
            nextToken &+= 1
            if let reference = OutOfBand.send(
                UnsafeRawBufferPointer(rebasing: frame[Frame.headerSize...]),
                token: nextToken, on: control)
            {
                if OutOfBand.exitAfterSendingDescriptor { _exit(70) }
                return reference.withUnsafeBytes { sendFrame($0) }
            }
        }
        return sendFrame(frame)
    }

    private func sendFrame(_ frame: UnsafeRawBufferPointer) -> Bool {
        var done = 0
        var spins = true
        while done < frame.count {
            let n = results.write(UnsafeRawBufferPointer(rebasing: frame[done...]))
            if n > 0 {
                done += n
                doorbell.ring()
                spins = true
                continue
            }
            results.waitForSpace(spinning: spins, timeoutNanoseconds: 100_000_000)
            spins = false
            if results.freeSpace == 0 && parentIsGone { return false }
        }
        return true
    }
}
