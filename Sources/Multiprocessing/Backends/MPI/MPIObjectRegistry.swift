import Wire

/// Rank 0's served objects (ARCHITECTURE.md §8): ids, handle counts and the requests parked
/// on them. What an object is and does lives in its kind's file (`Served/ServedQueue.swift`…,
/// a `ServedState`); this registry only runs their `attempt`s — for rank 0's own threads
/// (`perform`, which waits on a condition variable while its request is parked) and for
/// worker ranks' requests (`handle`, whose replies the MPI thread sends: `takeReplies`).
///
/// **Lifetime.** Every handle of an object (a `MPIServedObject` in rank 0 or a worker rank)
/// counts once: created with the object, or `retain`ed when a copy is decoded, `release`d in
/// its `deinit`. An object is freed when its count is zero, no request is parked on it, its
/// kind does not keep it (a pipe with an open end) and it is not pinned. Encoding a handle
/// pins its object (`pin`): a copy in transit is not a handle yet, so the object stays until
/// a copy is decoded somewhere (the pin ends with the next retain), or for `pinSeconds` at
/// most (an encoding nobody decodes — a cancelled task — does not keep it for ever). Ids are
/// never reused, so a late request for a freed object fails with `.notServed` rather than
/// reaching another object. Every stored property is guarded by `lock`.
final class MPIObjectRegistry: @unchecked Sendable {
    static let shared = MPIObjectRegistry()

    /// One served object.
    final class Entry {
        let state: any ServedState
        /// Handles that count it.
        var handles: Int
        /// Requests parked on it (rank 0's threads' and worker ranks').
        var parked = 0
        /// Pinned by an encoding until this time (monotonic ns; 0: not pinned).
        var pinnedUntil: UInt64 = 0
        init(state: any ServedState, handles: Int) {
            self.state = state
            self.handles = handles
        }
    }

    let lock = ConditionLock()
    // Under `lock`.
    private var nextID: UInt64 = 1
    private var objects: [UInt64: Entry] = [:]
    private var parked: [any ParkedRequest] = []
    private var replies: [(rank: Int, bytes: [UInt8])] = []
    private var waker: (@Sendable () -> Void)?
    /// Objects with no handle left that only a pin keeps.
    private var lingering: Set<UInt64> = []
    /// Per process of a worker rank (`ObjectRequester.id`): the handles it holds (retains
    /// less releases it sent), dropped when it ends (`dropProcesses`).
    private var held: [Int: [UInt64: Int]] = [:]

    /// How long an encoding keeps its object when no copy of it is decoded.
    static let pinSeconds: UInt64 = 60

    init() {}

    // MARK: objects and handles

    /// Serves `state` under a new id, counted by one handle (the creator's).
    func add(_ state: some ServedState, handles: Int = 1) -> UInt64 {
        lock.withLock {
            defer { nextID += 1 }
            if !lingering.isEmpty { sweep(now: monotonicNanoseconds()) }
            objects[nextID] = Entry(state: state, handles: handles)
            return nextID
        }
    }

    /// Objects served now.
    var count: Int { lock.withLock { objects.count } }

    /// Whether `id` is served now.
    func contains(_ id: UInt64) -> Bool { lock.withLock { objects[id] != nil } }

    /// A handle of `id` more (a decoded copy); false if the object is gone.
    @discardableResult
    func retain(_ id: UInt64) -> Bool {
        lock.withLock { change(id, by: 1) }
    }

    /// A handle of `id` fewer; frees the object when it was the last one.
    func release(_ id: UInt64) {
        lock.withLock {
            _ = change(id, by: -1)
            if !lingering.isEmpty { sweep(now: monotonicNanoseconds()) }
        }
    }

    /// Pins `id` while an encoded copy travels (see the type's doc).
    func pin(_ id: UInt64) {
        lock.withLock { _ = change(id, by: 0) }
    }

    /// Under `lock`: a handle count change (a retain ends a pin; 0: a pin).
    private func change(_ id: UInt64, by delta: Int) -> Bool {
        guard let entry = objects[id] else { return false }
        if delta == 0 {
            entry.pinnedUntil = monotonicNanoseconds() &+ Self.pinSeconds * 1_000_000_000
        } else {
            if delta > 0 { entry.pinnedUntil = 0 }
            entry.handles = max(0, entry.handles + delta)
        }
        collect(id)
        return true
    }

    /// Under `lock`: frees `id` if nothing holds it (a pin counts until `now`, by default the
    /// present).
    private func collect(_ id: UInt64, now: UInt64? = nil) {
        guard let entry = objects[id], entry.handles == 0, entry.parked == 0, !entry.state.keepsAlive else {
            lingering.remove(id)
            return
        }
        if entry.pinnedUntil != 0, entry.pinnedUntil > now ?? monotonicNanoseconds() {
            lingering.insert(id)
            return
        }
        lingering.remove(id)
        objects[id] = nil
    }

    /// Under `lock`: frees the objects whose pin ended.
    private func sweep(now: UInt64) {
        for id in lingering where (objects[id]?.pinnedUntil ?? 0) <= now { collect(id, now: now) }
    }

    static func unknown(_ kind: ServedKind, _ id: UInt64) -> MPIObjectError {
        MPIObjectError(
            .notServed,
            "rank 0 serves no \(kind) with id \(id): it was freed when its last handle was "
                + "dropped (keep a handle in the sending process until the receiver has its copy), or it was not created "
                + "by rank 0 of this job")
    }

    /// Runs `body` on the state of `id` (rank 0's queries that need no request).
    func withState<S: ServedState, R>(_ id: UInt64, as _: S.Type, _ body: (S) -> R) throws(MPIObjectError) -> R {
        lock.lock()
        defer { lock.unlock() }
        guard let state = objects[id]?.state as? S else { throw Self.unknown(S.kind, id) }
        return body(state)
    }

    /// Requests parked on `id` now.
    func parkedCount(_ id: UInt64) -> Int {
        lock.withLock { objects[id]?.parked ?? 0 }
    }

    // MARK: rank 0's own requests

    /// Runs `request` on `id` for `requester` (a thread of rank 0), waiting while it is
    /// parked, until `deadline` (then the kind's `expire` answers).
    func perform<S: ServedState>(
        _ id: UInt64, _: S.Type, _ request: S.Request, from requester: Requester,
        deadline: UInt64?
    ) throws(MPIObjectError) -> S.Reply {
        lock.lock()
        defer { lock.unlock() }
        guard let entry = objects[id], let state = entry.state as? S else { throw Self.unknown(S.kind, id) }
        var request = request
        switch state.attempt(&request, from: requester) {
        case .reply(let reply):
            settle()
            collect(id)
            return reply
        case .park:
            break
        }
        let waiter = Parked(state: state, id: id, request: request, requester: requester, deadline: deadline, rank: nil)
        parked.append(waiter)
        entry.parked += 1
        settle()
        while waiter.reply == nil {
            if !lock.wait(until: deadline), waiter.reply == nil {
                unpark(waiter)
                let reply = state.expire(waiter.request, from: requester)
                settle()
                collect(id)
                return reply
            }
        }
        collect(id)
        return waiter.reply!
    }

    /// Under `lock`: removes a parked request that is still parked.
    private func unpark(_ request: any ParkedRequest) {
        guard let index = parked.firstIndex(where: { $0 === request }) else { return }
        parked.remove(at: index)
        objects[request.id]?.parked -= 1
    }

    // MARK: worker requests (the MPI thread)

    /// Lets `wake` be called when a reply is ready (the live MPI pool's engine); nil: none.
    func setWaker(_ wake: (@Sendable () -> Void)?) {
        lock.withLock { waker = wake }
    }

    /// Handles one request from worker rank `rank` (`MPIObjectProtocol`): applies the handle
    /// counts it carries, then answers it now or parks it.
    func handle(_ bytes: UnsafeRawBufferPointer, from rank: Int) {
        lock.lock()
        defer { lock.unlock() }
        let request: MPIObjectProtocol.Request
        do {
            var reader = WireReader(bytes)
            request = try MPIObjectProtocol.Request.decode(&reader)
            for (id, delta) in request.counts where delta != 0 {
                _ = change(id, by: Int(delta))
                held[rank, default: [:]][id, default: 0] += Int(delta)
                if held[rank]?[id] == 0 { held[rank]?[id] = nil }
            }
            let requester = Requester(rank: rank, local: request.local)
            guard request.kind != .none else {
                replies.append((rank, MPIObjectProtocol.reply(.ok, local: request.local)))
                return
            }
            guard let entry = objects[request.id] else {
                replies.append(
                    (
                        rank,
                        MPIObjectProtocol.failure(
                            .failed, Self.unknown(request.kind, request.id).message,
                            local: request.local)
                    ))
                return
            }
            guard type(of: entry.state).kind == request.kind else {
                replies.append(
                    (
                        rank,
                        MPIObjectProtocol.failure(
                            .failed,
                            "object \(request.id) is a \(type(of: entry.state).kind), "
                                + "not a \(request.kind) (another build?)", local: request.local)
                    ))
                return
            }
            let deadline: UInt64? = request.timeout < 0 ? nil : monotonicNanoseconds() &+ UInt64(min(request.timeout, 1e9) * 1e9)
            try handle(entry, entry.state, id: request.id, &reader, from: requester, deadline: deadline)
        } catch {
            replies.append((rank, MPIObjectProtocol.failure(.failed, "rank 0 cannot read an object request: \(error)")))
            return
        }
        settle()
        collect(request.id)
    }

    /// Under `lock`: a worker's request on `state` (its kind opened).
    private func handle<S: ServedState>(
        _ entry: Entry, _ state: S, id: UInt64, _ reader: inout WireReader,
        from requester: Requester, deadline: UInt64?
    ) throws(WireError) {
        var request = try S.decodeRequest(&reader)
        switch state.attempt(&request, from: requester) {
        case .reply(let reply):
            replies.append((requester.rank, Self.encode(S.self, reply, local: requester.local)))
        case .park:
            if let deadline, deadline <= monotonicNanoseconds() {
                let reply = state.expire(request, from: requester)
                replies.append((requester.rank, Self.encode(S.self, reply, local: requester.local)))
            } else {
                parked.append(
                    Parked(
                        state: state, id: id, request: request, requester: requester, deadline: deadline,
                        rank: requester.rank))
                entry.parked += 1
            }
        }
    }

    static func encode<S: ServedState>(_: S.Type, _ reply: S.Reply, local: UInt64) -> [UInt8] {
        var writer = WireWriter(capacity: 32)
        S.encode(reply, into: &writer)
        return MPIObjectProtocol.reply(.ok, writer.bytes, local: local)
    }

    /// Answers worker ranks' parked requests whose deadline passed (rank 0's threads expire
    /// their own).
    func expire(now: UInt64) {
        lock.lock()
        defer { lock.unlock() }
        if !lingering.isEmpty { sweep(now: now) }
        guard parked.contains(where: { $0.rank != nil && ($0.deadline ?? .max) <= now }) else { return }
        var touched: [UInt64] = []
        parked.removeAll { entry in
            guard entry.rank != nil, let deadline = entry.deadline, deadline <= now else { return false }
            replies.append(entry.expire())
            objects[entry.id]?.parked -= 1
            touched.append(entry.id)
            return true
        }
        settle()
        for id in touched { collect(id) }
    }

    /// The earliest deadline of a worker's parked request.
    var nextDeadline: UInt64? {
        lock.withLock { parked.compactMap { $0.rank != nil ? $0.deadline : nil }.min() }
    }

    var hasReplies: Bool { lock.withLock { !replies.isEmpty } }

    func takeReplies() -> [(rank: Int, bytes: [UInt8])] {
        lock.withLock {
            defer { replies.removeAll() }
            return replies
        }
    }

    /// Processes of worker ranks that ended (`gone` is asked with each `ObjectRequester.id`):
    /// the handles they held are dropped — a process killed or crashed never sends its
    /// releases — and their parked requests forgotten (nobody waits for the answers).
    func dropProcesses(where gone: (Int) -> Bool) {
        lock.withLock {
            var touched: [UInt64] = []
            for (process, counts) in held where gone(process) {
                held[process] = nil
                for (id, count) in counts where count > 0 {
                    _ = change(id, by: -count)
                    touched.append(id)
                }
            }
            parked.removeAll { entry in
                guard let rank = entry.rank, gone(rank) else { return false }
                // Answered all the same: the rank that relayed it counts on one answer per
                // request (`RelayedObjectRequests`), and drops this one.
                replies.append((rank, MPIObjectProtocol.failure(.failed, Self.requesterEnded, local: entry.requester.local)))
                entry.abandon()
                objects[entry.id]?.parked -= 1
                touched.append(entry.id)
                return true
            }
            // What they owned (a lock they held) is let go: others parked on it may go on.
            for (id, entry) in objects where entry.state.processesEnded(gone) { touched.append(id) }
            guard !touched.isEmpty else { return }
            settle()
            for id in touched { collect(id) }
        }
    }

    static let requesterEnded = "the process that asked ended before it was answered"

    /// A reply that `process` (a worker rank's local worker, `ObjectRequester.id`) never
    /// read — it died first (`RelayedObjectRequests`): its object gives back what the reply
    /// handed over (`ServedState.undo`), and parked requests that can be answered now are.
    /// `request` and `reply` are as they travelled; unreadable ones, a reply that was not
    /// `.ok`, or an object freed since are left alone.
    func undo(request: UnsafeRawBufferPointer, reply: UnsafeRawBufferPointer, from process: Int) {
        lock.lock()
        defer { lock.unlock() }
        var reader = WireReader(request)
        guard let header = try? MPIObjectProtocol.Request.decode(&reader), let entry = objects[header.id],
            type(of: entry.state).kind == header.kind,
            let (_, status, payload) = try? MPIObjectProtocol.readReply(Array(reply)), status == .ok
        else { return }
        undo(entry.state, &reader, payload, from: Requester(rank: process, local: header.local))
        settle()
        collect(header.id)
    }

    private func undo<S: ServedState>(_ state: S, _ reader: inout WireReader, _ payload: [UInt8], from requester: Requester) {
        guard let request = try? S.decodeRequest(&reader),
            let reply = payload.withUnsafeBytes({ raw -> S.Reply? in
                var reader = WireReader(raw)
                return try? S.decodeReply(&reader)
            })
        else { return }
        state.undo(request, reply, from: requester)
    }

    /// Answers every worker's parked request with `.failed` (the MPI pool is ending: nobody
    /// would answer them later). Rank 0's own waits go on.
    func failParked(_ message: String) {
        lock.withLock {
            var touched: [UInt64] = []
            parked.removeAll { entry in
                guard let rank = entry.rank else { return false }
                replies.append((rank, MPIObjectProtocol.failure(.failed, message, local: entry.requester.local)))
                objects[entry.id]?.parked -= 1
                touched.append(entry.id)
                return true
            }
            for id in touched { collect(id) }
        }
    }

    /// Under `lock`, after a change: answers the parked requests that can be answered now
    /// (again until none can), wakes rank 0's waiting threads and the MPI thread.
    private func settle() {
        guard !parked.isEmpty else { return }
        var answered = false
        var progress = true
        while progress {
            progress = false
            var index = 0
            while index < parked.count {
                if let reply = parked[index].retry() {
                    let entry = parked.remove(at: index)
                    objects[entry.id]?.parked -= 1
                    if let reply { replies.append(reply) }
                    collect(entry.id)
                    answered = true
                    progress = true
                } else {
                    index += 1
                }
            }
        }
        if answered {
            lock.broadcast()
            waker?()
        }
    }
}

/// A request waiting in rank 0 (`MPIObjectRegistry`), of any kind.
protocol ParkedRequest: AnyObject {
    var id: UInt64 { get }
    var deadline: UInt64? { get }
    /// The worker rank to answer; nil: a thread of rank 0 (it takes `reply` itself).
    var rank: Int? { get }
    var requester: Requester { get }
    /// Attempts it again: nil if it must go on waiting; else answered (for a worker, the
    /// reply to send; for a thread of rank 0, nil inside: its reply is stored).
    func retry() -> (rank: Int, bytes: [UInt8])??
    /// The deadline passed (a worker's request): the reply to send.
    func expire() -> (rank: Int, bytes: [UInt8])
    /// Its process ended: the state forgets it (`ServedState.abandon`).
    func abandon()
}

final class Parked<S: ServedState>: ParkedRequest {
    let state: S
    let id: UInt64
    var request: S.Request
    let requester: Requester
    let deadline: UInt64?
    let rank: Int?
    /// For a thread of rank 0: the reply, once given.
    var reply: S.Reply?

    init(state: S, id: UInt64, request: S.Request, requester: Requester, deadline: UInt64?, rank: Int?) {
        self.state = state
        self.id = id
        self.request = request
        self.requester = requester
        self.deadline = deadline
        self.rank = rank
    }

    func retry() -> (rank: Int, bytes: [UInt8])?? {
        guard case .reply(let answer) = state.attempt(&request, from: requester) else { return nil }
        guard let rank else {
            reply = answer
            return .some(nil)
        }
        return .some((rank, MPIObjectRegistry.encode(S.self, answer, local: requester.local)))
    }

    func expire() -> (rank: Int, bytes: [UInt8]) {
        (rank ?? 0, MPIObjectRegistry.encode(S.self, state.expire(request, from: requester), local: requester.local))
    }

    func abandon() { state.abandon(request, from: requester) }
}
