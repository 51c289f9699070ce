import CSystemShims
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// The shared-memory machinery behind `Queue`, `SimpleQueue` and `JoinableQueue`.
///
/// A `SharedSegment` holds a header and one byte ring (`Ring`, single producer, single
/// consumer). Items are frames (8-byte length, then the item's `Wire` encoding). Many
/// producers and consumers take turns: a producer holds the *producer* mutex while it writes
/// one whole item, a consumer holds the *consumer* mutex while it reads one — so the ring
/// always sees one writer and one reader, and a big item streams through while a consumer
/// drains it. Both mutexes are robust: a process that dies holding one is noticed by the
/// next locker, and if it died in the middle of an item (a flag says so) the queue is
/// marked broken — every later call throws `QueueError(.broken)` instead of hanging.
/// A consumer waiting for the rest of an item probes the producer mutex every 100 ms to
/// notice a producer that died mid-item (and a producer waiting for room the consumer's).
///
/// Counters: `reserved` (items put and not yet got: `count`, and the `maxSize` bound),
/// `unfinished` (items put and not yet `taskDone`), each with a futex word for waiters.
///
/// Header (bytes): magic @0, ring capacity @8, maxSize @16, broken @24, producer mutex @64,
/// producerWriting @112, unfinished @116, consumer mutex @128, consumerReading @176,
/// reserved @192, notFullSequence @196, notFullSleepers @200, joinSequence @208, ring @256.
/// (What only producers write shares the producer mutex's cache line, what only consumers
/// write the consumer mutex's, so that a put and a get touch as few shared lines as they can.)
final class QueueCore: @unchecked Sendable {
    static let magic: UInt64 = 0x5357_4D50_5155_4556  // "SWMPQUEV" (layout 2)
    static let ringOffset = 256
    /// How long one wait sleeps before re-checking for a dead peer.
    static let probeInterval: Int64 = 100_000_000

    let segment: SharedSegment
    let ring: Ring
    let maxSize: Int
    private let producerMutex: SharedMutex
    private let consumerMutex: SharedMutex
    private let isClosedHere = Atomic<Bool>(false)
    /// Read buffer, used only while holding the consumer mutex.
    private var buffer: UnsafeMutableRawBufferPointer = .allocate(byteCount: 4096, alignment: 16)
    /// Bytes of the item being got not read yet, and header bytes still to skip in the ring
    /// (consumer mutex held).
    private var payloadLeft = 0
    private var skipPending = 0

    private func word(_ offset: Int) -> UnsafeMutablePointer<UInt32> {
        (segment.base + offset).assumingMemoryBound(to: UInt32.self)
    }
    private var broken: UnsafeMutablePointer<UInt32> { word(24) }
    private var reserved: UnsafeMutablePointer<UInt32> { word(192) }
    private var notFullSequence: UnsafeMutablePointer<UInt32> { word(196) }
    private var notFullSleepers: UnsafeMutablePointer<UInt32> { word(200) }
    private var unfinished: UnsafeMutablePointer<UInt32> { word(116) }
    private var joinSequence: UnsafeMutablePointer<UInt32> { word(208) }
    private var producerWriting: UnsafeMutablePointer<UInt32> { word(112) }
    private var consumerReading: UnsafeMutablePointer<UInt32> { word(176) }

    /// A new queue holding at most `maxSize` items (0: no bound) in a buffer of
    /// `bufferSize` bytes (rounded up to a power of two).
    init(maxSize: Int, bufferSize: Int) throws {
        guard maxSize >= 0, maxSize < Int(UInt32.max) else {
            throw QueueError(.invalidArgument, "maxSize must be 0 (no bound) or a positive count below 2^32, not \(maxSize)")
        }
        guard bufferSize >= 64, bufferSize <= 1 << 34 else {
            throw QueueError(.invalidArgument, "bufferSize must be 64 bytes to 16 GiB, not \(bufferSize)")
        }
        var capacity = 64
        while capacity < bufferSize { capacity <<= 1 }
        segment = try SharedSegment(size: QueueCore.ringOffset + Ring.byteCount(capacity: capacity))
        let base = segment.base
        producerMutex = try SharedMutex.initialize(at: base + 64)
        consumerMutex = try SharedMutex.initialize(at: base + 128)
        (base + 8).storeBytes(of: UInt64(capacity), as: UInt64.self)
        (base + 16).storeBytes(of: UInt64(maxSize), as: UInt64.self)
        ring = Ring(at: base + QueueCore.ringOffset, capacity: capacity)
        self.maxSize = maxSize
        CSystemShims_store_u64_seqcst(base.assumingMemoryBound(to: UInt64.self), QueueCore.magic)
    }

    /// Attaches to a queue made by another process (or this one).
    init(attaching segment: SharedSegment) throws {
        let base = segment.base
        guard segment.size >= QueueCore.ringOffset + Ring.headerSize,
              CSystemShims_load_u64_seqcst(base.assumingMemoryBound(to: UInt64.self)) == QueueCore.magic else {
            throw QueueError(.invalidArgument, "the shared memory received is not a queue")
        }
        let capacity = Int(truncatingIfNeeded: (base + 8).load(as: UInt64.self))
        guard capacity >= 64, capacity & (capacity - 1) == 0,
              QueueCore.ringOffset + Ring.byteCount(capacity: capacity) <= segment.size else {
            throw QueueError(.invalidArgument, "the queue received has a corrupt header")
        }
        self.segment = segment
        producerMutex = SharedMutex(at: base + 64)
        consumerMutex = SharedMutex(at: base + 128)
        ring = Ring(at: base + QueueCore.ringOffset, capacity: capacity)
        maxSize = Int(truncatingIfNeeded: (base + 16).load(as: UInt64.self))
    }

    deinit { buffer.deallocate() }

    // MARK: state

    func close() { isClosedHere.store(true, ordering: .relaxed) }

    var count: Int { Int(CSystemShims_load_u32_seqcst(reserved)) }
    var isEmpty: Bool { ring.available == 0 }
    var isFull: Bool { maxSize > 0 && count >= maxSize }
    var isBroken: Bool { CSystemShims_load_u32_seqcst(broken) != 0 }

    private func checkUsable() throws(QueueError) {
        if isClosedHere.load(ordering: .relaxed) {
            throw QueueError(.closed, "the queue was closed in this process; use another handle or do not close it")
        }
        try checkBroken()
    }

    private func checkBroken() throws(QueueError) {
        if isBroken {
            throw QueueError(.broken, """
                the queue is broken: a process died in the middle of putting or getting an item, \
                so the stream of items is cut; create a new queue
                """)
        }
    }

    private func markBroken() {
        CSystemShims_store_u32_seqcst(broken, 1)
        // Wake everyone who might sleep on this queue so that they notice.
        _ = CSystemShims_fetch_add_u32(notFullSequence, 1)
        _ = CSystemShims_futex_wake(notFullSequence, Int32.max)
        _ = CSystemShims_fetch_add_u32(joinSequence, 1)
        _ = CSystemShims_futex_wake(joinSequence, Int32.max)
    }

    private static func remaining(_ deadline: UInt64?) -> Double? {
        guard let deadline else { return nil }
        let now = monotonicNanoseconds()
        return deadline > now ? Double(deadline - now) * 1e-9 : 0
    }

    private static func sleepSlice(_ deadline: UInt64?) -> Int64 {
        guard let deadline else { return probeInterval }
        let now = monotonicNanoseconds()
        return deadline > now ? min(Int64(deadline - now), probeInterval) : 0
    }

    private static func passed(_ deadline: UInt64?) -> Bool {
        deadline.map { monotonicNanoseconds() >= $0 } ?? false
    }

    // MARK: putting

    /// Puts one frame (header included). Throws `Full` if no room came before `deadline`.
    func put(frame: UnsafeRawBufferPointer, deadline: UInt64?) throws {
        try put(prefix: frame, body: UnsafeRawBufferPointer(start: nil, count: 0), deadline: deadline)
    }

    /// Puts one frame made of `prefix` (which holds the header) followed by `body`, so that a
    /// big payload is copied straight from the caller's memory into the ring.
    func put(prefix: UnsafeRawBufferPointer, body: UnsafeRawBufferPointer, deadline: UInt64?) throws {
        try checkUsable()
        try reserve(deadline)
        var placed = false
        defer { if !placed { release() } }
        switch try producerMutex.lock(timeout: QueueCore.remaining(deadline)) {
        case .timedOut: throw Full()
        case .acquiredFromDeadOwner:
            if CSystemShims_load_u32_seqcst(producerWriting) != 0 { markBroken() }
        case .acquired: break
        }
        defer { try? producerMutex.unlock() }
        try checkBroken()
        // Start only when the whole item fits (or the ring is empty, for an item bigger
        // than the ring): a put that times out never leaves half an item behind.
        let needed = min(prefix.count + body.count, ring.capacity)
        var spinning = true
        while ring.freeSpace < needed {
            if QueueCore.passed(deadline) { throw Full() }
            ring.waitForSpace(spinning: spinning, timeoutNanoseconds: QueueCore.sleepSlice(deadline))
            spinning = false
            try checkBroken()
            if ring.freeSpace < needed { try probe(consumerMutex, flag: consumerReading) }
        }
        _ = CSystemShims_fetch_add_u32(unfinished, 1)
        CSystemShims_store_u32_seqcst(producerWriting, 1)
        try writeAll(prefix)
        try writeAll(body)
        CSystemShims_store_u32_seqcst(producerWriting, 0)
        placed = true
    }

    /// Writes all of `part` into the ring, waiting for the consumer to make room (producer
    /// mutex held).
    private func writeAll(_ part: UnsafeRawBufferPointer) throws {
        if part.count == 0 { return }
        var done = ring.write(part)
        var spinning = true
        while done < part.count {
            ring.waitForSpace(spinning: spinning, timeoutNanoseconds: QueueCore.probeInterval)
            spinning = false
            try checkBroken()
            let n = ring.write(UnsafeRawBufferPointer(rebasing: part[done...]))
            if n == 0 { try probe(consumerMutex, flag: consumerReading) } else { spinning = true }
            done += n
        }
    }

    /// Counts one more item, waiting while `maxSize` items are in the queue.
    private func reserve(_ deadline: UInt64?) throws {
        if maxSize == 0 {
            _ = CSystemShims_fetch_add_u32(reserved, 1)
            return
        }
        let limit = UInt32(maxSize)
        while true {
            var current = CSystemShims_load_u32_seqcst(reserved)
            while current < limit {
                if CSystemShims_cas_u32(reserved, &current, current + 1) != 0 { return }
            }
            if QueueCore.passed(deadline) { throw Full() }
            _ = CSystemShims_fetch_add_u32(notFullSleepers, 1)
            let seen = CSystemShims_load_u32_seqcst(notFullSequence)
            if CSystemShims_load_u32_seqcst(reserved) >= limit && !isBroken {
                _ = CSystemShims_futex_wait(notFullSequence, seen, QueueCore.sleepSlice(deadline))
            }
            _ = CSystemShims_fetch_add_u32(notFullSleepers, UInt32.max)
            try checkBroken()
        }
    }

    /// Takes one item off the count and wakes a producer waiting for room.
    private func release() {
        _ = CSystemShims_fetch_add_u32(reserved, UInt32.max)
        if maxSize > 0 {
            _ = CSystemShims_fetch_add_u32(notFullSequence, 1)
            if CSystemShims_load_u32_seqcst(notFullSleepers) != 0 {
                _ = CSystemShims_futex_wake(notFullSequence, Int32.max)
            }
        }
    }

    /// Checks whether the other side's mutex holder died in the middle of an item.
    private func probe(_ mutex: SharedMutex, flag: UnsafeMutablePointer<UInt32>) throws {
        switch try mutex.lock(timeout: 0) {
        case .timedOut:
            return  // held: its owner lives (a dead owner's robust mutex is not "busy")
        case .acquiredFromDeadOwner:
            if CSystemShims_load_u32_seqcst(flag) != 0 { markBroken() }
            try mutex.unlock()
        case .acquired:
            try mutex.unlock()
        }
        try checkBroken()
    }

    // MARK: getting

    /// Gets one item's bytes and decodes them with `decode` (under the consumer mutex).
    /// Throws `Empty` if none came before `deadline`.
    func get<T>(deadline: UInt64?, decode: (UnsafeRawBufferPointer) throws -> T) throws -> T {
        try get(deadline: deadline) { count in
            if buffer.count < count || (buffer.count > (16 << 20) && count < (1 << 20)) {
                buffer.deallocate()
                buffer = .allocate(byteCount: max(count, 4096), alignment: 16)
            }
            let bytes = UnsafeMutableRawBufferPointer(rebasing: buffer[0..<count])
            try readPayload(into: bytes)
            return try decode(UnsafeRawBufferPointer(bytes))
        }
    }

    /// Gets one item: `receive` is called with the payload's length, under the consumer
    /// mutex, and reads the payload with `readPayload(into:)` (straight from the ring, no
    /// intermediate copy). Whatever it leaves unread is skipped, so an item that cannot be
    /// decoded is still consumed whole. Throws `Empty` if none came before `deadline`.
    func get<T>(deadline: UInt64?, receive: (_ length: Int) throws -> T) throws -> T {
        try checkUsable()
        switch try consumerMutex.lock(timeout: QueueCore.remaining(deadline)) {
        case .timedOut: throw Empty()
        case .acquiredFromDeadOwner:
            if CSystemShims_load_u32_seqcst(consumerReading) != 0 { markBroken() }
        case .acquired: break
        }
        defer { try? consumerMutex.unlock() }
        try checkBroken()
        var spinning = true
        while ring.available < Frame.headerSize {
            if QueueCore.passed(deadline) { throw Empty() }
            ring.waitForData(spinning: spinning, timeoutNanoseconds: QueueCore.sleepSlice(deadline))
            spinning = false
            try checkBroken()
        }
        var header: UInt64 = 0
        withUnsafeMutableBytes(of: &header) { _ = ring.peek(into: $0) }
        let length = UInt64(littleEndian: header)
        guard length <= Frame.maximumPayload else {
            markBroken()
            throw QueueError(.broken, "the queue's stream is corrupt (an item of \(length) bytes); create a new queue")
        }
        CSystemShims_store_u32_seqcst(consumerReading, 1)
        // The header is consumed together with the payload's first bytes (one ring update).
        skipPending = Frame.headerSize
        payloadLeft = Int(length)
        let value: T
        do {
            value = try receive(Int(length))
        } catch {
            if isBroken { throw error }
            try skipRestOfItem()
            CSystemShims_store_u32_seqcst(consumerReading, 0)
            release()
            throw error
        }
        try skipRestOfItem()
        CSystemShims_store_u32_seqcst(consumerReading, 0)
        release()
        return value
    }

    /// Reads exactly `destination.count` more bytes of the item being got (inside `receive`).
    func readPayload(into destination: UnsafeMutableRawBufferPointer) throws {
        precondition(destination.count <= payloadLeft, "read past the end of a queue item")
        var done = ring.read(into: destination, skipping: skipPending)
        skipPending = 0
        var spinning = true
        while done < destination.count {
            ring.waitForData(spinning: spinning, timeoutNanoseconds: QueueCore.probeInterval)
            spinning = false
            try checkBroken()
            let n = ring.read(into: UnsafeMutableRawBufferPointer(rebasing: destination[done...]))
            if n == 0 { try probe(producerMutex, flag: producerWriting) } else { spinning = true }
            done += n
        }
        payloadLeft -= destination.count
    }

    /// Bytes of the item being got not read yet.
    var payloadRemaining: Int { payloadLeft }

    private func skipRestOfItem() throws {
        if payloadLeft == 0 && skipPending == 0 { return }
        var scratch: (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0, 0, 0, 0, 0)
        try withUnsafeMutableBytes(of: &scratch) { raw in
            repeat {
                let n = min(payloadLeft, raw.count)
                try readPayload(into: UnsafeMutableRawBufferPointer(rebasing: raw[0..<n]))
            } while payloadLeft > 0
        }
    }

    // MARK: tasks (JoinableQueue)

    func taskDone() throws {
        var current = CSystemShims_load_u32_seqcst(unfinished)
        while true {
            guard current > 0 else {
                throw QueueError(.taskDoneTooOften, "taskDone() was called more times than items were put")
            }
            if CSystemShims_cas_u32(unfinished, &current, current - 1) != 0 { break }
        }
        if current == 1 {
            _ = CSystemShims_fetch_add_u32(joinSequence, 1)
            _ = CSystemShims_futex_wake(joinSequence, Int32.max)
        }
    }

    var unfinishedTasks: Int { Int(CSystemShims_load_u32_seqcst(unfinished)) }

    /// Waits until every item put was marked done; false if `deadline` passed first.
    func join(deadline: UInt64?) throws -> Bool {
        while true {
            let seen = CSystemShims_load_u32_seqcst(joinSequence)
            if CSystemShims_load_u32_seqcst(unfinished) == 0 { return true }
            try checkBroken()
            if QueueCore.passed(deadline) { return false }
            _ = CSystemShims_futex_wait(joinSequence, seen, QueueCore.sleepSlice(deadline))
        }
    }
}
