import CSystemShims

#if canImport(Glibc)
import Glibc
#endif

/// A meeting point for a fixed number of parties, in any processes: Python's
/// `multiprocessing.Barrier`.
///
/// Each party calls `wait()`; all are released together once `parties` have arrived, and the
/// barrier is ready for the next round. `wait` returns the party's arrival index
/// (0 ..< parties), different for each, so that one of them can be picked for a job.
///
/// The barrier **breaks** — every waiter and every later `wait` throws `BrokenBarrierError`
/// until `reset()` — when a `wait` times out, on `abort()`, on `reset()` while parties wait,
/// when the action throws, or when a process died in the middle of updating the barrier.
/// A party that dies *waiting* cannot be noticed: give `wait` (or the barrier) a timeout.
///
/// Underneath: a robust mutex guarding a few counters in a shared segment, and a futex on the
/// pass number that waiters sleep on.
public struct Barrier: Codable, Sendable {
    /// The number of parties that must arrive for the barrier to open.
    public let parties: Int
    /// The timeout used by `wait()` when it is given none (nil: for ever).
    public let timeout: Double?
    /// Run by the last party to arrive, before the others are released.
    public let action: (any BarrierAction)?
    /// The shared memory holding the barrier's state; nil for a barrier served by rank 0
    /// under mpirun.
    public let segment: SharedSegment?
    /// Under mpirun: the barrier rank 0 serves to every rank over MPI messages.
    private let served: MPIServedBarrier?
    private let localState: State?
    private var state: State { localState! }

    /// The shared layout: the mutex, then 32-bit words, then the 64-bit broken-pass bitmap.
    private struct State: @unchecked Sendable {
        let mutex: SharedMutex
        /// The pass number, incremented when a pass opens or breaks (the futex word).
        let pass: UnsafeMutablePointer<UInt32>
        /// Parties arrived in the current pass.
        let count: UnsafeMutablePointer<UInt32>
        /// 1 while broken.
        let broken: UnsafeMutablePointer<UInt32>
        /// Parties sleeping on `pass`.
        let sleepers: UnsafeMutablePointer<UInt32>
        /// Bit `pass % 64` is set when that pass ended broken.
        let brokenPasses: UnsafeMutablePointer<UInt64>

        static let wordsOffset = 64
        static let size = 128

        init(_ base: UnsafeMutableRawPointer) {
            precondition(SharedMutex.byteCount <= State.wordsOffset)
            mutex = SharedMutex(at: base)
            let words = (base + State.wordsOffset).assumingMemoryBound(to: UInt32.self)
            pass = words
            count = words + 1
            broken = words + 2
            sleepers = words + 3
            brokenPasses = (base + State.wordsOffset + 16).assumingMemoryBound(to: UInt64.self)
        }
    }

    /// A barrier for `parties` parties (≥ 1).
    ///
    /// - Parameters:
    ///   - parties: how many calls of `wait()` open each pass (at least 1).
    ///   - action: run by the last party to arrive at each pass, before any party leaves.
    ///   - timeout: the default for `wait()`, in seconds; nil waits for ever.
    ///
    /// **Under mpirun** (rank 0 of a job with worker ranks, unless `SWIFTMP_MPI_OBJECTS=local`)
    /// the barrier is served by rank 0 over MPI messages: parties on worker ranks wait in
    /// rank 0, and the action runs on the rank of the last party to arrive.
    public init(parties: Int, action: (any BarrierAction)? = nil, timeout: Double? = nil) throws {
        guard parties >= 1, parties < Int(UInt32.max) else {
            throw SynchronizationError(.invalidArgument, "a Barrier needs at least 1 party, not \(parties)")
        }
        try BarrierActionCoding.check(action, for: "Barrier")
        if MPIObjects.isServing {
            self.init(
                parties: parties, action: action, timeout: timeout,
                served: MPIServedBarrier(parties: parties, hasAction: action != nil))
            return
        }
        let segment = try SharedSegment(size: State.size)
        do {
            _ = try SharedMutex.initialize(at: segment.base)
        } catch {
            throw SynchronizationError(error, "cannot initialise a Barrier")
        }
        self.init(parties: parties, action: action, timeout: timeout, segment: segment)
    }

    private init(parties: Int, action: (any BarrierAction)?, timeout: Double?, segment: SharedSegment) {
        self.parties = parties
        self.action = action
        self.timeout = timeout
        self.segment = segment
        self.localState = State(segment.base)
        served = nil
    }

    private init(parties: Int, action: (any BarrierAction)?, timeout: Double?, served: MPIServedBarrier) {
        self.parties = parties
        self.action = action
        self.timeout = timeout
        segment = nil
        localState = nil
        self.served = served
    }

    private enum CodingKeys: String, CodingKey { case served, segment, parties, timeout, actionType, action }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        // Wire reads keys in the order they were written: the same order as encode(to:).
        let id = try container.decode(UInt64.self, forKey: .served)
        if id != 0 {
            try MPIServedObject.checkDecoding("Barrier")
            let parties = try container.decode(Int.self, forKey: .parties)
            let timeout = try container.decodeIfPresent(Double.self, forKey: .timeout)
            self.init(
                parties: parties, action: try Self.decodeAction(container), timeout: timeout,
                served: MPIServedBarrier(id: id))
            return
        }
        let segment = try container.decode(SharedSegment.self, forKey: .segment)
        let parties = try container.decode(Int.self, forKey: .parties)
        let timeout = try container.decodeIfPresent(Double.self, forKey: .timeout)
        self.init(parties: parties, action: try Self.decodeAction(container), timeout: timeout, segment: segment)
    }

    private static func decodeAction(_ container: KeyedDecodingContainer<CodingKeys>) throws -> (any BarrierAction)? {
        try BarrierActionCoding.decode(from: container, typeKey: .actionType, valueKey: .action)
    }

    private func encodeAction(_ container: inout KeyedEncodingContainer<CodingKeys>) throws {
        try BarrierActionCoding.encode(action, into: &container, typeKey: .actionType, valueKey: .action)
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        if let served {
            try MPIServedObject.checkEncoding("Barrier", id: served.object.id)
            try container.encode(served.object.id, forKey: .served)
            try container.encode(parties, forKey: .parties)
            try container.encodeIfPresent(timeout, forKey: .timeout)
            try encodeAction(&container)
            return
        }
        try container.encode(UInt64(0), forKey: .served)
        try container.encode(segment!, forKey: .segment)
        try container.encode(parties, forKey: .parties)
        try container.encodeIfPresent(timeout, forKey: .timeout)
        try encodeAction(&container)
    }

    // MARK: waiting

    /// Waits until `parties` parties have called `wait`; returns this party's arrival index
    /// (0 for the first, `parties - 1` for the last, who also runs the action).
    ///
    /// - Parameter timeout: the longest wait in seconds; nil uses the barrier's `timeout`.
    ///   Running out of time breaks the barrier for every party.
    /// - Throws: `BrokenBarrierError` if the barrier is or becomes broken.
    public func wait(timeout: Double? = nil) throws -> Int {
        if let served { return try served.wait(timeout: timeout ?? self.timeout, action: action) }
        let deadline = Deadline(seconds: timeout ?? self.timeout)
        try lockState()
        if SharedAtomic.load(state.broken) != 0 {
            unlockState()
            throw BrokenBarrierError("the Barrier is broken: call reset() before using it again")
        }
        let pass = SharedAtomic.load(state.pass)
        let index = Int(SharedAtomic.load(state.count))
        if index + 1 == parties {
            if let action {
                do {
                    try action()
                } catch {
                    breakLocked()
                    unlockState()
                    throw BrokenBarrierError("the Barrier's action threw \(error); the barrier is broken")
                }
            }
            SharedAtomic.store(state.count, 0)
            let bits = CSystemShims_load_u64_seqcst(state.brokenPasses) & ~(UInt64(1) << UInt64(pass % 64))
            CSystemShims_store_u64_seqcst(state.brokenPasses, bits)
            SharedAtomic.store(state.pass, pass &+ 1)
            unlockState()
            if SharedAtomic.load(state.sleepers) > 0 { Futex.wake(state.pass) }
            return index
        }
        SharedAtomic.store(state.count, UInt32(index + 1))
        SharedAtomic.add(state.sleepers, 1)
        unlockState()
        defer { SharedAtomic.subtract(state.sleepers, 1) }
        while SharedAtomic.load(state.pass) == pass {
            if !Futex.wait(state.pass, while: pass, until: deadline) {
                try lockState()
                if SharedAtomic.load(state.pass) == pass { breakLocked() }
                unlockState()
                if passBroke(pass) {
                    throw BrokenBarrierError("Barrier.wait() timed out with \(index + 1) of \(parties) parties arrived; the barrier is broken")
                }
                return index
            }
        }
        if passBroke(pass) {
            throw BrokenBarrierError("the Barrier was broken (abort(), reset(), a timeout or a failing action) while this party waited")
        }
        return index
    }

    /// Breaks the barrier: every waiter, and every `wait` until `reset()`, throws
    /// `BrokenBarrierError`.
    public func abort() throws(SynchronizationError) {
        if let served { return try served.breakOrReset(reset: false) }
        try lockState()
        breakLocked()
        unlockState()
    }

    /// Returns the barrier to its empty state; parties waiting now get `BrokenBarrierError`.
    public func reset() throws(SynchronizationError) {
        if let served { return try served.breakOrReset(reset: true) }
        try lockState()
        if SharedAtomic.load(state.count) > 0 { breakLocked() }
        SharedAtomic.store(state.count, 0)
        SharedAtomic.store(state.broken, 0)
        unlockState()
    }

    /// Whether the barrier is broken.
    public var isBroken: Bool {
        if let served { return served.state.broken }
        return SharedAtomic.load(state.broken) != 0
    }

    /// The number of parties waiting in the current pass: a snapshot. Python's `n_waiting`.
    public var nWaiting: Int {
        if let served { return served.state.waiting }
        return isBroken ? 0 : Int(SharedAtomic.load(state.count))
    }

    // MARK: internals

    /// Locks the state; a process that died holding it leaves it broken (it may have been
    /// half-updated).
    private func lockState() throws(SynchronizationError) {
        let outcome: SharedMutex.Outcome
        do {
            outcome = try state.mutex.lock()
        } catch {
            throw SynchronizationError(error, "cannot lock a Barrier's state")
        }
        if outcome == .acquiredFromDeadOwner { breakLocked() }
    }

    private func unlockState() {
        // Cannot fail: this thread locked it just before.
        try? state.mutex.unlock()
    }

    /// Ends the current pass as broken and wakes its waiters. Called holding the state lock.
    private func breakLocked() {
        let pass = SharedAtomic.load(state.pass)
        let bits = CSystemShims_load_u64_seqcst(state.brokenPasses) | (UInt64(1) << UInt64(pass % 64))
        CSystemShims_store_u64_seqcst(state.brokenPasses, bits)
        SharedAtomic.store(state.broken, 1)
        SharedAtomic.store(state.count, 0)
        SharedAtomic.store(state.pass, pass &+ 1)
        if SharedAtomic.load(state.sleepers) > 0 { Futex.wake(state.pass) }
    }

    private func passBroke(_ pass: UInt32) -> Bool {
        CSystemShims_load_u64_seqcst(state.brokenPasses) & (UInt64(1) << UInt64(pass % 64)) != 0
    }
}
