import CSystemShims
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// The shared-memory machinery behind `Queue`, `SimpleQueue` and `JoinableQueue`.
///
/// A `SharedSegment` holds a header and one byte ring (`Ring`, single producer, single
/// consumer). Many producers and consumers take turns: a producer holds the *producer*
/// mutex while it writes one whole item, a consumer holds the *consumer* mutex while it
/// reads one — so the ring always sees one writer and one reader. Both mutexes are robust:
/// a process that dies holding one is noticed by the next locker, and if it died in the
/// middle of an item (a flag says so) the queue is marked broken — every later call throws
/// `QueueError(.broken)` instead of hanging. A consumer waiting for the rest of an item
/// probes the producer mutex every 100 ms to notice a producer that died mid-item (and a
/// producer waiting for room the consumer's).
///
/// **Chunks, and time-outs in the middle of an item.** An item is written as chunks, each an
/// 8-byte header (its byte count; flag `more`: the item goes on in the next chunk; flag
/// `abort`: the item begun is abandoned) and its bytes. A producer writes a chunk only when
/// all of it fits, so it never waits inside one, and a consumer takes a chunk only when all
/// of it is there, so it never waits inside one either. An item that fits in the ring is
/// one chunk, written once there is room for all of it (a put that times out before has
/// written nothing). A bigger item streams as several chunks (the first starts with the
/// item's total length); every chunk but the last leaves 8 bytes free, so that:
/// - a `put` that times out in the middle of an item (past its deadline, the consumers did
///   not move for a second: `WaitLimit`) throws `Full`: the item is not in the queue. If no consumer read any of its chunks and none is reading, it takes them back
///   out of the ring (`takeBack`: the queue is as before the put, as Python's after `Full`);
///   otherwise it writes an `abort` chunk (it always fits) and consumers drop its chunks;
/// - a `get` with a timeout collects a multi-chunk item in this process's memory before it
///   decodes it. Once the item has begun (its first chunk's header is there), its waits go on
///   past the deadline while the producer moves (`WaitLimit`); if the producer stalls a
///   second past it, the get throws `Empty` and this process keeps what it read: the item is
///   *held* by this process (its pid in the header), and the next `get` in this process (any
///   thread, any handle of the queue) goes on with it, so no item is ever torn. Meanwhile
///   `get`s in other processes wait (within their own time-outs) for it to be finished; if
///   the holding process exits first, the next of them marks the rest of the item
///   `orphaned` and skips it (`skipOrphanedItem`): that one item is lost, not the queue. A
///   `get` without a timeout streams a big item straight into the value it builds.
///
/// Counters: `reserved` (items put and not yet got: `count`, and the `maxSize` bound),
/// `unfinished` (items put and not yet `taskDone`), each with a futex word for waiters.
///
/// Header (bytes): magic @0, ring capacity @8, maxSize @16, broken @24, producer mutex @64,
/// producerWriting @112, unfinished @116, consumer mutex @128, consumerReading @176,
/// reserved @192, notFullSequence @196, notFullSleepers @200, joinSequence @208,
/// holder (pid holding a partly read item) @212, holderSequence @216, orphaned @220, ring @256.
/// (What only producers write shares the producer mutex's cache line, what only consumers
/// write the consumer mutex's, so that a put and a get touch as few shared lines as they can.)
final class QueueCore: @unchecked Sendable {
    static let magic: UInt64 = 0x5357_4D50_5155_4557 // "SWMPQUEW" (layout 3: chunks)
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
    /// Where `readPayload` reads the item being got from (consumer mutex held).
    private enum Source {
        /// One chunk, all of it in the ring.
        case chunk
        /// Chunks streaming through the ring (`chunkLeft` bytes left in the current one).
        case stream
        /// A multi-chunk item collected in `held` (`heldOffset` bytes read).
        case collected
    }
    private var source = Source.chunk
    private var chunkLeft = 0
    private var heldOffset = 0
    /// The multi-chunk item being collected (consumer mutex held), also between `get`s when
    /// one timed out (then registered in `PartialItems` for this process).
    private var held: PartialItem?
    /// The item being streamed: its time limit, its length, and a copy of the payload bytes
    /// read by earlier `readPayload` calls whose destination may be gone (all but the one
    /// that ends the item: in practice a few bytes), to make the held part on a time-out.
    private var streamLimit = WaitLimit(nil)
    private var streamTotal = 0
    private var streamRead: [UInt8] = []

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
    private var holder: UnsafeMutablePointer<UInt32> { word(212) }
    private var holderSequence: UnsafeMutablePointer<UInt32> { word(216) }
    /// 1 while the ring's next chunks are the rest of an item whose holder exited: the next
    /// `get` skips them (`skipOrphanedItem`).
    private var orphaned: UnsafeMutablePointer<UInt32> { word(220) }

    /// Chunk header flags (the low bits hold the chunk's byte count).
    static let moreFlag: UInt64 = 1 << 63
    static let abortFlag: UInt64 = 1 << 62
    static let countMask: UInt64 = (1 << 48) - 1

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
            CSystemShims_load_u64_seqcst(base.assumingMemoryBound(to: UInt64.self)) == QueueCore.magic
        else {
            throw QueueError(.invalidArgument, "the shared memory received is not a queue")
        }
        let capacity = Int(truncatingIfNeeded: (base + 8).load(as: UInt64.self))
        guard capacity >= 64, capacity & (capacity - 1) == 0,
            QueueCore.ringOffset + Ring.byteCount(capacity: capacity) <= segment.size
        else {
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
    /// Whether this process closed its handle (`close()`).
    var isClosed: Bool { isClosedHere.load(ordering: .relaxed) }

    var count: Int { Int(CSystemShims_load_u32_seqcst(reserved)) }
    /// No byte of an item to get: nothing in the ring, or nothing put that was not got
    /// (what is there is the start of an item whose put timed out, which the next `get`
    /// drops: a put that threw `Full` put nothing, as in Python).
    var isEmpty: Bool { ring.available == 0 || count == 0 }
    var isFull: Bool { maxSize > 0 && count >= maxSize }
    var isBroken: Bool { CSystemShims_load_u32_seqcst(broken) != 0 }

    private func checkUsable() throws(QueueError) {
        if isClosedHere.load(ordering: .relaxed) { throw QueueError.closedHere }
        try checkBroken()
    }

    private func checkBroken() throws(QueueError) {
        if isBroken {
            throw QueueError(
                .broken,
                """
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
        _ = CSystemShims_fetch_add_u32(holderSequence, 1)
        _ = CSystemShims_futex_wake(holderSequence, Int32.max)
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

    /// How long a call in the middle of an item goes on past its deadline while the other
    /// side does not move (see `WaitLimit`).
    static let stallNanoseconds: UInt64 = 1_000_000_000

    /// How long one wait of a `put` or `get` may last. Before an item begins, the call's
    /// deadline. Once it has begun (a `get` saw its first chunk's header, a `put` wrote its
    /// first chunk), past the deadline too, for as long as the other side moves (the ring
    /// position it advances changes) — as Python's `get`, which once a message has begun
    /// reads it whole: a `get(timeout:)` or `getNowait()` never stops in the middle of an
    /// item that is arriving, and a `put` with a time limit never abandons one a consumer is
    /// taking. It gives up only after `stallNanoseconds` with no move past the deadline (a
    /// peer stopped or stalled in the middle of an item).
    struct WaitLimit {
        let deadline: UInt64?
        private(set) var midItem = false
        private var seen: UInt64 = 0
        private var movedAt: UInt64 = 0

        init(_ deadline: UInt64?) {
            self.deadline = deadline
        }

        /// From now on the item has begun. (Only a flag: the clock is read only by a call
        /// that has to wait, not on every `get`'s path.)
        mutating func beginItem() {
            midItem = true
        }

        /// Whether the wait must give up, the other side being at `position`. In the middle
        /// of an item, the first check and every move of `position` restart the stall count.
        mutating func passed(peerAt position: UInt64) -> Bool {
            guard let deadline else { return false }
            let now = monotonicNanoseconds()
            if midItem && (movedAt == 0 || position != seen) {
                seen = position
                movedAt = now
            }
            guard now >= deadline else { return false }
            return !midItem || now &- movedAt >= QueueCore.stallNanoseconds
        }

        /// How long the next sleep may be (the ring's futex wakes it when the peer moves).
        var sleepSlice: Int64 {
            guard let deadline else { return QueueCore.probeInterval }
            let now = monotonicNanoseconds()
            if deadline > now { return min(Int64(deadline - now), QueueCore.probeInterval) }
            guard midItem else { return 0 }
            let idle = now &- movedAt
            return idle >= QueueCore.stallNanoseconds ? 0 : min(Int64(QueueCore.stallNanoseconds - idle), QueueCore.probeInterval)
        }
    }

    // MARK: putting

    /// Puts one frame (header included). Throws `Full` if no room came before `deadline`.
    func put(frame: UnsafeRawBufferPointer, deadline: UInt64?) throws {
        try put(prefix: frame, body: UnsafeRawBufferPointer(start: nil, count: 0), deadline: deadline)
    }

    /// Puts one frame made of `prefix` (which holds the 8-byte header) followed by `body`, so
    /// that a big payload is copied straight from the caller's memory into the ring. Throws
    /// `Full` if no room came before `deadline`, also in the middle of a big item (which is
    /// then abandoned: see the type's comment).
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
        let headerSize = Frame.headerSize
        let payload = Gathered(first: UnsafeRawBufferPointer(rebasing: prefix[headerSize...]), second: body)
        var limit = WaitLimit(deadline)
        if headerSize + payload.count <= ring.capacity {
            // One chunk: start only when all of it fits (a put that times out leaves nothing).
            try waitForSpace(headerSize + payload.count, &limit)
            _ = CSystemShims_fetch_add_u32(unfinished, 1)
            CSystemShims_store_u32_seqcst(producerWriting, 1)
            // Made readable at once, so what looks ready can be got whole without waiting.
            var staged = 0
            func stage(_ part: UnsafeRawBufferPointer) {
                ring.stage(part, at: staged)
                staged += part.count
            }
            if UInt64(littleEndian: prefix.loadUnaligned(as: UInt64.self)) == UInt64(payload.count) {
                stage(prefix) // its header is the chunk's: one copy for header and prefix
                stage(body)
            } else {
                var header = UInt64(payload.count).littleEndian
                withUnsafeBytes(of: &header) { stage($0) }
                payload.forEach(from: 0, count: payload.count) { stage($0) }
            }
            ring.publish(staged)
            CSystemShims_store_u32_seqcst(producerWriting, 0)
            placed = true
            return
        }
        // Several chunks; each one but the last leaves room for an abort chunk.
        var sent = 0
        let start = ring.writePosition
        while sent < payload.count {
            let left = payload.count - sent
            let overhead = headerSize + (sent == 0 ? 8 : 0)
            let wanted = max(overhead + headerSize + 1, min(ring.capacity / 4, overhead + left))
            do {
                try waitForSpace(wanted, &limit)
            } catch {
                if sent > 0 {
                    if !takeBack(writtenFrom: start) {
                        var abort = QueueCore.abortFlag.littleEndian
                        withUnsafeBytes(of: &abort) { writeWhole($0) }
                    }
                    CSystemShims_store_u32_seqcst(producerWriting, 0)
                }
                throw error
            }
            let free = ring.freeSpace
            let last = free - overhead >= left
            let n = last ? left : min(left, free - overhead - headerSize)
            if last { _ = CSystemShims_fetch_add_u32(unfinished, 1) }
            if sent == 0 { CSystemShims_store_u32_seqcst(producerWriting, 1) }
            var header = (UInt64(n + overhead - headerSize) | (last ? 0 : QueueCore.moreFlag)).littleEndian
            withUnsafeBytes(of: &header) { writeWhole($0) }
            if sent == 0 {
                var total = UInt64(payload.count).littleEndian
                withUnsafeBytes(of: &total) { writeWhole($0) }
            }
            payload.forEach(from: sent, count: n) { writeWhole($0) }
            sent += n
            limit.beginItem()
        }
        CSystemShims_store_u32_seqcst(producerWriting, 0)
        placed = true
    }

    /// A put that timed out in the middle of its item takes the chunks it wrote back out of
    /// the ring when no consumer read any of them and none is reading (the consumer mutex
    /// free, no partly read item held): the queue is then as if the put never began — its
    /// chunks take no room that only a consumer could free, and `isEmpty` and `wait(on:)`
    /// see nothing. Otherwise (false) an abort chunk tells the consumers to drop them.
    /// Producer mutex held.
    private func takeBack(writtenFrom start: UInt64) -> Bool {
        guard ring.readPosition == start, let locked = try? consumerMutex.lock(timeout: 0), locked != .timedOut else {
            return false
        }
        defer { try? consumerMutex.unlock() }
        if locked == .acquiredFromDeadOwner {
            // As a consumer that finds it so (`lockConsumer`).
            if CSystemShims_load_u32_seqcst(consumerReading) != 0 { markBroken() }
            return false
        }
        guard ring.readPosition == start, CSystemShims_load_u32_seqcst(holder) == 0 else { return false }
        ring.read(into: UnsafeMutableRawBufferPointer(start: nil, count: 0), skipping: Int(ring.writePosition &- start))
        return true
    }

    /// Writes `part`, for which there is room (producer mutex held).
    private func writeWhole(_ part: UnsafeRawBufferPointer) {
        if part.count == 0 { return }
        let n = ring.write(part)
        precondition(n == part.count, "a queue chunk did not fit in the room measured for it")
    }

    /// Waits until `count` bytes are free in the ring; throws `Full` when `limit` passes
    /// first (producer mutex held).
    private func waitForSpace(_ count: Int, _ limit: inout WaitLimit) throws {
        var spinning = true
        while ring.freeSpace < count {
            if limit.passed(peerAt: ring.readPosition) { throw Full() }
            ring.waitForSpace(atLeast: count, spinning: spinning, timeoutNanoseconds: limit.sleepSlice)
            spinning = false
            try checkBroken()
            if ring.freeSpace < count { try probe(consumerMutex, flag: consumerReading) }
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
            return // held: its owner lives (a dead owner's robust mutex is not "busy")
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

    /// The item begun was abandoned by its producer (an abort chunk): start over.
    private struct Abandoned: Error {}
    /// The deadline passed between two chunks of a streamed item (`held` has what was read).
    private struct TimedOutMidItem: Error {}

    /// Gets one item: `receive` is called with the payload's length, under the consumer
    /// mutex, and reads the payload with `readPayload(into:)` (straight from the ring when it
    /// can, no intermediate copy). Whatever it leaves unread is skipped, so an item that
    /// cannot be decoded is still consumed whole. Throws `Empty` if none came before
    /// `deadline` — also in the middle of a big item, which this process then holds (see
    /// the type's comment).
    func get<T>(deadline: UInt64?, receive: (_ length: Int) throws -> T) throws -> T {
        try checkUsable()
        let holding = try lockConsumer(deadline)
        defer { try? consumerMutex.unlock() }
        try checkBroken()
        held = holding ? PartialItems.take(segment.id) : nil
        source = .chunk
        var limit = WaitLimit(deadline)
        if CSystemShims_load_u32_seqcst(orphaned) != 0 {
            guard try skipOrphanedItem(&limit) else { throw Empty() }
            limit = WaitLimit(deadline) // the next item has not begun
        }
        while true {
            if held != nil { limit.beginItem() }
            guard try waitForData(Frame.headerSize, &limit) else { throw timedOut() }
            // An item has begun arriving: it is read whole while its producer writes it.
            limit.beginItem()
            var header: UInt64 = 0
            withUnsafeMutableBytes(of: &header) { _ = ring.peek(into: $0) }
            header = UInt64(littleEndian: header)
            if header & QueueCore.abortFlag != 0 {
                _ = ring.read(into: UnsafeMutableRawBufferPointer(start: nil, count: 0), skipping: Frame.headerSize)
                dropHeld()
                limit = WaitLimit(deadline) // the next item has not begun
                continue
            }
            let count = Int(header & QueueCore.countMask)
            let more = header & QueueCore.moreFlag != 0
            guard count <= ring.capacity - Frame.headerSize, !more || count >= (held == nil ? 9 : 1) else {
                throw corrupt("a chunk of \(count) bytes")
            }
            if held == nil && !more {
                // A whole item in one chunk: read it once all of it is there.
                guard try waitForData(Frame.headerSize + count, &limit) else { throw timedOut() }
                return try deliver(length: count, from: .chunk, receive)
            }
            if held == nil {
                // Stream the item straight into the receiver, a whole chunk at a time. If the
                // deadline passes between chunks, what was read becomes the held part.
                guard try waitForData(Frame.headerSize + count, &limit) else { throw timedOut() }
                CSystemShims_store_u32_seqcst(consumerReading, 1)
                var total: UInt64 = 0
                withUnsafeMutableBytes(of: &total) { _ = ring.read(into: $0, skipping: Frame.headerSize) }
                total = UInt64(littleEndian: total)
                guard total <= Frame.maximumPayload, total > UInt64(count - 8) else { throw corrupt("an item of \(total) bytes") }
                chunkLeft = count - 8
                streamLimit = limit
                streamTotal = Int(total)
                streamRead.removeAll(keepingCapacity: true)
                do {
                    return try deliver(length: Int(total), from: .stream, receive)
                } catch is Abandoned {
                    _ = ring.read(into: UnsafeMutableRawBufferPointer(start: nil, count: 0), skipping: Frame.headerSize)
                    CSystemShims_store_u32_seqcst(consumerReading, 0)
                    limit = WaitLimit(deadline) // the next item has not begun
                    continue
                } catch is TimedOutMidItem {
                    throw timedOut()
                }
            }
            // Collect the chunk in this process's memory.
            guard try waitForData(Frame.headerSize + count, &limit) else { throw timedOut() }
            CSystemShims_store_u32_seqcst(consumerReading, 1)
            var skip = Frame.headerSize
            if held == nil {
                var total: UInt64 = 0
                withUnsafeMutableBytes(of: &total) { _ = ring.read(into: $0, skipping: skip) }
                total = UInt64(littleEndian: total)
                guard total <= Frame.maximumPayload, total > UInt64(count - 8) else { throw corrupt("an item of \(total) bytes") }
                held = PartialItem(total: Int(total))
                skip = 0
            }
            let item = held!
            let data = count - (skip == 0 ? 8 : 0)
            guard item.count + data <= item.total, more || item.count + data == item.total else {
                throw corrupt("chunks that do not make their item's \(item.total) bytes")
            }
            _ = ring.read(into: UnsafeMutableRawBufferPointer(rebasing: item.bytes[item.count..<(item.count + data)]), skipping: skip)
            item.count += data
            if !more {
                heldOffset = 0
                return try deliver(length: item.total, from: .collected, receive)
            }
        }
    }

    /// Skips the rest of an item whose holder exited (`orphaned`): its chunks up to its last
    /// (the item leaves the count and is done for `JoinableQueue.join`: nobody will get it),
    /// or to its producer's abort. False when `limit` passes first: the next `get` goes on.
    /// Consumer mutex held.
    private func skipOrphanedItem(_ limit: inout WaitLimit) throws -> Bool {
        limit.beginItem()
        // Dying while it skips leaves the ring where nobody knows: as in any item, the next
        // locker then marks the queue broken (`lockConsumer`).
        CSystemShims_store_u32_seqcst(consumerReading, 1)
        defer { CSystemShims_store_u32_seqcst(consumerReading, 0) }
        while true {
            guard try waitForData(Frame.headerSize, &limit) else { return false }
            var header: UInt64 = 0
            withUnsafeMutableBytes(of: &header) { _ = ring.peek(into: $0) }
            header = UInt64(littleEndian: header)
            let count = header & QueueCore.abortFlag != 0 ? 0 : Int(header & QueueCore.countMask)
            guard count <= ring.capacity - Frame.headerSize else { throw corrupt("a chunk of \(count) bytes") }
            guard try waitForData(Frame.headerSize + count, &limit) else { return false }
            _ = ring.read(into: UnsafeMutableRawBufferPointer(start: nil, count: 0), skipping: Frame.headerSize + count)
            if header & QueueCore.abortFlag != 0 { break }
            if header & QueueCore.moreFlag == 0 {
                release()
                try? taskDone()
                break
            }
        }
        CSystemShims_store_u32_seqcst(orphaned, 0)
        return true
    }

    /// Runs `receive` on the item now at hand, consumes the rest of it, and counts it got.
    private func deliver<T>(length: Int, from source: Source, _ receive: (_ length: Int) throws -> T) throws -> T {
        CSystemShims_store_u32_seqcst(consumerReading, 1)
        self.source = source
        skipPending = source == .chunk ? Frame.headerSize : 0
        payloadLeft = length
        let value: T
        do {
            value = try receive(length)
        } catch let error as Abandoned {
            throw error
        } catch let error as TimedOutMidItem {
            throw error
        } catch {
            if isBroken { throw error }
            try skipRestOfItem()
            finishItem()
            throw error
        }
        try skipRestOfItem()
        finishItem()
        return value
    }

    /// The item was got whole: no longer held, no longer counted.
    private func finishItem() {
        dropHeld()
        CSystemShims_store_u32_seqcst(consumerReading, 0)
        release()
    }

    /// Forgets the item collected so far (got, or abandoned by its producer).
    private func dropHeld() {
        guard held != nil else { return }
        held = nil
        if CSystemShims_load_u32_seqcst(holder) != 0 {
            CSystemShims_store_u32_seqcst(holder, 0)
            _ = CSystemShims_fetch_add_u32(holderSequence, 1)
            _ = CSystemShims_futex_wake(holderSequence, Int32.max)
        }
        CSystemShims_store_u32_seqcst(consumerReading, 0)
    }

    /// `Empty`, after keeping a partly collected item for this process's next `get`.
    private func timedOut() -> Empty {
        if let held {
            self.held = nil
            PartialItems.keep(held, for: segment.id)
            CSystemShims_store_u32_seqcst(holder, UInt32(bitPattern: getpid()))
            CSystemShims_store_u32_seqcst(consumerReading, 0)
        }
        return Empty()
    }

    private func corrupt(_ what: String) -> QueueError {
        markBroken()
        return QueueError(.broken, "the queue's stream is corrupt (\(what)); create a new queue")
    }

    /// Takes the consumer mutex, then waits (releasing it) while another live process holds
    /// a partly read item. Returns whether this process holds one. Throws `Empty` when
    /// `deadline` passes first.
    private func lockConsumer(_ deadline: UInt64?) throws -> Bool {
        while true {
            switch try consumerMutex.lock(timeout: QueueCore.remaining(deadline)) {
            case .timedOut: throw Empty()
            case .acquiredFromDeadOwner:
                if CSystemShims_load_u32_seqcst(consumerReading) != 0 { markBroken() }
            case .acquired: break
            }
            let owner = CSystemShims_load_u32_seqcst(holder)
            if owner == 0 { return false }
            let seen = CSystemShims_load_u32_seqcst(holderSequence)
            if CSystemShims_load_u32_seqcst(holder) == 0 { return false }
            if pid_t(bitPattern: owner) == getpid() {
                if PartialItems.has(segment.id) { return true }
                markBroken() // held here, but the memory of it is gone: cannot happen
                return false
            }
            if kill(pid_t(bitPattern: owner), 0) != 0 && errno == ESRCH {
                // It exited holding part of an item (its `get` timed out with the item's
                // producer stalled, and it never asked again): that item is lost, not the
                // queue. The rest of it is skipped (until session 22 the queue was broken).
                CSystemShims_store_u32_seqcst(orphaned, 1)
                CSystemShims_store_u32_seqcst(holder, 0)
                _ = CSystemShims_fetch_add_u32(holderSequence, 1)
                _ = CSystemShims_futex_wake(holderSequence, Int32.max)
                return false
            }
            try? consumerMutex.unlock()
            if QueueCore.passed(deadline) { throw Empty() }
            _ = CSystemShims_futex_wait(holderSequence, seen, QueueCore.sleepSlice(deadline))
            try checkBroken()
        }
    }

    /// Waits until `count` bytes are readable; false when `limit` passes first (consumer
    /// mutex held). In the middle of an item (part of a chunk there, or chunks collected),
    /// probes for a producer that died writing it.
    private func waitForData(_ count: Int, _ limit: inout WaitLimit) throws -> Bool {
        var spinning = true
        while ring.available < count {
            if limit.passed(peerAt: ring.writePosition) { return false }
            ring.waitForData(atLeast: count, spinning: spinning, timeoutNanoseconds: limit.sleepSlice)
            spinning = false
            try checkBroken()
            if ring.available < count && (ring.available > 0 || held != nil || source == .stream || limit.midItem) {
                try probe(producerMutex, flag: producerWriting)
            }
        }
        return true
    }

    /// Reads exactly `destination.count` more bytes of the item being got (inside `receive`).
    func readPayload(into destination: UnsafeMutableRawBufferPointer) throws {
        precondition(destination.count <= payloadLeft, "read past the end of a queue item")
        switch source {
        case .collected:
            let item = held!
            if destination.count > 0 {
                destination.baseAddress!.copyMemory(from: item.bytes.baseAddress! + heldOffset, byteCount: destination.count)
            }
            heldOffset += destination.count
        case .chunk:
            try readFromRing(into: destination)
        case .stream:
            var done = 0
            while done < destination.count {
                if chunkLeft == 0 {
                    // The next chunk of this item (or the abort of it), once all of it is there.
                    guard try waitForData(Frame.headerSize, &streamLimit) else {
                        throw holdStreamed(UnsafeRawBufferPointer(rebasing: destination[0..<done]))
                    }
                    var header: UInt64 = 0
                    withUnsafeMutableBytes(of: &header) { _ = ring.peek(into: $0) }
                    header = UInt64(littleEndian: header)
                    if header & QueueCore.abortFlag != 0 { throw Abandoned() }
                    let count = Int(header & QueueCore.countMask)
                    guard count > 0, count <= ring.capacity - Frame.headerSize else { throw corrupt("a chunk of \(count) bytes") }
                    guard try waitForData(Frame.headerSize + count, &streamLimit) else {
                        throw holdStreamed(UnsafeRawBufferPointer(rebasing: destination[0..<done]))
                    }
                    chunkLeft = count
                    skipPending = Frame.headerSize
                }
                let n = min(chunkLeft, destination.count - done)
                try readFromRing(into: UnsafeMutableRawBufferPointer(rebasing: destination[done..<(done + n)]))
                chunkLeft -= n
                done += n
            }
            if payloadLeft > destination.count {
                // Not the item's last read: keep a copy in case a later chunk is late.
                streamRead.append(contentsOf: UnsafeRawBufferPointer(destination))
            }
        }
        payloadLeft -= destination.count
    }

    /// The deadline passed between chunks of a streamed item: what was read (the earlier
    /// reads' copy, then `current`) becomes the part this process holds.
    private func holdStreamed(_ current: UnsafeRawBufferPointer) -> TimedOutMidItem {
        let item = PartialItem(total: streamTotal)
        if !streamRead.isEmpty {
            streamRead.withUnsafeBytes { item.bytes.baseAddress!.copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
        }
        if current.count > 0 {
            (item.bytes.baseAddress! + streamRead.count).copyMemory(from: current.baseAddress!, byteCount: current.count)
        }
        item.count = streamRead.count + current.count
        held = item
        return TimedOutMidItem()
    }

    /// Reads `destination.count` bytes of the current chunk from the ring (after skipping
    /// `skipPending` header bytes), waiting for them if the producer is still writing them.
    private func readFromRing(into destination: UnsafeMutableRawBufferPointer) throws {
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

/// A payload in two parts (a prefix and a body), seen as one run of bytes.
private struct Gathered {
    let first: UnsafeRawBufferPointer
    let second: UnsafeRawBufferPointer
    var count: Int { first.count + second.count }

    /// Calls `body` with the pieces of bytes `offset..<offset + count`.
    func forEach(from offset: Int, count: Int, _ body: (UnsafeRawBufferPointer) -> Void) {
        var offset = offset
        var left = count
        if offset < first.count && left > 0 {
            let n = min(left, first.count - offset)
            body(UnsafeRawBufferPointer(rebasing: first[offset..<(offset + n)]))
            offset += n
            left -= n
        }
        if left > 0 {
            let start = offset - first.count
            body(UnsafeRawBufferPointer(rebasing: second[start..<(start + left)]))
        }
    }
}

/// A multi-chunk item being collected by a `get` with a timeout.
final class PartialItem: @unchecked Sendable {
    let total: Int
    let bytes: UnsafeMutableRawBufferPointer
    var count = 0
    init(total: Int) {
        self.total = total
        bytes = .allocate(byteCount: max(total, 1), alignment: 16)
    }
    deinit { bytes.deallocate() }
}

/// The items this process holds part of (a `get` timed out in their middle), by queue: the
/// next `get` on that queue in this process goes on with it. Entries inherited by a forked
/// child are not the child's (the queue's header names the holding pid).
enum PartialItems {
    private static let lock = ConditionLock()
    nonisolated(unsafe) private static var items: [SegmentID: (pid: pid_t, item: PartialItem)] = [:]

    static func keep(_ item: PartialItem, for queue: SegmentID) {
        lock.withLock { items[queue] = (getpid(), item) }
    }

    static func has(_ queue: SegmentID) -> Bool {
        lock.withLock { items[queue]?.pid == getpid() }
    }

    static func take(_ queue: SegmentID) -> PartialItem? {
        lock.withLock {
            guard let entry = items.removeValue(forKey: queue), entry.pid == getpid() else { return nil }
            return entry.item
        }
    }
}
