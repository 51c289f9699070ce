import Wire
#if canImport(Glibc)
import Glibc
#endif

/// Rank 0's served objects (queues, locks, events…) and the worker requests parked on them
/// (ARCHITECTURE.md §8). Rank 0's threads operate on the objects directly (waiting on a condition
/// variable); worker ranks' requests arrive through `handle(_:from:)` on the live MPI pool's
/// engine thread, which then sends what `takeReplies()` returns. A change made by rank 0
/// that answers a parked request calls the waker the engine registered, so the answer leaves
/// at once. Objects live until the program ends (they are small; ids are never reused).
///
/// This file holds the machinery (ids, requests, parking, replies); each kind of object has
/// its state and operations in its own file (`MPIObjectRegistry+Queues.swift`, `+Pipes`,
/// `+Locks` (locks and semaphores), `+Conditions`, `+Events` (events and barriers),
/// `+Values` (values and arrays), `+Managers` (a `Manager`'s dicts, lists, namespaces)). Every stored property is
/// guarded by `lock`.
final class MPIObjectRegistry: @unchecked Sendable {
    static let shared = MPIObjectRegistry()

    typealias Op = MPIObjectProtocol.Op
    typealias Status = MPIObjectProtocol.Status

    /// A worker request that waits in rank 0 until it can be answered or its deadline passes.
    struct Parked {
        let rank: Int
        /// For `barrierWait`: the arrival index.
        var index = 0
        let op: Op
        let id: UInt64
        let deadline: UInt64?
        let payload: [UInt8]
        /// For `eventWait`: the event's generation when the request arrived; for `barrierWait`
        /// the pass; for `conditionWait` the waiter's token.
        let generation: UInt64
    }

    let lock = ConditionLock()
    // Under `lock`.
    private var nextID: UInt64 = 1
    var queues: [UInt64: QueueState] = [:]
    var locks: [UInt64: Owner?] = [:]
    /// For an `RLock`: how many times its owner holds it.
    var depths: [UInt64: Int] = [:]
    var events: [UInt64: EventState] = [:]
    var values: [UInt64: [UInt8]] = [:]
    var barriers: [UInt64: BarrierState] = [:]
    var semaphores: [UInt64: SemaphoreState] = [:]
    var pipes: [UInt64: PipeState] = [:]
    var conditions: [UInt64: ConditionState] = [:]
    /// Handles of pipe ends in transit (encoded, not yet decoded), by token.
    var pipeTokens: [UInt64: (pipe: UInt64, end: Int)] = [:]
    /// `Manager`s rank 0 serves in process, and the ids of those shut down.
    var managers: [UInt64: ManagerStore] = [:]
    var closedManagers: Set<UInt64> = []
    var parked: [Parked] = []
    var replies: [(rank: Int, bytes: [UInt8])] = []
    private var waker: (@Sendable () -> Void)?

    /// Under `lock`: a new object id.
    func newID() -> UInt64 {
        defer { nextID += 1 }
        return nextID
    }

    func unknown(_ kind: String, _ id: UInt64) -> MPIObjectError {
        MPIObjectError(.notServed, "rank 0 serves no \(kind) with id \(id) (it was not created by rank 0 of this job)")
    }

    /// A `.failed` reply for an unknown object.
    func unknownReply(_ kind: String, _ id: UInt64) -> [UInt8] {
        MPIObjectProtocol.failure(.failed, unknown(kind, id).message)
    }

    // MARK: worker requests (the MPI thread)

    /// Lets `wake` be called when a reply is ready (the live MPI pool's engine); nil: none.
    func setWaker(_ wake: (@Sendable () -> Void)?) {
        lock.withLock { waker = wake }
    }

    /// Handles one request from worker rank `rank`: answers it now or parks it.
    func handle(_ request: UnsafeRawBufferPointer, from rank: Int) {
        lock.lock()
        defer { lock.unlock() }
        let entry: Parked
        do {
            var reader = WireReader(request)
            guard let op = Op(rawValue: try reader.read(UInt8.self)) else {
                replies.append((rank, MPIObjectProtocol.failure(.failed, "rank 0 does not know this object request (another build?)")))
                return
            }
            let id = try reader.read(UInt64.self)
            let timeout = try reader.read(Double.self)
            let payload = Array(try reader.readLengthPrefixed())
            let deadline: UInt64? = timeout < 0 ? nil : monotonicNanoseconds() &+ UInt64(min(timeout, 1e9) * 1e9)
            entry = Parked(rank: rank, op: op, id: id, deadline: deadline, payload: payload,
                           generation: events[id]?.generation ?? 0)
        } catch {
            replies.append((rank, MPIObjectProtocol.failure(.failed, "rank 0 cannot read an object request: \(error)")))
            return
        }
        if entry.op == .barrierWait {
            arrive(entry)
            return
        }
        if entry.op == .conditionWait {
            startWaiting(entry)
            return
        }
        if let answer = attempt(entry) {
            replies.append((rank, answer))
            if changesState(entry.op) { settle() }
        } else if let deadline = entry.deadline, deadline <= monotonicNanoseconds() {
            replies.append((rank, MPIObjectProtocol.reply(.timedOut)))
        } else {
            parked.append(entry)
        }
    }

    /// Answers parked requests whose deadline passed (a barrier wait that times out breaks
    /// the barrier, as in Python).
    func expire(now: UInt64) {
        lock.lock()
        defer { lock.unlock() }
        guard parked.contains(where: { ($0.deadline ?? .max) <= now }) else { return }
        var broke: [BarrierState] = []
        parked.removeAll { entry in
            guard let deadline = entry.deadline, deadline <= now else { return false }
            if entry.op == .conditionWait {
                conditions[entry.id]?.waiters.removeAll { $0 == entry.generation }
                replies.append((entry.rank, MPIObjectProtocol.reply(.timedOut)))
            } else if entry.op == .barrierWait, let barrier = barriers[entry.id] {
                if barrier.pass == entry.generation { broke.append(barrier) }
                replies.append((entry.rank, MPIObjectProtocol.failure(.refused, "a Barrier wait timed out, which broke the barrier: "
                    + "reset() it to use it again")))
            } else {
                replies.append((entry.rank, MPIObjectProtocol.reply(.timedOut)))
            }
            return true
        }
        for barrier in broke {
            barrier.breakPass()
        }
        if !broke.isEmpty { settle() }
    }

    /// The earliest deadline of a parked request.
    var nextDeadline: UInt64? {
        lock.withLock { parked.compactMap(\.deadline).min() }
    }

    var hasReplies: Bool { lock.withLock { !replies.isEmpty } }

    func takeReplies() -> [(rank: Int, bytes: [UInt8])] {
        lock.withLock {
            defer { replies.removeAll() }
            return replies
        }
    }

    /// Answers every parked request with `.failed` (the MPI pool is ending: nobody would
    /// answer them later).
    func failParked(_ message: String) {
        lock.withLock {
            for entry in parked { replies.append((entry.rank, MPIObjectProtocol.failure(.failed, message))) }
            parked.removeAll()
        }
    }

    /// Whether an answered request of `op` may let parked requests go on.
    private func changesState(_ op: Op) -> Bool {
        switch op {
        case .queuePut, .queueGet, .lockRelease, .eventSet, .queueTaskDone, .barrierAbort, .barrierReset, .barrierActionDone, .semaphoreRelease,
             .pipeSend, .pipeRelease, .conditionNotify: true
        default: false
        }
    }

    /// Under `lock`, after a change: wakes rank 0's waiters and answers the parked requests
    /// that can be answered now.
    func settle() {
        lock.broadcast()
        var answered = false
        var progress = true
        while progress {
            progress = false
            var index = 0
            while index < parked.count {
                if let answer = attempt(parked[index]) {
                    let entry = parked.remove(at: index)
                    replies.append((entry.rank, answer))
                    answered = true
                    progress = progress || changesState(entry.op)
                } else {
                    index += 1
                }
            }
        }
        if answered { waker?() }
    }

    /// Under `lock`: the reply to `entry` if it can be given now, nil if it must wait.
    private func attempt(_ entry: Parked) -> [UInt8]? {
        switch entry.op {
        case .queuePut, .queueGet, .queueCount, .queueTaskDone, .queueJoin, .queueUnfinished:
            return attemptQueue(entry)
        case .lockAcquire, .lockRelease, .lockState:
            return attemptLock(entry)
        case .semaphoreAcquire, .semaphoreRelease, .semaphoreValue:
            return attemptSemaphore(entry)
        case .valueRead, .valueWrite, .valueReadRange, .valueWriteRange:
            return attemptValue(entry)
        case .barrierWait, .barrierAbort, .barrierReset, .barrierState, .barrierActionDone:
            return attemptBarrier(entry)
        case .eventSet, .eventClear, .eventIsSet, .eventWait:
            return attemptEvent(entry)
        case .pipeSend, .pipeReceive, .pipePoll, .pipeShare, .pipeAdopt, .pipeRelease:
            return attemptPipe(entry)
        case .conditionWait, .conditionNotify:
            return attemptCondition(entry)
        case .managerRequest:
            return attemptManager(entry)
        }
    }

    static func encode(_ value: Int64) -> [UInt8] {
        var writer = WireWriter(capacity: 8)
        writer.write(value)
        return writer.bytes
    }
}
