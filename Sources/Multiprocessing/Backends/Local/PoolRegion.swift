import CSystemShims

#if canImport(Glibc)
import Glibc
#endif

/// The shared memory of one local pool: a header with the master's doorbell, each worker
/// slot's progress words (`WorkerProgress`), then for each worker slot a task ring
/// (master → worker) and a result ring (worker → master).
///
/// Header: magic @0, slot count @8, ring capacity @16, the pool's pid @24 and its address of
/// this region @32 (`RemoteTransfer`'s probe), doorbell @64, masterSleeping @128, rung @192.
/// Progress words: 64 bytes per slot from `headerSize`, then each slot's `TransferWords`
/// (64 bytes); rings from `ringsOffset`.
struct PoolRegion: @unchecked Sendable {
    static let headerSize = 4096
    static let magic: UInt64 = 0x5357_4D50_504F_4F4C // "SWMPPOOL"
    let base: UnsafeMutableRawPointer
    let slotCount: Int
    let ringCapacity: Int

    static func byteCount(slots: Int, ringCapacity: Int) -> Int {
        ringsOffset(slots: slots) + slots * 2 * Ring.byteCount(capacity: ringCapacity)
    }

    /// Where the rings start: after the header and the progress words, page-aligned.
    static func ringsOffset(slots: Int) -> Int {
        headerSize + (slots * (WorkerProgress.byteCount + TransferWords.byteCount) + 4095) / 4096 * 4096
    }

    /// The words a slot's two sides use for large messages read across processes.
    func transfer(_ slot: Int) -> TransferWords {
        precondition(slot >= 0 && slot < slotCount)
        return TransferWords(
            at: base + PoolRegion.headerSize + slotCount * WorkerProgress.byteCount + slot * TransferWords.byteCount)
    }

    /// The pool's process (the worker's peer, whoever started it: a fork server too).
    var poolPID: pid_t { pid_t(truncatingIfNeeded: (base + 24).load(as: UInt64.self)) }
    /// Where the pool's process maps this region (a worker reads its magic there to probe).
    var poolAddress: UInt64 { (base + 32).load(as: UInt64.self) }

    /// The progress words of a slot's worker.
    func progress(_ slot: Int) -> WorkerProgress {
        precondition(slot >= 0 && slot < slotCount)
        return WorkerProgress(at: base + PoolRegion.headerSize + slot * WorkerProgress.byteCount)
    }

    /// Lays out a fresh region.
    static func format(_ region: SharedRegion, slots: Int, ringCapacity: Int) -> PoolRegion {
        let base = region.base
        base.storeBytes(of: magic, as: UInt64.self)
        (base + 8).storeBytes(of: UInt64(slots), as: UInt64.self)
        (base + 16).storeBytes(of: UInt64(ringCapacity), as: UInt64.self)
        (base + 24).storeBytes(of: UInt64(getpid()), as: UInt64.self)
        (base + 32).storeBytes(of: UInt64(UInt(bitPattern: base)), as: UInt64.self)
        return PoolRegion(base: base, slotCount: slots, ringCapacity: ringCapacity)
    }

    /// Reads the layout of a region made by `format` (in a worker), checking it.
    static func attach(_ region: SharedRegion) throws(SystemError) -> PoolRegion {
        let base = region.base
        guard region.size >= headerSize, base.load(as: UInt64.self) == magic else {
            throw SystemError("attach pool region (bad magic)", errno: EINVAL)
        }
        let slots = Int(truncatingIfNeeded: (base + 8).load(as: UInt64.self))
        let capacity = Int(truncatingIfNeeded: (base + 16).load(as: UInt64.self))
        guard slots > 0, capacity > 0, capacity & (capacity - 1) == 0,
            byteCount(slots: slots, ringCapacity: capacity) <= region.size
        else { throw SystemError("attach pool region (bad layout)", errno: EINVAL) }
        return PoolRegion(base: base, slotCount: slots, ringCapacity: capacity)
    }

    var doorbell: Doorbell {
        Doorbell(
            sequence: (base + 64).assumingMemoryBound(to: UInt32.self),
            sleeping: (base + 128).assumingMemoryBound(to: UInt32.self),
            rung: (base + 192).assumingMemoryBound(to: UInt32.self))
    }

    func taskRing(_ slot: Int) -> Ring {
        precondition(slot >= 0 && slot < slotCount)
        let offset = PoolRegion.ringsOffset(slots: slotCount) + slot * 2 * Ring.byteCount(capacity: ringCapacity)
        return Ring(at: base + offset, capacity: ringCapacity)
    }

    func resultRing(_ slot: Int) -> Ring {
        precondition(slot >= 0 && slot < slotCount)
        let offset = PoolRegion.ringsOffset(slots: slotCount) + (slot * 2 + 1) * Ring.byteCount(capacity: ringCapacity)
        return Ring(at: base + offset, capacity: ringCapacity)
    }
}

/// The master's wake-up word: anyone who gives the master something to do (a worker that
/// wrote a result or freed task space, a thread that submitted work, the reaper that saw a
/// worker die) rings it; the master sleeps on it when nothing can progress.
///
/// One ring per sleep makes the system call: the first ringer raises `rung`, and later rings
/// cost a load and an exchange until a waiter lowers it before it sleeps again. Without it,
/// every message a worker wrote or read while the woken master waited for a CPU made a futex
/// call (three per chunk: about as many calls as chunks on a loaded machine,
/// `Benchmarks/engine-ab.md`, session 11).
struct Doorbell: @unchecked Sendable {
    let sequence: UnsafeMutablePointer<UInt32>
    let sleeping: UnsafeMutablePointer<UInt32>
    /// 1 from a ring that woke the sleepers until one of them sleeps again.
    let rung: UnsafeMutablePointer<UInt32>

    /// Wakes the master if it sleeps and no ring since it went to sleep has woken it yet.
    /// Cheap when it does not sleep.
    ///
    /// Why no wake-up is lost: a waiter lowers `rung` before it reads `sequence`, announces
    /// itself in `sleeping` and looks at `ready()` once more. A ring that finds `rung` raised
    /// either raised after that lowering by a ringer whose increment of `sequence` the
    /// waiter's `futex_wait` sees (it returns at once, or is woken), or before it, and then
    /// what that ringer published came before the waiter's last look, which finds it.
    @inline(__always)
    func ring() {
        if CSystemShims_load_u32_seqcst(sleeping) != 0 && CSystemShims_exchange_u32(rung, 1) == 0 {
            _ = CSystemShims_fetch_add_u32(sequence, 1)
            _ = CSystemShims_futex_wake(sequence, Int32.max)
        }
    }

    /// Wakes the master unconditionally (from another thread of the master process).
    func ringAlways() {
        _ = CSystemShims_fetch_add_u32(sequence, 1)
        _ = CSystemShims_futex_wake(sequence, Int32.max)
    }

    /// Sleeps until rung or `timeoutNanoseconds` passes, unless `ready()` already holds
    /// after announcing the sleep (no lost wake-up). Several threads may sleep here at once
    /// (the pool's thread, and any other waiter): `sleeping` counts them.
    func wait(spinning: Bool, timeoutNanoseconds: Int64, ready: () -> Bool) {
        if spinning && AdaptiveWait.spin(until: ready) { return }
        CSystemShims_store_u32_seqcst(rung, 0)
        let seen = CSystemShims_load_u32_seqcst(sequence)
        _ = CSystemShims_fetch_add_u32(sleeping, 1)
        if !ready() {
            ForkGuard.whileBlocked { _ = CSystemShims_futex_wait(sequence, seen, timeoutNanoseconds) }
        }
        _ = CSystemShims_fetch_add_u32(sleeping, UInt32.max) // − 1
    }
}
