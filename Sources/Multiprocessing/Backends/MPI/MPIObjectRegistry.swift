import Wire
#if canImport(Glibc)
import Glibc
#endif

/// Rank 0's served objects (queues, locks, events) and the worker requests parked on them
/// (DESIGN.md §4). Rank 0's threads operate on the objects directly (waiting on a condition
/// variable); worker ranks' requests arrive through `handle(_:from:)` on the live MPI pool's
/// engine thread, which then sends what `takeReplies()` returns. A change made by rank 0
/// that answers a parked request calls the waker the engine registered, so the answer leaves
/// at once. Objects live until the program ends (they are small; ids are never reused).
final class MPIObjectRegistry: @unchecked Sendable {
    static let shared = MPIObjectRegistry()

    typealias Op = MPIObjectProtocol.Op
    typealias Status = MPIObjectProtocol.Status

    /// Who holds a served lock: a worker rank's task, or a thread of rank 0.
    enum Owner: Equatable {
        case rank(Int)
        case thread(UInt)

        static var currentThread: Owner { .thread(UInt(pthread_self())) }
    }

    private final class QueueState {
        let maxSize: Int
        /// Items put and not yet `taskDone` (`JoinableQueue`).
        var unfinished = 0
        private var items: [[UInt8]] = []
        private var head = 0
        init(maxSize: Int) { self.maxSize = maxSize }
        var count: Int { items.count - head }
        var isFull: Bool { maxSize > 0 && count >= maxSize }
        func append(_ item: [UInt8]) {
            items.append(item)
            unfinished += 1
        }
        func removeFirst() -> [UInt8]? {
            guard head < items.count else { return nil }
            let item = items[head]
            items[head] = []
            head += 1
            if head >= 64 && head * 2 >= items.count {
                items.removeFirst(head)
                head = 0
            }
            return item
        }
    }

    private final class BarrierState {
        let parties: Int
        /// Parties arrived in the current pass.
        var count = 0
        /// Incremented when a pass opens or breaks.
        var pass: UInt64 = 0
        var broken = false
        /// Passes that ended broken (their waiters get `BrokenBarrierError`).
        var brokenPasses: Set<UInt64> = []
        init(parties: Int) { self.parties = parties }

        /// Ends the current pass as broken (its waiters fail) and marks the barrier broken.
        func breakPass() {
            broken = true
            if count > 0 {
                brokenPasses.insert(pass)
                pass += 1
                count = 0
            }
        }
    }

    private struct SemaphoreState {
        var value: Int
        /// `BoundedSemaphore`: the initial value, which `release` may not exceed.
        let bound: Int?
    }

    private struct EventState {
        var isSet = false
        var generation: UInt64 = 0
    }

    private struct Parked {
        let rank: Int
        /// For `barrierWait`: the arrival index.
        var index = 0
        let op: Op
        let id: UInt64
        let deadline: UInt64?
        let payload: [UInt8]
        /// For `eventWait`: the event's generation when the request arrived.
        let generation: UInt64
    }

    private let lock = ConditionLock()
    // Under `lock`.
    private var nextID: UInt64 = 1
    private var queues: [UInt64: QueueState] = [:]
    private var locks: [UInt64: Owner?] = [:]
    /// For an `RLock`: how many times its owner holds it.
    private var depths: [UInt64: Int] = [:]
    private var events: [UInt64: EventState] = [:]
    private var values: [UInt64: [UInt8]] = [:]
    private var barriers: [UInt64: BarrierState] = [:]
    private var semaphores: [UInt64: SemaphoreState] = [:]
    private var parked: [Parked] = []
    private var replies: [(rank: Int, bytes: [UInt8])] = []
    private var waker: (@Sendable () -> Void)?

    // MARK: creation (rank 0)

    func makeQueue(maxSize: Int) -> UInt64 {
        lock.withLock { () -> UInt64 in
            let id = newID()
            queues[id] = QueueState(maxSize: maxSize)
            return id
        }
    }

    /// A lock; `recursive`: an `RLock`, which its owner may take again (and must release as
    /// many times).
    func makeLock(recursive: Bool = false) -> UInt64 {
        lock.withLock { () -> UInt64 in
            let id = newID()
            locks[id] = .some(nil)
            if recursive { depths[id] = 0 }
            return id
        }
    }

    /// Under `lock`: `owner` takes the lock if free, or again if it holds an `RLock`.
    private func take(_ id: UInt64, by owner: Owner) -> Acquisition? {
        let current = locks[id]!
        if current == owner {
            guard let depth = depths[id] else { return .alreadyHeld }
            depths[id] = depth + 1
            return .acquired
        }
        guard current == nil else { return nil }
        locks[id] = .some(owner)
        if depths[id] != nil { depths[id] = 1 }
        return .acquired
    }

    /// Under `lock`: `owner` releases once; false if it does not hold the lock.
    private func give(_ id: UInt64, by owner: Owner) -> Bool {
        guard locks[id]! == owner else { return false }
        if let depth = depths[id], depth > 1 {
            depths[id] = depth - 1
            return true
        }
        locks[id] = .some(nil)
        if depths[id] != nil { depths[id] = 0 }
        return true
    }

    func makeEvent() -> UInt64 {
        lock.withLock { () -> UInt64 in
            let id = newID()
            events[id] = EventState()
            return id
        }
    }

    func makeValue(_ bytes: [UInt8]) -> UInt64 {
        lock.withLock { () -> UInt64 in
            let id = newID()
            values[id] = bytes
            return id
        }
    }

    func makeBarrier(parties: Int) -> UInt64 {
        lock.withLock { () -> UInt64 in
            let id = newID()
            barriers[id] = BarrierState(parties: parties)
            return id
        }
    }

    static let brokenMessage = "the Barrier is broken (a wait timed out, abort() or reset() was called): reset() it to use it again"

    /// `Barrier.wait` on rank 0: the arrival index, or nil if the barrier is or became broken.
    func barrierWait(_ id: UInt64, deadline: UInt64?) throws(MPIObjectError) -> Int? {
        lock.lock()
        defer { lock.unlock() }
        guard let barrier = barriers[id] else { throw unknown("barrier", id) }
        guard !barrier.broken else { return nil }
        let index = barrier.count
        let myPass = barrier.pass
        barrier.count += 1
        if barrier.count == barrier.parties {
            barrier.pass += 1
            barrier.count = 0
            settle()
            return index
        }
        while barrier.pass == myPass {
            if !lock.wait(until: deadline), barrier.pass == myPass {
                barrier.breakPass()
                settle()
                return nil
            }
        }
        return barrier.brokenPasses.contains(myPass) ? nil : index
    }

    /// `abort()` (breaks) or `reset()` (breaks a pass in progress, then clears).
    func barrierBreak(_ id: UInt64, reset: Bool) throws(MPIObjectError) {
        lock.lock()
        defer { lock.unlock() }
        guard let barrier = barriers[id] else { throw unknown("barrier", id) }
        breakBarrier(barrier, reset: reset)
    }

    private func breakBarrier(_ barrier: BarrierState, reset: Bool) {
        if reset {
            if barrier.count > 0 { barrier.breakPass() }
            barrier.broken = false
        } else {
            barrier.breakPass()
        }
        settle()
    }

    func barrierState(_ id: UInt64) throws(MPIObjectError) -> (broken: Bool, waiting: Int) {
        lock.lock()
        defer { lock.unlock() }
        guard let barrier = barriers[id] else { throw unknown("barrier", id) }
        return (barrier.broken, barrier.broken ? 0 : barrier.count)
    }

    func makeSemaphore(value: Int, bounded: Bool) -> UInt64 {
        lock.withLock { () -> UInt64 in
            let id = newID()
            semaphores[id] = SemaphoreState(value: value, bound: bounded ? value : nil)
            return id
        }
    }

    /// Takes one unit; false if none came before `deadline`.
    func semaphoreAcquire(_ id: UInt64, deadline: UInt64?) throws(MPIObjectError) -> Bool {
        lock.lock()
        defer { lock.unlock() }
        guard semaphores[id] != nil else { throw unknown("semaphore", id) }
        while semaphores[id]!.value == 0 {
            if !lock.wait(until: deadline), semaphores[id]!.value == 0 { return false }
        }
        semaphores[id]!.value -= 1
        return true
    }

    /// Gives `count` units back; the refusal's message if a bounded semaphore would exceed
    /// its initial value.
    func semaphoreRelease(_ id: UInt64, count: Int) throws(MPIObjectError) -> String? {
        lock.lock()
        defer { lock.unlock() }
        guard let semaphore = semaphores[id] else { throw unknown("semaphore", id) }
        if let refusal = release(&semaphores[id]!, count: count, current: semaphore) { return refusal }
        settle()
        return nil
    }

    private func release(_ semaphore: inout SemaphoreState, count: Int, current: SemaphoreState) -> String? {
        if let bound = current.bound, current.value + count > bound {
            return "a BoundedSemaphore was released more times than it was acquired (its value would exceed \(bound))"
        }
        semaphore.value += count
        return nil
    }

    func semaphoreValue(_ id: UInt64) throws(MPIObjectError) -> Int {
        lock.lock()
        defer { lock.unlock() }
        guard let semaphore = semaphores[id] else { throw unknown("semaphore", id) }
        return semaphore.value
    }

    func valueRead(_ id: UInt64) throws(MPIObjectError) -> [UInt8] {
        lock.lock()
        defer { lock.unlock() }
        guard let bytes = values[id] else { throw unknown("shared value", id) }
        return bytes
    }

    func valueWrite(_ id: UInt64, _ bytes: [UInt8]) throws(MPIObjectError) {
        lock.lock()
        defer { lock.unlock() }
        guard let old = values[id] else { throw unknown("shared value", id) }
        guard old.count == bytes.count else {
            throw MPIObjectError(.notServed, "a shared value of \(old.count) bytes cannot take \(bytes.count) bytes (another type?)")
        }
        values[id] = bytes
    }

    private func newID() -> UInt64 {
        defer { nextID += 1 }
        return nextID
    }

    private func unknown(_ kind: String, _ id: UInt64) -> MPIObjectError {
        MPIObjectError(.notServed, "rank 0 serves no \(kind) with id \(id) (it was not created by rank 0 of this job)")
    }

    // MARK: rank 0's own operations

    /// Puts `item`; false if the queue stayed full until `deadline`.
    func queuePut(_ id: UInt64, _ item: [UInt8], deadline: UInt64?) throws(MPIObjectError) -> Bool {
        lock.lock()
        defer { lock.unlock() }
        guard let queue = queues[id] else { throw unknown("queue", id) }
        while queue.isFull {
            if !lock.wait(until: deadline), queue.isFull { return false }
        }
        queue.append(item)
        settle()
        return true
    }

    /// The oldest item, or nil if the queue stayed empty until `deadline`.
    func queueGet(_ id: UInt64, deadline: UInt64?) throws(MPIObjectError) -> [UInt8]? {
        lock.lock()
        defer { lock.unlock() }
        guard let queue = queues[id] else { throw unknown("queue", id) }
        while true {
            if let item = queue.removeFirst() {
                settle()
                return item
            }
            if !lock.wait(until: deadline), queue.count == 0 { return nil }
        }
    }

    func queueCount(_ id: UInt64) throws(MPIObjectError) -> Int {
        lock.lock()
        defer { lock.unlock() }
        guard let queue = queues[id] else { throw unknown("queue", id) }
        return queue.count
    }

    /// `JoinableQueue.taskDone()`; false if called more times than items were put.
    func queueTaskDone(_ id: UInt64) throws(MPIObjectError) -> Bool {
        lock.lock()
        defer { lock.unlock() }
        guard let queue = queues[id] else { throw unknown("queue", id) }
        guard queue.unfinished > 0 else { return false }
        queue.unfinished -= 1
        settle()
        return true
    }

    /// `JoinableQueue.join()`: whether every item put was marked done before `deadline`.
    func queueJoin(_ id: UInt64, deadline: UInt64?) throws(MPIObjectError) -> Bool {
        lock.lock()
        defer { lock.unlock() }
        guard let queue = queues[id] else { throw unknown("queue", id) }
        while queue.unfinished > 0 {
            if !lock.wait(until: deadline), queue.unfinished > 0 { return false }
        }
        return true
    }

    func queueUnfinished(_ id: UInt64) throws(MPIObjectError) -> Int {
        lock.lock()
        defer { lock.unlock() }
        guard let queue = queues[id] else { throw unknown("queue", id) }
        return queue.unfinished
    }

    enum Acquisition { case acquired, timedOut, alreadyHeld }

    func lockAcquire(_ id: UInt64, by owner: Owner, deadline: UInt64?) throws(MPIObjectError) -> Acquisition {
        lock.lock()
        defer { lock.unlock() }
        guard locks[id] != nil else { throw unknown("lock", id) }
        while true {
            if let outcome = take(id, by: owner) { return outcome }
            if !lock.wait(until: deadline), locks[id]! != nil { return .timedOut }
        }
    }

    /// Releases; false if `owner` does not hold the lock.
    func lockRelease(_ id: UInt64, by owner: Owner) throws(MPIObjectError) -> Bool {
        lock.lock()
        defer { lock.unlock() }
        guard locks[id] != nil else { throw unknown("lock", id) }
        guard give(id, by: owner) else { return false }
        settle()
        return true
    }

    func lockState(_ id: UInt64, for owner: Owner) throws(MPIObjectError) -> (locked: Bool, mine: Bool) {
        lock.lock()
        defer { lock.unlock() }
        guard let current = locks[id] else { throw unknown("lock", id) }
        return (current != nil, current == owner)
    }

    func eventSet(_ id: UInt64, _ up: Bool) throws(MPIObjectError) {
        lock.lock()
        defer { lock.unlock() }
        guard var event = events[id] else { throw unknown("event", id) }
        if up && !event.isSet { event.generation += 1 }
        event.isSet = up
        events[id] = event
        if up { settle() }
    }

    func eventIsSet(_ id: UInt64) throws(MPIObjectError) -> Bool {
        lock.lock()
        defer { lock.unlock() }
        guard let event = events[id] else { throw unknown("event", id) }
        return event.isSet
    }

    /// Whether the event was set, or set since the call began, before `deadline`.
    func eventWait(_ id: UInt64, deadline: UInt64?) throws(MPIObjectError) -> Bool {
        lock.lock()
        defer { lock.unlock() }
        guard let seen = events[id] else { throw unknown("event", id) }
        while true {
            let now = events[id]!
            if now.isSet || now.generation != seen.generation { return true }
            if !lock.wait(until: deadline) {
                let last = events[id]!
                return last.isSet || last.generation != seen.generation
            }
        }
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
        if let answer = attempt(entry) {
            replies.append((rank, answer))
            if changesState(entry.op) { settle() }
        } else if let deadline = entry.deadline, deadline <= monotonicNanoseconds() {
            replies.append((rank, MPIObjectProtocol.reply(.timedOut)))
        } else {
            parked.append(entry)
        }
    }

    /// Under `lock`: a worker arrives at a barrier: answered at once (broken, or the last
    /// party), else parked until its pass opens or breaks.
    private func arrive(_ request: Parked) {
        guard let barrier = barriers[request.id] else {
            replies.append((request.rank, MPIObjectProtocol.failure(.failed, unknown("barrier", request.id).message)))
            return
        }
        guard !barrier.broken else {
            replies.append((request.rank, MPIObjectProtocol.failure(.refused, Self.brokenMessage)))
            return
        }
        var entry = Parked(rank: request.rank, op: request.op, id: request.id, deadline: request.deadline,
                           payload: [], generation: barrier.pass)
        entry.index = barrier.count
        barrier.count += 1
        if barrier.count == barrier.parties {
            barrier.pass += 1
            barrier.count = 0
            replies.append((entry.rank, MPIObjectProtocol.reply(.ok, Self.encode(Int64(entry.index)))))
            settle()
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
            if entry.op == .barrierWait, let barrier = barriers[entry.id] {
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

    private func changesState(_ op: Op) -> Bool {
        switch op {
        case .queuePut, .queueGet, .lockRelease, .eventSet, .queueTaskDone, .barrierAbort, .barrierReset, .semaphoreRelease: true
        default: false
        }
    }

    /// Under `lock`, after a change: wakes rank 0's waiters and answers the parked requests
    /// that can be answered now.
    private func settle() {
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
        let owner = Owner.rank(entry.rank)
        switch entry.op {
        case .queuePut, .queueGet, .queueCount, .queueTaskDone, .queueJoin, .queueUnfinished:
            guard let queue = queues[entry.id] else { return MPIObjectProtocol.failure(.failed, unknown("queue", entry.id).message) }
            switch entry.op {
            case .queuePut:
                if queue.isFull { return nil }
                queue.append(entry.payload)
                return MPIObjectProtocol.reply(.ok)
            case .queueGet:
                guard let item = queue.removeFirst() else { return nil }
                return MPIObjectProtocol.reply(.ok, item)
            case .queueTaskDone:
                guard queue.unfinished > 0 else {
                    return MPIObjectProtocol.failure(.refused, "taskDone() called more times than items were put in the queue")
                }
                queue.unfinished -= 1
                return MPIObjectProtocol.reply(.ok)
            case .queueJoin:
                return queue.unfinished == 0 ? MPIObjectProtocol.reply(.ok) : nil
            case .queueUnfinished:
                return MPIObjectProtocol.reply(.ok, Self.encode(Int64(queue.unfinished)))
            default:
                return MPIObjectProtocol.reply(.ok, Self.encode(Int64(queue.count)))
            }
        case .lockAcquire, .lockRelease, .lockState:
            guard let current = locks[entry.id] else { return MPIObjectProtocol.failure(.failed, unknown("lock", entry.id).message) }
            switch entry.op {
            case .lockAcquire:
                switch take(entry.id, by: owner) {
                case nil:
                    return nil
                case .alreadyHeld:
                    return MPIObjectProtocol.failure(.refused, "worker rank \(entry.rank) already holds the Lock: acquiring it again "
                        + "would wait for ever; release it first, or use an RLock for re-entrant locking")
                default:
                    return MPIObjectProtocol.reply(.ok)
                }
            case .lockRelease:
                guard give(entry.id, by: owner) else {
                    return MPIObjectProtocol.failure(.refused, "release() of a lock worker rank \(entry.rank) does not hold: only "
                        + "the task that acquired it may release it")
                }
                return MPIObjectProtocol.reply(.ok)
            default:
                return MPIObjectProtocol.reply(.ok, [current != nil ? 1 : 0, current == owner ? 1 : 0])
            }
        case .valueRead, .valueWrite:
            return valueAccess(entry)
        case .semaphoreAcquire, .semaphoreRelease, .semaphoreValue:
            guard let semaphore = semaphores[entry.id] else {
                return MPIObjectProtocol.failure(.failed, unknown("semaphore", entry.id).message)
            }
            switch entry.op {
            case .semaphoreAcquire:
                if semaphore.value == 0 { return nil }
                semaphores[entry.id]!.value -= 1
                return MPIObjectProtocol.reply(.ok)
            case .semaphoreRelease:
                let count = entry.payload.withUnsafeBytes { raw -> Int in
                    var reader = WireReader(raw)
                    return Int((try? reader.read(Int64.self)) ?? 1)
                }
                if let refusal = release(&semaphores[entry.id]!, count: count, current: semaphore) {
                    return MPIObjectProtocol.failure(.refused, refusal)
                }
                return MPIObjectProtocol.reply(.ok)
            default:
                return MPIObjectProtocol.reply(.ok, Self.encode(Int64(semaphore.value)))
            }
        case .barrierWait, .barrierAbort, .barrierReset, .barrierState:
            guard let barrier = barriers[entry.id] else {
                return MPIObjectProtocol.failure(.failed, unknown("barrier", entry.id).message)
            }
            switch entry.op {
            case .barrierWait:
                // Parked: answered once its pass has opened or broken.
                if barrier.pass == entry.generation { return nil }
                if barrier.brokenPasses.contains(entry.generation) {
                    return MPIObjectProtocol.failure(.refused, Self.brokenMessage)
                }
                return MPIObjectProtocol.reply(.ok, Self.encode(Int64(entry.index)))
            case .barrierAbort, .barrierReset:
                if entry.op == .barrierReset {
                    if barrier.count > 0 { barrier.breakPass() }
                    barrier.broken = false
                } else {
                    barrier.breakPass()
                }
                return MPIObjectProtocol.reply(.ok)
            default:
                return MPIObjectProtocol.reply(.ok, [barrier.broken ? 1 : 0] + Self.encode(Int64(barrier.broken ? 0 : barrier.count)))
            }
        case .eventSet, .eventClear, .eventIsSet, .eventWait:
            guard var event = events[entry.id] else { return MPIObjectProtocol.failure(.failed, unknown("event", entry.id).message) }
            switch entry.op {
            case .eventSet, .eventClear:
                let up = entry.op == .eventSet
                if up && !event.isSet { event.generation += 1 }
                event.isSet = up
                events[entry.id] = event
                return MPIObjectProtocol.reply(.ok)
            case .eventIsSet:
                return MPIObjectProtocol.reply(.ok, [event.isSet ? 1 : 0])
            default:
                guard event.isSet || event.generation != entry.generation else { return nil }
                return MPIObjectProtocol.reply(.ok, [1])
            }
        }
    }

    /// Under `lock`: a value's read or write (never waits; its lock is a separate served lock).
    private func valueAccess(_ entry: Parked) -> [UInt8] {
        guard let old = values[entry.id] else { return MPIObjectProtocol.failure(.failed, unknown("shared value", entry.id).message) }
        if entry.op == .valueRead { return MPIObjectProtocol.reply(.ok, old) }
        guard old.count == entry.payload.count else {
            return MPIObjectProtocol.failure(.failed, "a shared value of \(old.count) bytes cannot take \(entry.payload.count) bytes")
        }
        values[entry.id] = entry.payload
        return MPIObjectProtocol.reply(.ok)
    }

    static func encode(_ value: Int64) -> [UInt8] {
        var writer = WireWriter(capacity: 8)
        writer.write(value)
        return writer.bytes
    }
}
