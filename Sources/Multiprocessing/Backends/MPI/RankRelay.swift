#if MPI
import CSystemShims
import MPI
import Wire
#if canImport(Glibc)
import Glibc
#endif

/// A worker rank's serve loop (ARCHITECTURE.md §8). The rank runs no task itself: for each
/// MPI pool it hosts local worker processes (`LocalBackend`, forked from the rank; they never
/// call MPI) and relays the pool's messages between them and rank 0 (`RelayEnvelope`). A task
/// that crashes, exits or is killed (a time limit, a cancellation) ends only its local worker:
/// the rank reports the end with the worker's progress words, so rank 0's engine charges
/// exactly the input that was running, and starts a replacement when rank 0 asks.
///
/// Control messages answer rank 0's handshake and `terminate`. Waits on the local workers'
/// doorbell while they hold work (a reply wakes it at once) and polls MPI between; idles with
/// `IdleBackoff` (no busy core while rank 0's program runs).
struct RankRelay {
    let communicator: Communicator
    let build: BuildID
    private var buffer: [UInt8] = []
    private var backoff = IdleBackoff()
    private var sameBuild = false
    /// The local workers of each pool this rank serves (several pools may share a rank).
    private var pools: [UInt16: Hosted] = [:]

    private struct Hosted {
        let backend: LocalBackend
        /// Chunks forwarded and not answered yet (for pacing only).
        var outstanding = 0
        /// With `RankScheduling.node`: the engine this rank runs over the pool's local workers.
        var scheduler: NodeScheduler?
        /// Without a scheduler: what each local worker holds, watched for wedges.
        var watched: [WatchedWorker]
        /// With a scheduler: local workers whose replacement has not started yet (the
        /// engine's vacant slots); rank 0 is told their pid once they have one.
        var unstarted: Set<Int> = []

        init(backend: LocalBackend, scheduler: NodeScheduler?) {
            self.backend = backend
            self.scheduler = scheduler
            watched = Array(repeating: WatchedWorker(), count: backend.workerCount)
        }

        var isBusy: Bool { outstanding > 0 || scheduler?.isBusy == true }
    }

    /// A relayed local worker: rank 0's engine cannot see its progress words or its process,
    /// so the rank watches it as the engine watches its own (`WedgeWatch`): chunks forwarded
    /// to it are numbered 1, 2, … as its progress word counts the ones it takes, and it
    /// answers them in order.
    private struct WatchedWorker {
        var forwarded: UInt32 = 0
        var answered: UInt32 = 0
        var watch = WedgeWatch()
        /// Killed as wedged; said in its `ended` report.
        var wedged = false

        /// The first chunk it holds unanswered, if any.
        var firstUnanswered: UInt32? { forwarded == answered ? nil : answered &+ 1 }
    }
    /// When the rank last looked for wedged local workers (`killWedgedWorkers`).
    private var lastWedgeCheck: UInt64 = 0
    /// How many local workers this rank hosts when rank 0's pool does not say (sent in the
    /// handshake): see `defaultLocalWorkers`.
    private var defaultWorkers = 1
    /// Messages on their way to rank 0. Sent without waiting: a large result goes by
    /// rendezvous, which completes only when rank 0 next polls.
    private var sending: [Request] = []
    private var scratch = WireWriter(capacity: 256)
    /// The local workers' messages of one pass, sent to rank 0 together (`relayReplies`).
    private var outbox = RelayBatch(pool: 0, limit: MPIService.shortMessageBytes)
    /// Whether the pool message just handled forwarded a lone task (`handlePoolMessage`).
    private var forwardedLone = false
    /// The local workers' object requests and the answers they have not read yet: an answer
    /// that would hand something over to a worker that died goes back to rank 0.
    private var objectRequests = RelayedObjectRequests()

    init(communicator: Communicator, build: BuildID) {
        self.communicator = communicator
        self.build = build
    }

    /// Returns after `terminate`.
    mutating func serve() throws {
        ForkGuard.enterActivity()
        defer { ForkGuard.leaveActivity() }
        while true {
            var moved = false
            if !sending.isEmpty { moved = try completeSends() }
            while let status = try communicator.receiveIfAvailable(from: .rank(0), tag: .any, into: &buffer) {
                moved = true
                if status.tag == MPIProtocol.poolTag {
                    guard sameBuild else { continue } // rank 0 refuses pools then; never happens
                    forwardedLone = false
                    try handlePoolMessages()
                    // After a lone task (a round trip), the local workers' replies go before the
                    // next probe: waking its worker on this CPU has often run it already, and a
                    // probe that finds nothing yields the CPU inside MPI first
                    // (`mpi_yield_when_idle`): ~0.7 µs of a hot round trip (`Benchmarks/engine-ab.md`,
                    // session 13). A stream of tasks is drained first, its replies relayed in one batch.
                    if forwardedLone { break }
                } else if status.tag == MPIObjectProtocol.replyTag {
                    try relayObjectReply()
                } else if status.tag == MPIProtocol.controlTag {
                    switch buffer.first.flatMap(MPIProtocol.Control.init(rawValue:)) {
                    case .hello:
                        try answerHello()
                    case .terminate:
                        for pool in pools.keys { closeLocal(pool, graceNanoseconds: 0) }
                        let leftovers = LeftoverProcesses.end()
                        if !leftovers.isEmpty {
                            printError(
                                "swiftmp: rank \(communicator.rank) ended \(leftovers.count) process(es) its tasks left "
                                    + "running (\(leftovers.map(String.init).joined(separator: ", "))): at the job's end, "
                                    + "processes a task started and did not wait for are ended (mpirun would wait for them)")
                        }
                        for request in sending { _ = try request.wait() }
                        sending.removeAll()
                        try reply(MPIProtocol.controlMessage(.terminated), tag: MPIProtocol.controlTag)
                        return
                    default:
                        continue
                    }
                }
            }
            let now = monotonicNanoseconds()
            if now &- lastWedgeCheck >= PoolEngine.wedgeCheckInterval { killWedgedWorkers(now: now) }
            for pool in pools.keys where try relayReplies(of: pool) { moved = true }
            if moved {
                backoff.noteActivity()
                continue
            }
            wait()
        }
    }

    /// Sleeps until a local worker replies (its doorbell) or, at most, the backoff's next
    /// pause (rank 0's messages are polled).
    private mutating func wait() {
        let busy = pools.values.filter(\.isBusy)
        guard !busy.isEmpty else {
            ForkGuard.whileBlocked {
                backoff.pause(longest: sending.isEmpty ? IdleBackoff.longestSleep : Self.sendingSleep)
            }
            return
        }
        ForkGuard.whileBlocked {
            if busy.count == 1 {
                let local = busy[0].backend
                backoff.pause(longest: Self.busySleep) { nanoseconds in
                    local.waitForActivity(spinning: false, timeoutNanoseconds: nanoseconds) { false }
                }
            } else {
                backoff.pause(longest: Self.sendingSleep)
            }
        }
    }

    /// While a result is on its way to rank 0, idle sleeps stay short: past the eager limit
    /// its data moves only when this rank calls MPI after rank 0 has answered.
    static let sendingSleep: Int64 = 50_000
    /// While the local workers hold work: a reply wakes the rank at once; rank 0's next
    /// messages wait at most this long (a worker holds its next chunk meanwhile).
    static let busySleep: Int64 = 200_000

    // MARK: rank 0 → local workers

    /// The pool message in `buffer`: one message, or a batch of them (`RelayBatch`).
    private mutating func handlePoolMessages() throws {
        // The message is moved out of `buffer` while it is handled (handling changes `self`).
        var message: [UInt8] = []
        swap(&message, &buffer)
        defer { swap(&message, &buffer) }
        // The tasks of a batch go into the rings first, then each worker that got one is woken
        // once: woken per task, a sleeping worker preempted the rank for each (perf: the rank's
        // largest cost at chunk sizes 1 and 100, Benchmarks/reports/mpi-relay.md, session 10).
        defer { for hosted in pools.values { hosted.backend.wakeDeferred() } }
        try message.withUnsafeMutableBytes { raw in
            if RelayEnvelope.read(UnsafeRawBufferPointer(raw))?.kind == RelayBatch.kind {
                try RelayBatch.forEach(in: raw) { try handlePoolMessage($0, alone: false) }
            } else {
                try handlePoolMessage(raw, alone: true)
            }
        }
    }

    /// `alone`: the message came in an MPI message of its own (not in a `RelayBatch`).
    private mutating func handlePoolMessage(_ message: UnsafeMutableRawBufferPointer, alone: Bool) throws {
        guard let (kind, pool, index) = RelayEnvelope.read(UnsafeRawBufferPointer(message)),
            let down = RelayEnvelope.Down(rawValue: kind)
        else { return }
        let local = pools[pool]?.backend
        let body = UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(message)[RelayEnvelope.size...])
        switch down {
        case .forward:
            if let scheduler = pools[pool]?.scheduler {
                scheduler.handle(body)
                return
            }
            // Nothing goes to (or is counted for) a local worker that ended or could not start:
            // rank 0 runs what it sent again elsewhere once it learns (`ended`, `notStarted`).
            guard let local, index < local.workerCount, local.hasWorker(index) else { return }
            // A task that came alone for a pool with nothing in flight here (a round trip, not
            // a stream of tasks): its worker should run on this CPU (`WorkerChannel.followsRank`).
            var lone = false
            if body.first == MasterMessage.chunk.rawValue {
                lone = alone && pools[pool]?.outstanding == 0
                pools[pool]?.outstanding += 1
                pools[pool]?.watched[index].forwarded &+= 1
            }
            if lone { forwardedLone = true }
            // The envelope becomes the frame header: the message goes to the ring as it came.
            message.storeBytes(of: UInt64(message.count - Frame.headerSize).littleEndian, toByteOffset: 0, as: UInt64.self)
            local.forward(frame: UnsafeRawBufferPointer(message), to: index, beckoning: lone, deferringWake: true)
        case .open:
            var reader = WireReader(body)
            let count = Int((try? reader.read(UInt32.self)) ?? 0)
            let tagOutput = (try? reader.read(UInt8.self)).map { $0 != 0 }
            let schedules = (try? reader.read(UInt8.self)) == 1
            let maxTasks = Int((try? reader.read(UInt32.self)) ?? 0)
            try open(pool, workers: count, tagOutput: tagOutput, schedules: schedules, maxTasksPerChild: maxTasks > 0 ? maxTasks : nil)
        case .cancel:
            var reader = WireReader(body)
            if let task = try? reader.read(UInt64.self) { pools[pool]?.scheduler?.cancel(task: task) }
        case .kill:
            guard let local, index < local.workerCount else { return }
            _ = local.kill(worker: index)
        case .replace:
            guard let local, index < local.workerCount else { return }
            pools[pool]?.watched[index] = WatchedWorker()
            do {
                _ = try ForkGuard.whileBlocked { try local.replace(worker: index) }
                try report(pool, started: index, pid: local.identity(of: index).pid ?? 0)
            } catch let error as MPIError {
                throw error
            } catch {
                // Rank 0's engine keeps the place vacant and asks again later if the reason may
                // pass (out of processes, memory or descriptors), and fails the pool otherwise.
                RelayEnvelope.notStarted(
                    pool: pool, local: index, errno: PoolEngine.systemErrno(of: error) ?? 0,
                    why: "cannot start a replacement worker on rank \(communicator.rank): \(error)", into: &scratch)
                try startSend(scratch)
            }
        case .close:
            var reader = WireReader(body)
            closeLocal(pool, graceNanoseconds: UInt64((try? reader.read(UInt32.self)) ?? 0) * 1_000_000)
            RelayEnvelope.message(RelayEnvelope.Up.closed.rawValue, pool: pool, local: 0, into: &scratch)
            try startSend(scratch)
        }
    }

    /// Passes an answer of rank 0's object service ([local worker][answer]) to the local
    /// worker whose task waits for it (`ObjectRequestRelay`), or back to rank 0 if that
    /// worker's process ended (`RelayedObjectRequests`).
    private mutating func relayObjectReply() throws {
        guard let requester = buffer.withUnsafeBytes({ ObjectRequester.readLocal($0) }) else { return }
        let ok = buffer.withUnsafeBytes { MPIObjectProtocol.isOK(UnsafeRawBufferPointer(rebasing: $0[4...])) }
        switch objectRequests.answered(requester, ok: ok) {
        case .drop:
            return
        case .giveBack(let request):
            try giveBack(requester, request: request, answer: Array(buffer[4...]))
        case .deliver(let index, let request):
            guard let local = pools[RelayedObjectRequests.pool(of: requester)]?.backend, index < local.workerCount else { return }
            Frame.begin(&scratch)
            scratch.write(MasterMessage.objectReply.rawValue)
            scratch.bytes.append(contentsOf: buffer[4...])
            Frame.finish(&scratch)
            scratch.bytes.withUnsafeBytes { local.forward(frame: $0, to: index) }
            if ok, let request {
                objectRequests.delivered(
                    requester, index: index, end: local.sentPosition(of: index), request: request, answer: Array(buffer[4...]))
            }
        }
    }

    /// Sends rank 0 an answer its local worker never read, so that rank 0 gives back what it
    /// handed over (`MPIObjectProtocol.undeliveredTag`).
    private mutating func giveBack(_ requester: UInt32, request: [UInt8], answer: [UInt8]) throws {
        let message = MPIObjectProtocol.undelivered(by: requester, request: request, reply: answer)
        sending.append(try message.withUnsafeBytes { try communicator.isend($0, to: 0, tag: MPIObjectProtocol.undeliveredTag) })
    }

    /// How a local worker's process ended, for rank 0 (its progress words given): with its
    /// name at rank 0's object service, after the answer it never read went back.
    private mutating func reportEnd(
        _ pool: UInt16, local index: Int, _ ending: RelayEnvelope.Ending, readPosition: UInt64
    ) throws {
        var ending = ending
        let (requester, unread) = objectRequests.ended(pool: pool, index: index, readPosition: readPosition)
        if let requester {
            ending.requester = requester
            if let unread { try giveBack(requester, request: unread.request, answer: unread.answer) }
        }
        RelayEnvelope.ended(pool: pool, local: index, ending, into: &scratch)
        if outbox.wouldOverflow(adding: scratch.count) { try flushOutbox() }
        scratch.bytes.withUnsafeBytes { outbox.append($0) }
    }

    /// Starts the local workers of a new pool.
    private mutating func open(
        _ pool: UInt16, workers requested: Int, tagOutput: Bool?, schedules: Bool, maxTasksPerChild: Int?
    ) throws {
        closeLocal(pool, graceNanoseconds: 0)
        let count = requested > 0 ? requested : defaultWorkers
        do {
            let backend = try LocalBackend(workers: count, method: .fork, tagOutput: tagOutput)
            try ForkGuard.whileBlocked { try backend.start() }
            pools[pool] = Hosted(
                backend: backend,
                scheduler: schedules ? NodeScheduler(backend: backend, maxTasksPerChild: maxTasksPerChild) : nil)
            for index in 0..<count { try report(pool, started: index, pid: backend.identity(of: index).pid ?? 0) }
        } catch let error as MPIError {
            throw error
        } catch {
            try fail(pool, "cannot start \(count) local worker processes on rank \(communicator.rank): \(error)")
        }
    }

    /// Ends a pool's local workers: `stop` was sent to them by rank 0 (gracefully closing
    /// pools); survivors after `grace` are killed. Waits until all are reaped.
    private mutating func closeLocal(_ pool: UInt16, graceNanoseconds: UInt64) {
        guard let hosted = pools.removeValue(forKey: pool) else { return }
        objectRequests.closed(pool: pool)
        ForkGuard.whileBlocked {
            if let scheduler = hosted.scheduler {
                scheduler.close(graceNanoseconds: graceNanoseconds)
            } else {
                hosted.backend.shutdown(deadline: monotonicNanoseconds() &+ graceNanoseconds)
            }
        }
    }

    /// Kills each relayed local worker that holds a chunk it does not take, asleep
    /// (`WedgeWatch`, as `PoolEngine.replaceWedgedWorkers` does for the engine's own): its
    /// end goes to rank 0 marked wedged, whose engine runs its chunks elsewhere (none was
    /// taken: no input is charged) and asks for a replacement. Workers of a rank that
    /// schedules its own (`NodeScheduler`) are watched by that engine.
    private mutating func killWedgedWorkers(now: UInt64) {
        let away = now &- lastWedgeCheck > 3 * PoolEngine.wedgeCheckInterval
        lastWedgeCheck = now
        for (pool, hosted) in pools where hosted.scheduler == nil {
            for index in hosted.watched.indices where !hosted.watched[index].wedged {
                let backend = hosted.backend
                guard let taken = backend.progress(of: index)?.snapshot().taken,
                    pools[pool]?.watched[index].watch.look(
                        first: hosted.watched[index].firstUnanswered, taken: taken,
                        activity: { backend.activity(of: index) }, now: now, away: away,
                        limit: WedgeWatch.defaultLimitNanoseconds) != nil
                else { continue }
                pools[pool]?.watched[index].wedged = backend.kill(worker: index)
            }
        }
    }

    // MARK: local workers → rank 0

    /// Relays what a pool's local workers wrote and how they ended, in order, gathered into
    /// batches (`RelayBatch`) sent at the end of the pass. Returns whether anything moved.
    private mutating func relayReplies(of pool: UInt16) throws -> Bool {
        if let scheduler = pools[pool]?.scheduler { return try relayScheduled(pool, scheduler) }
        guard let backend = pools[pool]?.backend else { return false }
        var failure: (any Error)?
        var answered = 0
        // Moved out while the pass counts answers (the pool left without a reference, so the
        // counting does not copy the array), and back after it.
        var watched = pools[pool]?.watched ?? []
        pools[pool]?.watched = []
        defer { pools[pool]?.watched = watched }
        outbox.pool = pool
        if objectRequests.hasUnread { objectRequests.confirmRead(pool: pool, readPosition: backend.readPosition(of:)) }
        let moved = backend.pollRaw(
            message: { index, bytes in
                guard failure == nil else { return }
                if WorkerReply.isAnswer(bytes) {
                    answered += 1
                    if index < watched.count { watched[index].answered &+= 1 }
                }
                do {
                    // A task's object request goes to rank 0's object service ([local worker][request]).
                    try relayUp(bytes, pool: pool, local: index)
                } catch {
                    failure = error
                }
            },
            ended: { index, exit in
                guard failure == nil else { return }
                let words = backend.progress(of: index)?.snapshot() ?? (taken: 0, input: 0)
                let wedged = index < watched.count && watched[index].wedged
                if index < watched.count { watched[index] = WatchedWorker() }
                do {
                    try reportEnd(
                        pool, local: index,
                        .init(
                            exit: exit, taken: words.taken, input: words.input, wedged: wedged,
                            outOfMemory: backend.identity(of: index).outOfMemory),
                        readPosition: backend.readPosition(of: index))
                } catch {
                    failure = error
                }
            })
        if failure == nil {
            do { try flushOutbox() } catch { failure = error }
        }
        if answered > 0, let hosted = pools[pool] { pools[pool]?.outstanding = max(0, hosted.outstanding - answered) }
        if let failure { throw failure }
        return moved
    }

    /// `RankScheduling.node`: one round of the rank's engine, then what it answered, its local
    /// workers' object requests and log records, and their ends, to rank 0.
    private mutating func relayScheduled(_ pool: UInt16, _ scheduler: NodeScheduler) throws -> Bool {
        if objectRequests.hasUnread { objectRequests.confirmRead(pool: pool, readPosition: scheduler.backend.readPosition(of:)) }
        var moved = scheduler.step()
        outbox.pool = pool
        for answer in scheduler.answers {
            moved = true
            try answer.withUnsafeBytes { try relayUp(UnsafeRawBufferPointer(rebasing: $0[MessageBuffer.headroom...]), pool: pool, local: 0) }
        }
        scheduler.answers.removeAll(keepingCapacity: true)
        for (index, bytes) in scheduler.passedOn {
            moved = true
            try bytes.withUnsafeBytes { try relayUp($0, pool: pool, local: index) }
        }
        scheduler.passedOn.removeAll(keepingCapacity: true)
        var replaced: [(index: Int, pid: pid_t)] = []
        var unstarted = pools[pool]?.unstarted ?? []
        for (index, exit, _, read) in scheduler.endings {
            moved = true
            try reportEnd(pool, local: index, .init(exit: exit, taken: 0, input: 0), readPosition: read)
            unstarted.insert(index)
        }
        // Replaced in the same round or since (a vacant slot filled later): rank 0's
        // placement names the new process.
        for index in unstarted where scheduler.backend.hasWorker(index) {
            let pid = scheduler.backend.identity(of: index).pid ?? 0
            if !scheduler.endings.contains(where: { $0.index == index && $0.pid == pid }) {
                replaced.append((index, pid))
                unstarted.remove(index)
            }
        }
        pools[pool]?.unstarted = unstarted
        scheduler.endings.removeAll(keepingCapacity: true)
        try flushOutbox()
        for (index, pid) in replaced { try report(pool, started: index, pid: pid) }
        return moved
    }

    /// One message of a local worker (or the rank's engine, `local` 0) for rank 0: a task's
    /// object request goes to rank 0's object service; anything else into the outbox (alone
    /// when too long to batch).
    private mutating func relayUp(_ bytes: UnsafeRawBufferPointer, pool: UInt16, local index: Int) throws {
        if bytes.first == WorkerMessage.objectRequest.rawValue {
            let body = UnsafeRawBufferPointer(rebasing: bytes[1...])
            var header = objectRequests.send(pool: pool, index: index, request: body).littleEndian
            let request = try withUnsafeBytes(of: &header) {
                try communicator.isend($0, body, to: 0, tag: MPIObjectProtocol.requestTag)
            }
            sending.append(request)
            return
        }
        let envelope = RelayEnvelope.word(RelayEnvelope.Up.message.rawValue, pool: pool, local: index)
        if outbox.wouldOverflow(adding: RelayEnvelope.size + bytes.count) { try flushOutbox() }
        if RelayEnvelope.size + bytes.count > outbox.limit {
            var header = envelope.littleEndian
            sending.append(try withUnsafeBytes(of: &header) { try communicator.isend($0, bytes, to: 0, tag: MPIProtocol.poolTag) })
        } else {
            outbox.append(envelope: envelope, body: bytes)
        }
    }

    /// Sends what `outbox` gathered.
    private mutating func flushOutbox() throws {
        let communicator = communicator
        var request: Request?
        try outbox.flush { request = try communicator.isend($0, to: 0, tag: MPIProtocol.poolTag) }
        if let request { sending.append(request) }
    }

    private mutating func report(_ pool: UInt16, started index: Int, pid: pid_t) throws {
        RelayEnvelope.message(RelayEnvelope.Up.started.rawValue, pool: pool, local: index, into: &scratch) { $0.write(Int32(pid)) }
        try startSend(scratch)
    }

    private mutating func fail(_ pool: UInt16, _ message: String) throws {
        RelayEnvelope.message(RelayEnvelope.Up.failed.rawValue, pool: pool, local: 0, into: &scratch) { $0.write(message) }
        try startSend(scratch)
    }

    // MARK: MPI

    /// How many local workers a rank hosts by default: one per CPU it may use
    /// (`Multiprocessing.cpuAllocation`). A rank not bound to CPUs (its affinity is the whole
    /// machine) shares the node's CPUs with the other worker ranks there: one rank per node
    /// (`--map-by ppr:1:node --bind-to none`) uses every core, and `-np` = cores gives one
    /// worker per rank.
    static func defaultLocalWorkers(rootIsHere: Bool) -> Int {
        let allocation = CPUAllocation.current
        var count = allocation.count
        let online = sysconf(Int32(_SC_NPROCESSORS_ONLN))
        if allocation.slurmShare == nil, (allocation.affinity ?? online) >= online,
            let ranksHere = getenv("OMPI_COMM_WORLD_LOCAL_SIZE").flatMap({ Int(String(cString: $0)) })
        {
            let workerRanks = max(1, ranksHere - (rootIsHere ? 1 : 0))
            count = max(1, count / workerRanks)
        }
        return count
    }

    private mutating func answerHello() throws {
        let (theirs, rootHost) = try buffer.withUnsafeBytes { raw throws -> (BuildID, String) in
            var reader = WireReader(raw)
            _ = try reader.read(UInt8.self)
            let build = BuildID(hash: try reader.read(UInt64.self), size: try reader.read(UInt64.self))
            return (build, try reader.read(String.self))
        }
        sameBuild = theirs == build
        let host = (try? MPIEnvironment.processorName) ?? "?"
        defaultWorkers = Self.defaultLocalWorkers(rootIsHere: rootHost == host)
        let answer = MPIProtocol.controlMessage(.helloReply) { [build, sameBuild, defaultWorkers] in
            $0.write(UInt8(sameBuild ? 1 : 0))
            $0.write(host)
            $0.write(build.hash)
            $0.write(build.size)
            $0.write(UInt32(defaultWorkers))
        }
        try reply(answer, tag: MPIProtocol.controlTag)
    }

    private mutating func startSend(_ message: WireWriter) throws {
        let request = try message.bytes.withUnsafeBytes { try communicator.isend($0, to: 0, tag: MPIProtocol.poolTag) }
        sending.append(request)
    }

    /// Forgets the sends that completed; returns whether any did.
    private mutating func completeSends() throws -> Bool {
        let before = sending.count
        var index = 0
        while index < sending.count {
            if try sending[index].test() != nil { sending.remove(at: index) } else { index += 1 }
        }
        return sending.count != before
    }

    /// A blocking send: rank 0 never blocks on a worker, it always receives.
    private func reply(_ bytes: [UInt8], tag: Int) throws {
        try bytes.withUnsafeBytes { try communicator.send($0, to: 0, tag: tag) }
    }
}
#endif
