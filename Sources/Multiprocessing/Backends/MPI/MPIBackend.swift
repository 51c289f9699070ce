import MPI
#if canImport(Glibc)
import Glibc
#endif

/// The worker ranks of an mpirun job as a pool's workers (ARCHITECTURE.md §3, §8): each worker
/// rank hosts local worker processes (`RankRelay`) and relays the pool's messages; slot i is
/// one local worker of one rank (`Slot`), ranks in order, `processesPerRank` (or the rank's
/// default) each.
///
/// Every message is one MPI message on the job's duplicated world communicator
/// (`MPIProtocol.poolTag`) with its 8-byte headroom as the relay's envelope (`RelayEnvelope`).
/// Sends are non-blocking (`MPI_Isend`, the request kept until complete; a rank with 16
/// incomplete sends per slot takes no more); receives are matched probes (`MPI_Improbe` +
/// `MPI_Mrecv`) that never wait. Waiting is test-then-sleep (`IdleBackoff`), cut short by
/// `wake()`. Only the engine thread calls it.
///
/// A local worker that dies (a crashing task, a time limit, a cancellation) is replaced by its
/// rank; a rank that dies ends the job (MPI's fault model).
final class MPIBackend: PoolBackend, @unchecked Sendable {
    static let maxPendingSends = 16
    static let endedMessage = "the MPI pool ended while this request waited in rank 0 (shared objects are served while "
        + "an MPI pool is live): keep the pool open until its tasks are done"

    let workerCount: Int
    let canReplaceWorkers = true
    /// A worker rank sends its result without waiting (`RankRelay`); past Open MPI's eager
    /// limit (4 KiB on shared memory with `btl_vader_single_copy_mechanism=none`, 64 KiB over
    /// TCP) the message goes by rendezvous, whose data moves only when the rank next calls
    /// MPI. Measured on Mandelbrot rows (32 KiB results): with two tasks in hand a worker
    /// waited for rank 0 before every other task.
    let lateReplyBytes: Int? = MPIBackend.shortMessageBytes
    private let communicator: Communicator
    private let rootHost: String

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
    /// The ranks the pool uses, in order, with their first slot and slot count.
    private let ranks: [(rank: Int, first: Int, count: Int)]
    /// Rank → index in `ranks` (-1: not in the pool).
    private let rankIndex: [Int]
    private let wakeWord = WakeWord()

    // Engine thread only.
    /// Per rank of the pool: incomplete sends.
    private var pending: [[Request]]
    /// Per rank of the pool: whether it answered `close`.
    private var closed: [Bool]
    private var buffer: [UInt8] = []
    /// Per rank, its messages being received, oldest first. A result longer than the eager
    /// limit is matched at once but its data arrives only when the rank next calls MPI:
    /// `MPI_Mrecv` would hold rank 0 — and every other worker — that long, spinning.
    private var receiving: [[Incoming]]
    /// Messages up to this long are received at once (`MPI_Mrecv`): within the eager limit
    /// their data is all here when they are.
    static let shortMessageBytes = 4096 - 64

    /// A rank's message: being received, or short and received behind a longer one.
    private enum Incoming {
        case started(MatchedReceive)
        case received([UInt8])

        func isComplete() throws -> Bool {
            switch self {
            case .started(let receive): return try receive.request.test() != nil
            case .received: return true
            }
        }

        func withBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
            switch self {
            case .started(let receive): return try receive.withBytes(body)
            case .received(let bytes): return try bytes.withUnsafeBytes(body)
            }
        }

        var request: Request? {
            if case .started(let receive) = self { return receive.request }
            return nil
        }
    }
    /// Receives of messages from ranks outside the pool (never expected), left to complete.
    private var strays: [Request] = []
    private var failure: PoolError?
    private var backoff = IdleBackoff()
    private var isShutDown = false
    /// Whether this pool serves rank 0's shared objects to the workers (`MPIObjects`).
    private let servesObjects = MPIObjects.isServing
    /// Incomplete sends of object-service replies.
    private var objectSends: [Request] = []

    /// Takes the job's worker ranks for a new pool: `perRank` local workers on each (nil:
    /// `SWIFTMP_PROCESSES_PER_RANK` from rank 0's environment, else each rank's default,
    /// `RankRelay.defaultLocalWorkers`), at most `limit` in all.
    init(limit: Int?, perRank: Int?) throws {
        var perRank = perRank
        if perRank == nil, let text = getenv("SWIFTMP_PROCESSES_PER_RANK").map({ String(cString: $0) }) {
            guard let value = Int(text), value >= 1, value <= 4096 else {
                throw PoolError(.invalidArgument, "SWIFTMP_PROCESSES_PER_RANK=\(text): give a number of local workers per "
                    + "worker rank between 1 and 4096, or unset it (each rank then hosts one per CPU it may use)")
            }
            perRank = value
        }
        let lease = try MPIRoot.shared.openPool()
        guard lease.hosts.count > 1 else {
            MPIRoot.shared.closePool(draining: [], sends: [], error: nil)
            throw PoolError(.backendUnavailable, "the MPI job has no worker ranks: launch with mpirun -np 2 or more")
        }
        communicator = lease.communicator
        rootHost = lease.hosts[0]
        var slots: [Slot] = []
        var ranks: [(rank: Int, first: Int, count: Int)] = []
        var rankIndex = Array(repeating: -1, count: lease.hosts.count)
        for rank in 1..<lease.hosts.count {
            let left = (limit ?? .max) - slots.count
            guard left > 0 else { break }
            let count = min(left, perRank ?? lease.localWorkers[rank])
            rankIndex[rank] = ranks.count
            ranks.append((rank, slots.count, count))
            for local in 0..<count { slots.append(Slot(rank: rank, local: local, host: lease.hosts[rank])) }
        }
        self.slots = slots
        self.ranks = ranks
        self.rankIndex = rankIndex
        workerCount = slots.count
        pending = Array(repeating: [], count: ranks.count)
        receiving = Array(repeating: [], count: ranks.count)
        closed = Array(repeating: false, count: ranks.count)
        if servesObjects {
            MPIObjectRegistry.shared.setWaker { [weak self] in self?.wake() }
        }
    }

    var summary: String {
        let distinct = Set(ranks.map { slots[$0.first].host } + [rootHost]).sorted()
        let counts = Set(ranks.map(\.count))
        let perRank = counts.count == 1 ? "\(counts.first!) local worker\(counts.first! == 1 ? "" : "s") each"
            : "local workers " + ranks.map { "\($0.count)" }.joined(separator: "+")
        return "mpi, \(workerCount) worker\(workerCount == 1 ? "" : "s") on \(ranks.count) worker rank\(ranks.count == 1 ? "" : "s") "
            + "(ranks 1…\(ranks.last?.rank ?? 0), \(perRank)) on \(distinct.count) host\(distinct.count == 1 ? "" : "s") "
            + "(\(distinct.joined(separator: ", ")))"
    }

    /// Asks every rank of the pool to start its local workers (they answer `started`).
    func start() throws {
        for (index, entry) in ranks.enumerated() {
            RelayEnvelope.message(RelayEnvelope.Down.open.rawValue, local: 0, into: &scratch) { $0.write(UInt32(entry.count)) }
            sendControl(scratch, toRank: index)
        }
        if let failure { throw failure }
    }

    func send(_ message: inout WireWriter, to worker: Int) {
        message.patch(RelayEnvelope.word(RelayEnvelope.Down.forward.rawValue, local: slots[worker].local), at: 0)
        message.bytes.withUnsafeBytes { send($0, toRank: rankIndex[slots[worker].rank]) }
    }

    func stop(worker: Int) {
        slots[worker].stopSent = true
        MasterCodec.stop(into: &scratch)
        send(&scratch, to: worker)
    }

    /// Builds `stop` and relay control messages.
    private var scratch = WireWriter(capacity: 64)

    private func sendControl(_ message: WireWriter, toRank index: Int) {
        message.bytes.withUnsafeBytes { send($0, toRank: index) }
    }

    private func send(_ bytes: UnsafeRawBufferPointer, toRank index: Int) {
        guard !isShutDown, failure == nil else { return }
        do {
            pending[index].append(try communicator.isend(bytes, to: ranks[index].rank, tag: MPIProtocol.poolTag))
        } catch {
            failure = PoolError(.transport, "cannot send to worker rank \(ranks[index].rank) on "
                + "\(slots[ranks[index].first].host): \(error)")
        }
        backoff.noteActivity()
    }

    func canAccept(worker: Int) -> Bool {
        let index = rankIndex[slots[worker].rank]
        return slots[worker].ending == nil && pending[index].count < Self.maxPendingSends * ranks[index].count
    }

    /// Forgets completed sends; returns whether any completed.
    private func completeSends() throws -> Bool {
        var completed = false
        for index in ranks.indices {
            while let head = pending[index].first, try head.test() != nil {
                pending[index].removeFirst()
                completed = true
            }
        }
        return completed
    }

    func poll(_ handler: (BackendEvent) -> Void) -> Bool {
        if let failure {
            handler(.failed(failure))
            self.failure = nil
            isShutDown = true
            return true
        }
        var progressed = false
        do {
            progressed = try completeSends()
            var received = 0
            while received < 256,
                  let arrival = try communicator.receiveIfAvailable(from: .any, tag: .value(MPIProtocol.poolTag), into: &buffer,
                                                                     waitingAtMost: Self.shortMessageBytes) {
                received += 1
                switch arrival {
                case .received(let status):
                    let index = status.source < rankIndex.count ? rankIndex[status.source] : -1
                    guard index >= 0 else { continue }
                    if receiving[index].isEmpty {
                        buffer.withUnsafeBytes { relayed($0, fromRank: index, handler) }
                    } else {
                        receiving[index].append(.received(buffer))  // after the longer one before it
                    }
                case .started(let incoming):
                    let index = incoming.source < rankIndex.count ? rankIndex[incoming.source] : -1
                    if index >= 0 {
                        receiving[index].append(.started(incoming))
                    } else {
                        strays.append(incoming.request)
                    }
                }
            }
            if !strays.isEmpty { strays = try strays.filter { try $0.test() == nil } }
            // Each rank's messages in the order it sent them.
            for index in ranks.indices {
                while let head = receiving[index].first, try head.isComplete() {
                    receiving[index].removeFirst()
                    received += 1
                    head.withBytes { relayed($0, fromRank: index, handler) }
                }
            }
            progressed = progressed || received > 0
            if servesObjects, try serveObjects() { progressed = true }
        } catch {
            failure = PoolError(.transport, "MPI failed between rank 0 and the worker ranks: \(error)")
            return true
        }
        if progressed { backoff.noteActivity() }
        return progressed
    }

    /// One message from the rank at `index` of `ranks`: a local worker's message, start or end.
    private func relayed(_ bytes: UnsafeRawBufferPointer, fromRank index: Int, _ handler: (BackendEvent) -> Void) {
        guard let (kind, local) = RelayEnvelope.read(bytes), let up = RelayEnvelope.Up(rawValue: kind) else {
            failure = PoolError(.protocolViolation, "worker rank \(ranks[index].rank) sent a message without a relay envelope")
            return
        }
        let body = UnsafeRawBufferPointer(rebasing: bytes[RelayEnvelope.size...])
        if up == .closed {
            closed[index] = true
            return
        }
        if up == .failed {
            var reader = WireReader(body)
            let reason = (try? reader.read(String.self)) ?? "(unreadable)"
            failure = PoolError(.startFailed, reason)
            return
        }
        guard local < ranks[index].count else {
            failure = PoolError(.protocolViolation, "worker rank \(ranks[index].rank) named local worker \(local) of "
                + "\(ranks[index].count)")
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
        case .ended:
            do {
                let ending = try RelayEnvelope.readEnding(body)
                slots[slot].ending = ending
                slots[slot].stopped = true
                handler(.ended(worker: slot, ending.exit))
            } catch {
                failure = PoolError(.protocolViolation, "worker rank \(ranks[index].rank) sent an unreadable end: \(error)")
            }
        case .closed, .failed:
            break
        }
    }

    /// Answers the worker ranks' object requests (rank 0's object service, ARCHITECTURE.md §8):
    /// receives them, expires parked ones whose timeout passed, sends every ready reply.
    /// Returns whether anything moved.
    private func serveObjects() throws -> Bool {
        let registry = MPIObjectRegistry.shared
        var moved = false
        while let status = try communicator.receiveIfAvailable(from: .any, tag: .value(MPIObjectProtocol.requestTag), into: &buffer) {
            // [local worker (UInt32)][request], from the rank that hosts it (`RankRelay`).
            buffer.withUnsafeBytes { raw in
                guard raw.count >= 4 else { return }
                let local = Int(UInt32(littleEndian: raw.loadUnaligned(as: UInt32.self)))
                registry.handle(UnsafeRawBufferPointer(rebasing: raw[4...]),
                                from: ObjectRequester.id(rank: status.source, local: local))
            }
            moved = true
        }
        if moved { lastObjectRequest = monotonicNanoseconds() }
        registry.expire(now: monotonicNanoseconds())
        try sendObjectReplies()
        objectSends = try objectSends.filter { try $0.test() == nil }
        return moved
    }

    private func sendObjectReplies() throws {
        for reply in MPIObjectRegistry.shared.takeReplies() {
            objectSends.append(try MPIObjectProtocol.sendRelayed(reply.bytes, to: reply.rank, communicator))
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

    /// Tasks that use rank 0's shared objects wait for its answers: for this long after an
    /// object request, rank 0 polls as for short tasks.
    static let objectActivityNanoseconds: UInt64 = 100_000_000

    /// Set by the engine before each wait (`pace(replyEvery:)`).
    private var replyInterval: Int64 = 0
    /// When the last object request arrived (monotonic ns; 0: never).
    private var lastObjectRequest: UInt64 = 0

    func pace(replyEvery nanoseconds: Int64) {
        replyInterval = nanoseconds
    }

    func waitForActivity(spinning: Bool, timeoutNanoseconds: Int64, ready: () -> Bool) {
        var interval = replyInterval
        if lastObjectRequest != 0, monotonicNanoseconds() &- lastObjectRequest < Self.objectActivityNanoseconds {
            interval = 0
        }
        let longest = min(Self.longestBusySleep, max(Self.busySleep, interval / 10))
        wait(timeoutNanoseconds: timeoutNanoseconds, longestSleep: longest,
             eager: interval < Self.quietReplyInterval, ready: ready)
    }

    /// Nothing in flight: sleeps grow to 1 ms (no busy core while the program runs).
    func waitIdle(timeoutNanoseconds: Int64, ready: () -> Bool) {
        wait(timeoutNanoseconds: timeoutNanoseconds, longestSleep: IdleBackoff.longestSleep, ready: ready)
    }

    private func wait(timeoutNanoseconds: Int64, longestSleep: Int64, eager: Bool = true, ready: () -> Bool) {
        var deadline = monotonicNanoseconds() &+ UInt64(max(0, timeoutNanoseconds))
        if servesObjects, let parked = MPIObjectRegistry.shared.nextDeadline { deadline = min(deadline, parked) }
        while true {
            wakeWord.arm()
            if ready() || failure != nil { return }
            do {
                if try communicator.iprobe(from: .any, tag: .value(MPIProtocol.poolTag)) != nil { return }
                if servesObjects {
                    if MPIObjectRegistry.shared.hasReplies { return }
                    if try communicator.iprobe(from: .any, tag: .value(MPIObjectProtocol.requestTag)) != nil { return }
                }
                if try completeSends() { return }
                for index in ranks.indices {
                    if let head = receiving[index].first, try head.isComplete() { return }
                }
            } catch {
                failure = PoolError(.transport, "MPI failed between rank 0 and the worker ranks: \(error)")
                return
            }
            if monotonicNanoseconds() >= deadline { return }
            backoff.pause(until: deadline, longest: longestSleep, eager: eager) { wakeWord.sleep(nanoseconds: $0) }
        }
    }

    func wake() {
        wakeWord.wake()
    }

    /// Asks the slot's rank for a new local worker (after the old one's end was reported).
    func replace(worker: Int) throws {
        slots[worker].ending = nil
        slots[worker].stopped = false
        slots[worker].stopSent = false
        slots[worker].pid = nil
        RelayEnvelope.message(RelayEnvelope.Down.replace.rawValue, local: slots[worker].local, into: &scratch)
        sendControl(scratch, toRank: rankIndex[slots[worker].rank])
        if let failure { throw failure }
    }

    func identity(of worker: Int) -> WorkerDied {
        WorkerDied(pid: slots[worker].pid, rank: slots[worker].rank, host: slots[worker].host)
    }

    /// Asks the slot's rank to kill its local worker; the end is reported as usual.
    func kill(worker: Int) -> Bool {
        RelayEnvelope.message(RelayEnvelope.Down.kill.rawValue, local: slots[worker].local, into: &scratch)
        sendControl(scratch, toRank: rankIndex[slots[worker].rank])
        return true
    }

    /// The local workers' memory is on their rank: the engine cannot see where they are
    /// while they run (nothing is withdrawn), only when they ended (`finalProgress`).
    func progress(of worker: Int) -> WorkerProgress? { nil }

    func finalProgress(of worker: Int) -> (taken: UInt32, input: Int)? {
        slots[worker].ending.map { ($0.taken, $0.input) }
    }

    func sendAttachments(_ segments: [SegmentStorage], to worker: Int) throws {
        try refusingAttachments(segments, summary: summary)
    }

    /// Sends `stop` to every worker that has not had one and waits until `deadline` for their
    /// acknowledgements (dropping any other reply), then tells every rank to close the pool
    /// (its local workers get what is left of the time, then are killed) and waits a little
    /// for the ranks' `closed`. Gives the MPI back to `MPIRoot` with the ranks that have not
    /// answered: it waits for them before the next pool, or at exit.
    func shutdown(deadline: UInt64) {
        if servesObjects {
            MPIObjectRegistry.shared.setWaker(nil)
            MPIObjectRegistry.shared.failParked(Self.endedMessage)
            if !isShutDown { try? transport { try sendObjectReplies() } }
        }
        guard !isShutDown else {
            MPIRoot.shared.closePool(draining: [], sends: pending.flatMap { $0 } + receiving.flatMap { $0.compactMap(\.request) } + strays,
                                     error: failure)
            return
        }
        var shutdownError: PoolError?
        do {
            try transport {
                MasterCodec.stop(into: &scratch)
                for worker in slots.indices where !slots[worker].stopSent && slots[worker].ending == nil {
                    slots[worker].stopSent = true
                    send(&scratch, to: worker)
                }
                try drainReplies(until: deadline) { slots.allSatisfy(\.stopped) }
                let grace = deadline > monotonicNanoseconds() ? (deadline - monotonicNanoseconds()) / 1_000_000 : 0
                for index in ranks.indices {
                    RelayEnvelope.message(RelayEnvelope.Down.close.rawValue, local: 0, into: &scratch) { $0.write(UInt32(clamping: grace)) }
                    sendControl(scratch, toRank: index)
                }
                // The ranks kill what is left at once when the deadline has passed (terminate).
                try drainReplies(until: max(deadline, monotonicNanoseconds()) &+ 1_000_000_000) { !closed.contains(false) }
                _ = try completeSends()
                if servesObjects {
                    MPIObjectRegistry.shared.failParked(Self.endedMessage)
                    try sendObjectReplies()
                }
            }
        } catch let caught as PoolError {
            shutdownError = caught
        } catch {
            shutdownError = PoolError(.transport, "\(error)")
        }
        isShutDown = true
        let busy = ranks.indices.filter { !closed[$0] }.map { ranks[$0].rank }
        // Receives still in progress complete (and are dropped) like the leftover sends.
        let unfinished = pending.flatMap { $0 } + objectSends + receiving.flatMap { $0.compactMap(\.request) } + strays
        MPIRoot.shared.closePool(draining: busy, sends: unfinished, error: shutdownError ?? failure)
        pending = Array(repeating: [], count: ranks.count)
        receiving = Array(repeating: [], count: ranks.count)
        strays = []
        objectSends = []
    }

    /// During shutdown: receives the ranks' messages (noting `stopped`, `ended`, `closed`,
    /// dropping the rest) and serves objects until `done()` or `deadline`.
    private func drainReplies(until deadline: UInt64, _ done: () -> Bool) throws {
        while !done() {
            _ = try completeSends()
            var moved = false
            for index in ranks.indices {
                while let head = receiving[index].first, try head.isComplete() {
                    receiving[index].removeFirst()
                    head.withBytes { relayed($0, fromRank: index) { _ in } }
                    moved = true
                }
            }
            if servesObjects, try serveObjects() { moved = true }
            while let status = try communicator.receiveIfAvailable(from: .any, tag: .value(MPIProtocol.poolTag), into: &buffer) {
                let index = status.source < rankIndex.count ? rankIndex[status.source] : -1
                if index >= 0 {
                    if receiving[index].isEmpty {
                        buffer.withUnsafeBytes { relayed($0, fromRank: index) { _ in } }
                    } else {
                        receiving[index].append(.received(buffer))
                    }
                }
                moved = true
            }
            if let failure { throw failure }
            if moved {
                backoff.noteActivity()
                continue
            }
            if monotonicNanoseconds() >= deadline { return }
            backoff.pause(until: deadline)
        }
    }
}
