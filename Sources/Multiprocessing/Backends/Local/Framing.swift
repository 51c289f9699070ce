#if canImport(Glibc)
import Glibc
#endif

/// Messages on a ring are frames: a little-endian UInt64 payload length, then the payload.
enum Frame {
    static let headerSize = 8
    /// The largest payload a peer may announce; a larger length means a corrupt stream.
    static let maximumPayload: UInt64 = 1 << 40

    /// Starts a frame: reserves the length, to be completed by `finish`.
    static func begin(_ writer: inout WireWriter) {
        writer.bytes.removeAll(keepingCapacity: true)
        writer.write(UInt64(0))
    }

    /// Fills in the payload length of a frame started with `begin`.
    static func finish(_ writer: inout WireWriter) {
        writer.patch(UInt64(writer.count - headerSize), at: 0)
    }
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

    /// Bytes of a partial frame held here.
    var hasPartialFrame: Bool { headerFilled > 0 || inPayload }

    /// Reads what the ring holds and hands every complete payload to `deliver`.
    /// Returns whether any byte was read. Throws `WireError` on an impossible length.
    mutating func poll(_ ring: Ring, deliver: (UnsafeRawBufferPointer) throws -> Void) throws -> Bool {
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
                let length = UInt64(littleEndian: header)
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
            try payload.withUnsafeBytes { raw in
                try deliver(UnsafeRawBufferPointer(rebasing: raw[0..<count]))
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

/// The worker's side of a slot: blocking receive of tasks and blocking send of results.
/// Waiting spins briefly, then sleeps on the ring's futex, checking between sleeps that
/// the parent still lives.
final class WorkerChannel {
    let tasks: Ring
    let results: Ring
    let doorbell: Doorbell
    let parent: pid_t
    private var storage: UnsafeMutableRawBufferPointer

    init(tasks: Ring, results: Ring, doorbell: Doorbell, parent: pid_t) {
        self.tasks = tasks
        self.results = results
        self.doorbell = doorbell
        self.parent = parent
        self.storage = .allocate(byteCount: 64 << 10, alignment: 16)
    }

    deinit { storage.deallocate() }

    /// Whether the process that started this worker is gone.
    var parentIsGone: Bool { getppid() != parent }

    private func readExactly(_ destination: UnsafeMutableRawBufferPointer) -> Bool {
        var done = 0
        var spins = true
        while done < destination.count {
            let n = tasks.read(into: UnsafeMutableRawBufferPointer(rebasing: destination[done...]))
            if n > 0 {
                done += n
                doorbell.ring()  // space freed for the master
                spins = true
                continue
            }
            tasks.waitForData(spinning: spins, timeoutNanoseconds: 100_000_000)
            spins = false
            if tasks.available == 0 && parentIsGone { return false }
        }
        return true
    }

    /// Blocks until a whole message arrives; nil when the parent is gone.
    /// The returned view is valid until the next call.
    func receive() -> UnsafeRawBufferPointer? {
        var length: UInt64 = 0
        guard withUnsafeMutableBytes(of: &length, { readExactly($0) }) else { return nil }
        length = UInt64(littleEndian: length)
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

    /// Blocks until a whole message arrives and returns a copy of it (the view `receive`
    /// returned before stays valid: a task reading its answer from the rank while its chunk's
    /// inputs are still being decoded, `ObjectRequestRelay`); nil when the parent is gone.
    func receiveCopy() -> [UInt8]? {
        var length: UInt64 = 0
        guard withUnsafeMutableBytes(of: &length, { readExactly($0) }) else { return nil }
        length = UInt64(littleEndian: length)
        guard length <= Frame.maximumPayload else { return nil }
        var message = [UInt8](repeating: 0, count: Int(length))
        guard message.withUnsafeMutableBytes({ readExactly($0) }) else { return nil }
        return message
    }

    /// Writes a whole frame, waiting for space as needed; false when the parent is gone.
    func send(_ frame: UnsafeRawBufferPointer) -> Bool {
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
