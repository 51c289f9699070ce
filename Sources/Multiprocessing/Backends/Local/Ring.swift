import CSystemShims
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// A single-producer single-consumer byte ring in memory shared between two processes.
///
/// Positions are 64-bit byte counters that only grow; the capacity is a power of two.
/// Waiting is adaptive: callers spin briefly, then sleep on a futex. A side that writes or
/// reads increments a futex sequence word and wakes the other side only when that side
/// announced it is sleeping (and takes the announcement down: one wake-up per sleep), so the
/// fast path makes no system call.
///
/// Layout (bytes from `header`): head @0, headSequence @8, tail @64, tailSequence @72,
/// consumerSleeping @128, producerSleeping @192, data @256.
struct Ring: @unchecked Sendable {
    static let headerSize = 256
    let header: UnsafeMutableRawPointer
    let data: UnsafeMutableRawPointer
    let capacity: Int
    private let mask: UInt64

    static func byteCount(capacity: Int) -> Int { headerSize + capacity }

    init(at header: UnsafeMutableRawPointer, capacity: Int) {
        precondition(capacity > 0 && capacity & (capacity - 1) == 0, "ring capacity must be a power of two")
        self.header = header
        self.data = header + Ring.headerSize
        self.capacity = capacity
        self.mask = UInt64(capacity - 1)
    }

    private var head: UnsafeMutablePointer<UInt64> { header.assumingMemoryBound(to: UInt64.self) }
    private var headSequence: UnsafeMutablePointer<UInt32> { (header + 8).assumingMemoryBound(to: UInt32.self) }
    private var tail: UnsafeMutablePointer<UInt64> { (header + 64).assumingMemoryBound(to: UInt64.self) }
    private var tailSequence: UnsafeMutablePointer<UInt32> { (header + 72).assumingMemoryBound(to: UInt32.self) }
    private var consumerSleeping: UnsafeMutablePointer<UInt32> { (header + 128).assumingMemoryBound(to: UInt32.self) }
    private var producerSleeping: UnsafeMutablePointer<UInt32> { (header + 192).assumingMemoryBound(to: UInt32.self) }

    /// Empties the ring. Only while neither side uses it (e.g. before a replacement worker starts).
    func reset() {
        CSystemShims_store_u64_seqcst(head, 0)
        CSystemShims_store_u64_seqcst(tail, 0)
        CSystemShims_store_u32_seqcst(consumerSleeping, 0)
        CSystemShims_store_u32_seqcst(producerSleeping, 0)
    }

    // MARK: producer

    /// Bytes that can be written now: exact for the producer; for a thread that only looks
    /// (the pool's thread checking rings before it sleeps, while another thread uses them)
    /// a hint in 0...capacity — its two loads are not one snapshot, so their distance can be
    /// negative or exceed the capacity (converted unchecked, that trapped).
    var freeSpace: Int {
        let h = CSystemShims_load_u64(head)
        return capacity - Ring.clamp(h &- CSystemShims_load_u64_seqcst(tail), capacity)
    }

    /// A distance between two positions loaded one after the other, in 0...capacity.
    @inline(__always)
    static func clamp(_ distance: UInt64, _ capacity: Int) -> Int {
        min(capacity, max(0, Int(Int64(bitPattern: distance))))
    }

    /// Writes as many bytes of `source` as fit, without waiting; returns how many.
    /// `waking: false` leaves a sleeping consumer asleep: the caller calls `wakeConsumer()`
    /// after its last write of a series (a worker rank forwarding a batch of tasks wakes its
    /// worker once, not once per task, which the woken worker would preempt it for).
    @discardableResult
    func write(_ source: UnsafeRawBufferPointer, waking: Bool = true) -> Int {
        let h = CSystemShims_load_u64(head)
        let n = min(capacity - Ring.clamp(h &- CSystemShims_load_u64_seqcst(tail), capacity), source.count)
        if n == 0 { return 0 }
        copy(UnsafeRawBufferPointer(rebasing: source[..<n]), to: h)
        advance(from: h, by: n, waking: waking)
        return n
    }

    /// Copies `source` to `offset` bytes past the write position without making it readable;
    /// the caller measured the room for it. A frame written in parts with `stage` and made
    /// readable with one `publish` is seen whole or not at all (a queue item's header never
    /// shows before its payload).
    func stage(_ source: UnsafeRawBufferPointer, at offset: Int) {
        copy(source, to: CSystemShims_load_u64(head) &+ UInt64(offset))
    }

    /// Makes the next `count` staged bytes readable.
    func publish(_ count: Int, waking: Bool = true) {
        advance(from: CSystemShims_load_u64(head), by: count, waking: waking)
    }

    /// Copies `source` into the ring at `position`, wrapping at its end.
    @inline(__always)
    private func copy(_ source: UnsafeRawBufferPointer, to position: UInt64) {
        if source.isEmpty { return }
        let start = Int(position & mask)
        let first = min(source.count, capacity - start)
        (data + start).copyMemory(from: source.baseAddress!, byteCount: first)
        if first < source.count {
            data.copyMemory(from: source.baseAddress! + first, byteCount: source.count - first)
        }
    }

    /// Moves the write position from `h` on by `n` bytes, which makes them readable.
    @inline(__always)
    private func advance(from h: UInt64, by n: Int, waking: Bool) {
        CSystemShims_store_u64_seqcst(head, h &+ UInt64(n))
        _ = CSystemShims_fetch_add_u32(headSequence, 1)
        if waking { wakeConsumer() }
    }

    /// Wakes the consumer if it sleeps (after writes made with `waking: false`). A consumer
    /// that went to sleep after those writes' sequence increments finds the bytes before it
    /// sleeps; one that slept before them is woken here.
    @inline(__always)
    func wakeConsumer() {
        Ring.wake(headSequence, ifSleeping: consumerSleeping)
    }

    /// Wakes the side sleeping on `sequence` if its flag says it sleeps, and takes the flag
    /// down: until that side runs again and sleeps anew, later writes (or reads) make no
    /// system call. A woken side looks at the ring before it sleeps again, so it finds what
    /// they brought. Without this, every message written while the woken side waited for a
    /// CPU made a futex call of its own (on a loaded machine most of the pool's `futex` calls,
    /// `Benchmarks/engine-ab.md`, session 11).
    @inline(__always)
    static func wake(_ sequence: UnsafeMutablePointer<UInt32>, ifSleeping flag: UnsafeMutablePointer<UInt32>) {
        if CSystemShims_load_u32_seqcst(flag) != 0 && CSystemShims_exchange_u32(flag, 0) != 0 {
            _ = CSystemShims_futex_wake(sequence, Int32.max)
        }
    }

    // MARK: consumer

    /// Bytes that can be read now: exact for the consumer, a hint in 0...capacity for a
    /// thread that only looks (see `freeSpace`).
    var available: Int {
        let h = CSystemShims_load_u64_seqcst(head)
        return Ring.clamp(h &- CSystemShims_load_u64(tail), capacity)
    }

    /// Reads up to `destination.count` bytes without waiting; returns how many. With
    /// `skip`, first drops that many bytes (which the caller knows are there, e.g. a header
    /// it peeked at), in the same update of the tail.
    @discardableResult
    func read(into destination: UnsafeMutableRawBufferPointer, skipping skip: Int = 0) -> Int {
        let t0 = CSystemShims_load_u64(tail)
        let avail = Int(CSystemShims_load_u64_seqcst(head) &- t0) - skip
        let n = min(avail, destination.count)
        if n == 0 && skip == 0 { return 0 }
        let t = t0 &+ UInt64(skip)
        if n > 0 {
            let position = Int(t & mask)
            let first = min(n, capacity - position)
            destination.baseAddress!.copyMemory(from: data + position, byteCount: first)
            if first < n {
                (destination.baseAddress! + first).copyMemory(from: data, byteCount: n - first)
            }
        }
        CSystemShims_store_u64_seqcst(tail, t &+ UInt64(n))
        _ = CSystemShims_fetch_add_u32(tailSequence, 1)
        Ring.wake(tailSequence, ifSleeping: producerSleeping)
        return n
    }

    /// The producer's position (exact for the producer).
    var writePosition: UInt64 { CSystemShims_load_u64(head) }

    /// The consumer's position (exact for the consumer).
    var readPosition: UInt64 { CSystemShims_load_u64(tail) }

    /// For the consumer, after a read that started at `position` (`readPosition` before it):
    /// whether the ring was full from there, so that the producer may be waiting for the space
    /// this read freed. A producer that writes what fits and keeps the rest (the pool's
    /// queued frames) waits for space only after a write that filled the ring, and looks at
    /// the ring once more after it announced that it sleeps: either it saw this read's space
    /// or this load sees its write (both sequentially consistent).
    func wasFull(readingFrom position: UInt64) -> Bool {
        CSystemShims_load_u64_seqcst(head) &- position >= UInt64(capacity)
    }

    /// Copies up to `destination.count` readable bytes without consuming them; returns how many.
    func peek(into destination: UnsafeMutableRawBufferPointer) -> Int {
        let t = CSystemShims_load_u64(tail)
        let n = min(Int(CSystemShims_load_u64_seqcst(head) &- t), destination.count)
        if n == 0 { return 0 }
        let position = Int(t & mask)
        let first = min(n, capacity - position)
        destination.baseAddress!.copyMemory(from: data + position, byteCount: first)
        if first < n {
            (destination.baseAddress! + first).copyMemory(from: data, byteCount: n - first)
        }
        return n
    }

    // MARK: waiting

    /// Waits until at least one byte can be read, or the timeout passes (spurious returns
    /// are possible). The caller re-checks `available`.
    func waitForData(spinning: Bool, timeoutNanoseconds: Int64) {
        Ring.wait(
            sequence: headSequence, sleepingFlag: consumerSleeping, spinning: spinning,
            timeoutNanoseconds: timeoutNanoseconds
        ) { available > 0 }
    }

    /// Waits until at least one byte of space is free, or the timeout passes.
    func waitForSpace(spinning: Bool, timeoutNanoseconds: Int64) {
        Ring.wait(
            sequence: tailSequence, sleepingFlag: producerSleeping, spinning: spinning,
            timeoutNanoseconds: timeoutNanoseconds
        ) { freeSpace > 0 }
    }

    /// Waits until at least `count` bytes can be read, or the timeout passes (spurious
    /// returns are possible).
    func waitForData(atLeast count: Int, spinning: Bool, timeoutNanoseconds: Int64) {
        Ring.wait(
            sequence: headSequence, sleepingFlag: consumerSleeping, spinning: spinning,
            timeoutNanoseconds: timeoutNanoseconds
        ) { available >= count }
    }

    /// Waits until at least `count` bytes of space are free, or the timeout passes.
    func waitForSpace(atLeast count: Int, spinning: Bool, timeoutNanoseconds: Int64) {
        Ring.wait(
            sequence: tailSequence, sleepingFlag: producerSleeping, spinning: spinning,
            timeoutNanoseconds: timeoutNanoseconds
        ) { freeSpace >= count }
    }

    static func wait(
        sequence: UnsafeMutablePointer<UInt32>, sleepingFlag: UnsafeMutablePointer<UInt32>,
        spinning: Bool, timeoutNanoseconds: Int64, ready: () -> Bool
    ) {
        if spinning && AdaptiveWait.spin(until: ready) { return }
        let seen = CSystemShims_load_u32_seqcst(sequence)
        CSystemShims_store_u32_seqcst(sleepingFlag, 1)
        if !ready() {
            _ = CSystemShims_futex_wait(sequence, seen, timeoutNanoseconds)
        }
        CSystemShims_store_u32_seqcst(sleepingFlag, 0)
    }
}

/// How long a waiter spins before it sleeps on a futex. A spinning round trip costs 1–5 µs
/// here, a futex wake-up 20–130 µs. The budget never drops below ~2 000 pauses (tens of µs):
/// measured, a budget that halved after failed spins collapsed during long tasks and then
/// made every back-to-back round trip sleep (70 µs instead of 10 µs). It grows when spins
/// succeed late. No `sched_yield` phase: with other runnable processes it hands the CPU away
/// for whole time slices (measured: hot round trips of 240 µs).
enum AdaptiveWait {
    static let minimumSpins = 2_000
    static let maximumSpins = 8_000
    private static let budget = Atomic<Int>(2_000)

    /// Spins (with `pause`) until `ready()` or the budget runs out; returns whether ready.
    @inline(__always)
    static func spin(until ready: () -> Bool) -> Bool {
        let limit = budget.load(ordering: .relaxed)
        var spins = 0
        while spins < limit {
            if ready() {
                if spins > limit / 4 { budget.store(min(maximumSpins, limit + limit / 4 + 16), ordering: .relaxed) }
                return true
            }
            CSystemShims_cpu_relax()
            spins += 1
        }
        budget.store(max(minimumSpins, limit / 2), ordering: .relaxed)
        return false
    }
}
