#if MPI
import MPI
import Wire
#if canImport(Glibc)
import Glibc
#endif

/// The worker ranks of an mpirun job as a pool's workers (ARCHITECTURE.md §3, §8): each worker
/// rank hosts local worker processes (`RankRelay`) and relays the pool's messages; slot i is
/// one local worker of one rank (`Slot`), ranks in order, as many on each as the pool's
/// lease from `MPIService` says.
///
/// Every message is one MPI message on the job's duplicated world communicator
/// (`MPIProtocol.poolTag`) with its 8-byte headroom as the relay's envelope (`RelayEnvelope`:
/// kind, this pool's id, local worker). All MPI goes through `MPIService` (one thread in MPI
/// at a time): sends are non-blocking (`MPI_Isend`; a rank with 16 incomplete sends per slot
/// takes no more), and `poll` pumps the service — this pool's messages come straight here,
/// those another thread's pump received come from the pool's inbox. Waiting is
/// test-then-sleep (`IdleBackoff`), cut short by `wake()`. Only the engine thread calls it.
///
/// A local worker that dies (a crashing task, a time limit, a cancellation) is replaced by its
/// rank; a rank that dies ends the job (MPI's fault model).
final class MPIBackend: PoolBackend, @unchecked Sendable {
    static let maxPendingSends = 16

    let workerCount: Int
    let canReplaceWorkers = true
    /// A worker rank sends its result without waiting (`RankRelay`); past Open MPI's eager
    /// limit (4 KiB on shared memory with `btl_vader_single_copy_mechanism=none`, 64 KiB over
    /// TCP) the message goes by rendezvous, whose data moves only when the rank next calls
    /// MPI. Measured on Mandelbrot rows (32 KiB results): with two tasks in hand a worker
    /// waited for rank 0 before every other task.
    let lateReplyBytes: Int? = MPIService.shortMessageBytes
    /// A task travels rank 0 → worker rank → local worker and back, with a sleeping hop on
    /// each side when the machine is full: short tasks are queued a millisecond deep.
    let pipelineNanoseconds: Int64 = 1_000_000
    /// Rank 0's pool pumps MPI for served objects while it lives (`MPIService`): at least
    /// every millisecond, as its idle backoff does.
    let idleCheckNanoseconds: Int64 = IdleBackoff.longestSleep
    private let service = MPIService.shared
    /// This pool's id in every envelope.
    let pool: UInt16
    private let rootHost: String
    /// Whether the ranks' local workers tag their output (`Pool(tagOutput:)`, else rank 0's
    /// `SWIFTMP_TAG_OUTPUT`), sent with `open`.
    private let tagOutput: Bool

    /// One local worker of one rank.
    struct Slot {
        let rank: Int
        let local: Int
        let host: String
        var pid: pid_t?
        /// Its progress words when it ended (`RelayEnvelope.Up.ended`), until replaced.
        var ending: RelayEnvelope.Ending?
        var stopped = false
        var stopSent = false
    }
    private var slots: [Slot]
    /// How the ranks schedule (`RankScheduling`): with `.node` each slot is a whole rank, which
    /// runs its own engine over its local workers (`NodeScheduler`) and gets bundles.
    let scheduling: RankScheduling
    /// Per slot: how many local workers run its inputs (1 per slot when relaying).
    private let laneCounts: [Int]
    /// With `.node`: per slot, the pid of each local worker (`started`), for `placements()`
    /// and log records.
    private var localPids: [[pid_t?]]
    /// `maxTasksPerChild`, applied by the ranks themselves with `.node`.
    private let maxTasksPerChild: Int?
    /// The ranks the pool uses, in order, with their first slot and slot count.
    private let ranks: [(rank: Int, first: Int, count: Int)]
    /// Rank → index in `ranks` (-1: not in the pool).
    private let rankIndex: [Int]
    private let wakeWord = WakeWord()

    // Engine thread only.
    /// Per rank of the pool: whether it answered `close`.
    private var closed: [Bool]
    private var failure: PoolError?
    private var backoff = IdleBackoff()
    private var isShutDown = false
    /// Builds `stop` and relay control messages.
    private var scratch = WireWriter(capacity: 64)
    /// Per rank of the pool: what this round sends it, gathered into one MPI message (`RelayBatch`)
    /// and sent by `flush()` — at the end of the engine's round, or before anything waits.
    private var outboxes: [RelayBatch]
    private var hasOutgoing = false

    /// Leases the job's worker ranks' local workers for a new pool: `perRank` on each (nil:
    /// `SWIFTMP_PROCESSES_PER_RANK` from rank 0's environment, else each rank's default,
    /// `RankRelay.defaultLocalWorkers`), at most `limit` in all.
    init(
        limit: Int?, perRank: Int?, tagOutput: Bool? = nil, scheduling: RankScheduling? = nil,
        maxTasksPerChild: Int? = nil
    ) throws {
        self.tagOutput = OutputTagging.isEnabled(option: tagOutput)
        self.maxTasksPerChild = maxTasksPerChild
        var perRank = perRank
        if perRank == nil, let text = getenv("SWIFTMP_PROCESSES_PER_RANK").map({ String(cString: $0) }) {
            guard let value = Int(text), value >= 1, value <= 4096 else {
                throw PoolError(
                    .invalidArgument,
                    "SWIFTMP_PROCESSES_PER_RANK=\(text): give a number of local workers per "
                        + "worker rank between 1 and 4096, or unset it (each rank then hosts one per CPU it may use)")
            }
            perRank = value
        }
        let requested = try scheduling ?? RankScheduling.fromEnvironment()
        let wakeWord = self.wakeWord
        let lease = try service.openPool(limit: limit, perRank: perRank) { wakeWord.wake() }
        pool = lease.pool
        rootHost = lease.hosts[0]
        let scheduling = requested ?? RankScheduling.automatic(localWorkers: lease.ranks.map(\.count))
        self.scheduling = scheduling
        var slots: [Slot] = []
        var lanes: [Int] = []
        var ranks: [(rank: Int, first: Int, count: Int)] = []
        var rankIndex = Array(repeating: -1, count: lease.hosts.count)
        for (rank, count) in lease.ranks {
            rankIndex[rank] = ranks.count
            switch scheduling {
            case .node:
                ranks.append((rank, slots.count, 1))
                slots.append(Slot(rank: rank, local: 0, host: lease.hosts[rank]))
                lanes.append(count)
            case .relay:
                ranks.append((rank, slots.count, count))
                for local in 0..<count { slots.append(Slot(rank: rank, local: local, host: lease.hosts[rank])) }
                lanes += Array(repeating: 1, count: count)
            }
        }
        laneCounts = lanes
        localPids = lanes.map { Array(repeating: nil, count: scheduling == .node ? $0 : 0) }
        self.slots = slots
        self.ranks = ranks
        self.rankIndex = rankIndex
        workerCount = slots.count
        closed = Array(repeating: false, count: ranks.count)
        outboxes = Array(repeating: RelayBatch(pool: lease.pool, limit: MPIService.shortMessageBytes), count: ranks.count)
    }

    var schedulesInputs: Bool { scheduling == .node }
    func lanes(of worker: Int) -> Int { laneCounts[worker] }
    var processCount: Int { laneCounts.reduce(0, +) }

    func placements() -> [WorkerPlacement] {
        guard scheduling == .node else {
            return slots.indices.map { WorkerPlacement(slot: $0, pid: slots[$0].pid, rank: slots[$0].rank, host: slots[$0].host) }
        }
        var places: [WorkerPlacement] = []
        for (slot, pids) in localPids.enumerated() {
            for pid in pids { places.append(WorkerPlacement(slot: places.count, pid: pid, rank: slots[slot].rank, host: slots[slot].host)) }
        }
        return places
    }

    /// Asks a scheduling rank to cancel what it holds of `task`.
    func cancel(task: UInt64, on worker: Int) {
        guard scheduling == .node else { return }
        RelayEnvelope.message(RelayEnvelope.Down.cancel.rawValue, pool: pool, local: 0, into: &scratch) { $0.write(task) }
        sendControl(scratch, toRank: rankIndex[slots[worker].rank])
    }

    var summary: String {
        let distinct = Set(ranks.map { slots[$0.first].host } + [rootHost]).sorted()
        let counts = Set(ranks.indices.map { laneTotal(ofRank: $0) })
        let perRank =
            counts.count == 1
            ? "\(counts.first!) local worker\(counts.first! == 1 ? "" : "s") each"
            : "local workers " + ranks.indices.map { "\(laneTotal(ofRank: $0))" }.joined(separator: "+")
        let listed = ranks.map(\.rank)
        let contiguous = listed == Array((listed.first ?? 1)...(listed.last ?? 1))
        let which = contiguous ? "ranks \(listed.first ?? 1)…\(listed.last ?? 1)" : "ranks " + listed.map(String.init).joined(separator: ", ")
        let scheduled = scheduling == .node ? ", each rank scheduling its own" : ""
        return "mpi, \(processCount) worker\(processCount == 1 ? "" : "s") on \(ranks.count) worker rank\(ranks.count == 1 ? "" : "s") "
            + "(\(which), \(perRank)\(scheduled)) on \(distinct.count) host\(distinct.count == 1 ? "" : "s") (\(distinct.joined(separator: ", ")))"
    }

    /// The local workers the rank at `index` hosts for this pool.
    private func laneTotal(ofRank index: Int) -> Int {
        (ranks[index].first..<(ranks[index].first + ranks[index].count)).reduce(0) { $0 + laneCounts[$1] }
    }

    /// Asks every rank of the pool to start its local workers (they answer `started`).
    func start() throws {
        for index in ranks.indices {
            let count = laneTotal(ofRank: index)
            RelayEnvelope.message(RelayEnvelope.Down.open.rawValue, pool: pool, local: 0, into: &scratch) {
                [tagOutput, scheduling, maxTasksPerChild] in
                $0.write(UInt32(count))
                $0.write(UInt8(tagOutput ? 1 : 0))
                $0.write(UInt8(scheduling == .node ? 1 : 0))
                $0.write(UInt32(clamping: maxTasksPerChild ?? 0))
            }
            sendControl(scratch, toRank: index)
        }
        if let failure { throw failure }
    }

    func send(_ message: inout WireWriter, to worker: Int) {
        message.patch(RelayEnvelope.word(RelayEnvelope.Down.forward.rawValue, pool: pool, local: slots[worker].local), at: 0)
        message.bytes.withUnsafeBytes { post($0, toRank: rankIndex[slots[worker].rank]) }
    }

    func stop(worker: Int) {
        slots[worker].stopSent = true
        MasterCodec.stop(into: &scratch)
        send(&scratch, to: worker)
    }

    /// Sends a control message now, after what the rank's outbox holds.
    private func sendControl(_ message: WireWriter, toRank index: Int) {
        message.bytes.withUnsafeBytes { post($0, toRank: index) }
        flush()
    }

    /// Queues a message for the rank at `index` in its outbox (a long one goes at once, after
    /// what the outbox holds).
    private func post(_ bytes: UnsafeRawBufferPointer, toRank index: Int) {
        guard !isShutDown, failure == nil else { return }
        if outboxes[index].wouldOverflow(adding: bytes.count) { flush(rank: index) }
        if bytes.count > outboxes[index].limit {
            transmit(bytes, toRank: index)
        } else {
            outboxes[index].append(bytes)
            hasOutgoing = true
        }
    }

    func flush() {
        guard hasOutgoing else { return }
        hasOutgoing = false
        for index in outboxes.indices where !outboxes[index].isEmpty { flush(rank: index) }
    }

    private func flush(rank index: Int) {
        outboxes[index].flush { transmit($0, toRank: index) }
    }

    private func transmit(_ bytes: UnsafeRawBufferPointer, toRank index: Int) {
        guard !isShutDown, failure == nil else { return }
        do {
            try service.send(bytes, toRank: ranks[index].rank)
        } catch {
            failure =
                error as? PoolError
                ?? PoolError(
                    .transport,
                    "cannot send to worker rank \(ranks[index].rank) on "
                        + "\(slots[ranks[index].first].host): \(error)")
        }
        backoff.noteActivity()
    }

    func canAccept(worker: Int) -> Bool {
        let index = rankIndex[slots[worker].rank]
        return slots[worker].ending == nil && service.pendingSends(toRank: ranks[index].rank) < Self.maxPendingSends * ranks[index].count
    }

    func poll(_ handler: (BackendEvent) -> Void) -> Bool {
        flush()
        if let failure {
            handler(.failed(failure))
            self.failure = nil
            isShutDown = true
            return true
        }
        var progressed = false
        do {
            progressed = try service.pump(for: pool) { rank, bytes in relayed(bytes, fromRank: rank, handler) }
        } catch {
            failure = error as? PoolError ?? PoolError(.transport, "MPI failed between rank 0 and the worker ranks: \(error)")
            return true
        }
        for (rank, bytes) in service.takeInbox(of: pool) {
            progressed = true
            bytes.withUnsafeBytes { relayed($0, fromRank: rank, handler) }
        }
        if progressed { backoff.noteActivity() }
        return progressed
    }

    /// One message of this pool from `rank`: a local worker's message, start or end, or a
    /// batch of them (`RelayBatch`).
    private func relayed(_ bytes: UnsafeRawBufferPointer, fromRank rank: Int, _ handler: (BackendEvent) -> Void) {
        if RelayEnvelope.read(bytes)?.kind == RelayBatch.kind {
            do {
                try RelayBatch.forEach(in: bytes) { relayed($0, fromRank: rank, handler) }
            } catch {
                failure = PoolError(.protocolViolation, "worker rank \(rank) sent a batch this pool cannot read: \(error)")
            }
            return
        }
        let index = rank < rankIndex.count ? rankIndex[rank] : -1
        guard index >= 0, let (kind, _, local) = RelayEnvelope.read(bytes), let up = RelayEnvelope.Up(rawValue: kind) else {
            failure = PoolError(.protocolViolation, "worker rank \(rank) sent a message this pool cannot read")
            return
        }
        let body = UnsafeRawBufferPointer(rebasing: bytes[RelayEnvelope.size...])
        switch up {
        case .closed:
            closed[index] = true
            // Every local worker of the pool on that rank has exited: what they held is dropped.
            let pool = self.pool
            MPIObjectRegistry.shared.dropProcesses { ObjectRequester.rank(of: $0) == rank && ObjectRequester.local(of: $0) >> 16 == Int(pool) }
            return
        case .failed:
            var reader = WireReader(body)
            failure = PoolError(.startFailed, (try? reader.read(String.self)) ?? "(unreadable)")
            return
        default:
            break
        }
        if scheduling == .node {
            relayedFromScheduler(up, body, fromRank: rank, slot: ranks[index].first, local: local, handler)
            return
        }
        guard local < ranks[index].count else {
            failure = PoolError(.protocolViolation, "worker rank \(rank) named local worker \(local) of \(ranks[index].count)")
            return
        }
        let slot = ranks[index].first + local
        switch up {
        case .message:
            if WorkerReply.isStopped(body) { slots[slot].stopped = true }
            handler(.decoding(body, from: slot))
        case .started:
            var reader = WireReader(body)
            slots[slot].pid = (try? reader.read(Int32.self)).map { pid_t($0) }
            handler(.started(worker: slot))
        case .notStarted:
            // No worker: nothing to stop at shutdown.
            slots[slot].stopped = true
            slots[slot].stopSent = true
            let refusal = RelayEnvelope.readRefusal(body)
            handler(.notStarted(worker: slot, RemoteStartFailure(errno: refusal.errno, description: refusal.why)))
        case .ended:
            do {
                let ending = try RelayEnvelope.readEnding(body)
                slots[slot].ending = ending
                // A local worker that ended never releases the handles it held.
                dropObjects(of: ending, rank: rank)
                slots[slot].stopped = true
                handler(.ended(worker: slot, ending.exit))
            } catch {
                failure = PoolError(.protocolViolation, "worker rank \(rank) sent an unreadable end: \(error)")
            }
        case .closed, .failed:
            break
        }
    }

    /// What the local worker process that ended held at rank 0's object service is dropped
    /// (its handles, its parked requests, what it owned).
    private func dropObjects(of ending: RelayEnvelope.Ending, rank: Int) {
        guard ending.requester != 0 else { return }
        let process = ObjectRequester.id(rank: rank, local: Int(ending.requester))
        MPIObjectRegistry.shared.dropProcesses { $0 == process }
    }

    /// A message from a rank that schedules its local workers (`.node`): its answers are the
    /// slot's; its local workers' starts and ends are noted (their pids; the objects an ended
    /// one held are dropped), never reported to the engine — the rank replaced the worker and
    /// charged the input already.
    private func relayedFromScheduler(
        _ up: RelayEnvelope.Up, _ body: UnsafeRawBufferPointer, fromRank rank: Int, slot: Int, local: Int,
        _ handler: (BackendEvent) -> Void
    ) {
        guard local < laneCounts[slot] else {
            failure = PoolError(.protocolViolation, "worker rank \(rank) named local worker \(local) of \(laneCounts[slot])")
            return
        }
        switch up {
        case .message:
            if WorkerReply.isStopped(body) { slots[slot].stopped = true }
            if body.first == WorkerMessage.log.rawValue, case .reply(_, .log(let record)) = BackendEvent.decoding(body, from: slot) {
                record.emit(from: WorkerDied(pid: localPids[slot][local], rank: rank, host: slots[slot].host))
                return
            }
            handler(.decoding(body, from: slot))
        case .started:
            var reader = WireReader(body)
            localPids[slot][local] = (try? reader.read(Int32.self)).map { pid_t($0) }
        case .ended:
            if let ending = try? RelayEnvelope.readEnding(body) { dropObjects(of: ending, rank: rank) }
            localPids[slot][local] = nil
        case .closed, .failed, .notStarted:
            break
        }
    }

    /// With tasks in flight, sleeps are capped at 100 µs while the tasks' length is unknown
    /// or short. Workers send results without waiting for rank 0 and hold a further task, so
    /// a short sleep costs them nothing, while each rank-0 wake-up preempts a worker on a full
    /// machine (measured with 2 workers on 2 cores, π efficiency: 0.98 with 100 µs, 0.94
    /// with 300 µs, 0.80 with 1 ms — with a fixed cap, before the cap followed the tasks).
    static let busySleep: Int64 = 100_000
    /// With long tasks the cap is a tenth of the time between replies, at most 2 ms: a
    /// worker still has its next task in hand when rank 0 answers late, and rank 0 wakes
    /// ~10 times per task instead of every 100 µs.
    static let longestBusySleep: Int64 = 2_000_000
    /// Replies further apart than this: no spinning or yielding after activity either (each
    /// reply used to cost rank 0 up to 300 µs of spin-and-yield while the workers computed).
    static let quietReplyInterval: Int64 = 1_000_000
    /// The same for ranks that schedule their own workers (`.node`): each holds a second
    /// bundle while rank 0 answers the first, so rank 0 spins only for replies closer than
    /// this (a hot `apply`), not between bundles (its spinning was most of its CPU per task).
    static let quietBundleInterval: Int64 = 200_000

    /// Tasks that use rank 0's shared objects wait for its answers: for this long after an
    /// object request, rank 0 polls as for short tasks.
    static let objectActivityNanoseconds: UInt64 = 100_000_000

    /// Set by the engine before each wait (`pace(replyEvery:)`).
    private var replyInterval: Int64 = 0

    func pace(replyEvery nanoseconds: Int64) {
        replyInterval = nanoseconds
    }

    func waitForActivity(spinning: Bool, timeoutNanoseconds: Int64, ready: () -> Bool) {
        var interval = replyInterval
        let lastObjectRequest = service.lastObjectRequest
        if lastObjectRequest != 0, monotonicNanoseconds() &- lastObjectRequest < Self.objectActivityNanoseconds {
            interval = 0
        }
        let longest = min(Self.longestBusySleep, max(Self.busySleep, interval / 10))
        wait(
            timeoutNanoseconds: timeoutNanoseconds, longestSleep: longest,
            eager: interval < (scheduling == .node ? Self.quietBundleInterval : Self.quietReplyInterval), ready: ready)
    }

    /// Nothing in flight: sleeps grow to 1 ms (no busy core while the program runs; the
    /// service thread serves objects meanwhile).
    func waitIdle(timeoutNanoseconds: Int64, ready: () -> Bool) {
        wait(timeoutNanoseconds: timeoutNanoseconds, longestSleep: IdleBackoff.longestSleep, ready: ready)
    }

    private func wait(timeoutNanoseconds: Int64, longestSleep: Int64, eager: Bool = true, ready: () -> Bool) {
        flush()
        let deadline = monotonicNanoseconds() &+ UInt64(max(0, timeoutNanoseconds))
        while true {
            wakeWord.arm()
            if ready() || failure != nil { return }
            if service.hasArrivals(for: pool) { return }
            if monotonicNanoseconds() >= deadline { return }
            backoff.pause(until: deadline, longest: longestSleep, eager: eager) { wakeWord.sleep(nanoseconds: $0) }
        }
    }

    func wake() {
        wakeWord.wake()
    }

    /// Asks the slot's rank for a new local worker (after the old one's end was reported); the
    /// rank answers `started` or `notStarted`.
    func replace(worker: Int) throws -> ReplacementStart {
        slots[worker].ending = nil
        slots[worker].stopped = false
        slots[worker].stopSent = false
        slots[worker].pid = nil
        RelayEnvelope.message(RelayEnvelope.Down.replace.rawValue, pool: pool, local: slots[worker].local, into: &scratch)
        sendControl(scratch, toRank: rankIndex[slots[worker].rank])
        if let failure { throw failure }
        return .requested
    }

    func identity(of worker: Int) -> WorkerDied {
        WorkerDied(
            pid: slots[worker].pid, rank: slots[worker].rank, host: slots[worker].host,
            outOfMemory: slots[worker].ending?.outOfMemory ?? false)
    }

    /// Asks the slot's rank to kill its local worker; the end is reported as usual. A rank
    /// that schedules its own (`.node`) cannot be killed.
    func kill(worker: Int) -> Bool {
        guard scheduling == .relay else { return false }
        RelayEnvelope.message(RelayEnvelope.Down.kill.rawValue, pool: pool, local: slots[worker].local, into: &scratch)
        sendControl(scratch, toRank: rankIndex[slots[worker].rank])
        return true
    }

    /// The local workers' memory is on their rank: the engine cannot see where they are
    /// while they run (nothing is withdrawn), only when they ended (`finalProgress`).
    func progress(of worker: Int) -> WorkerProgress? { nil }

    func finalProgress(of worker: Int) -> (taken: UInt32, input: Int)? {
        slots[worker].ending.map { ($0.taken, $0.input) }
    }

    func endedWedged(worker: Int) -> Bool { slots[worker].ending?.wedged ?? false }

    func sendAttachments(_ segments: [SegmentStorage], to worker: Int) throws {
        try refusingAttachments(segments, summary: summary)
    }

    /// Sends `stop` to every worker that has not had one and waits until `deadline` for their
    /// acknowledgements (dropping any other reply), then tells every rank to close the pool
    /// (its local workers get what is left of the time, then are killed) and waits a little
    /// for the ranks' `closed`. The service gives the pool's workers to other pools when the
    /// ranks have answered (it waits for them before leasing them again).
    func shutdown(deadline: UInt64) {
        defer {
            isShutDown = true
            service.detach(pool: pool, error: failure)
        }
        guard !isShutDown else { return }
        // `send` records a transport failure in `failure`, which ends the waits.
        for worker in slots.indices where !slots[worker].stopSent && slots[worker].ending == nil { stop(worker: worker) }
        drainReplies(until: deadline) { slots.allSatisfy(\.stopped) }
        let grace = deadline > monotonicNanoseconds() ? (deadline - monotonicNanoseconds()) / 1_000_000 : 0
        for index in ranks.indices {
            RelayEnvelope.message(RelayEnvelope.Down.close.rawValue, pool: pool, local: 0, into: &scratch) {
                $0.write(UInt32(clamping: grace))
            }
            sendControl(scratch, toRank: index)
        }
        // The ranks kill what is left at once when the deadline has passed (terminate).
        drainReplies(until: max(deadline, monotonicNanoseconds()) &+ 1_000_000_000) { !closed.contains(false) }
    }

    /// During shutdown: takes this pool's messages (noting `stopped`, `ended`, `closed`,
    /// dropping the rest) until `done()` or `deadline`.
    private func drainReplies(until deadline: UInt64, _ done: () -> Bool) {
        while !done() && failure == nil && !isShutDown {
            let moved = poll { _ in }
            if moved { continue }
            if monotonicNanoseconds() >= deadline { return }
            ForkGuard.whileBlocked { backoff.pause(until: deadline) }
        }
    }
}
#endif
