import Logging
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// The master's scheduler, shared by every backend. One thread per pool runs `loop()`: it
/// takes submitted jobs, keeps every worker fed, routes replies to their jobs, and settles
/// every input exactly once. The parts it ties together, each in its own file:
///
/// - `TaskLedger`: every task sent and not settled (job, inputs, worker, chunk number);
/// - `WorkerTable`: per worker slot, what it holds in which order and how fast it answers;
/// - `WorkerProgress`: shared with a local worker, which chunk and input it runs — so a
///   worker's death fails only the input it was running, and chunks it has not started can
///   be withdrawn and run elsewhere;
/// - `FunctionCache`: function values sent once per worker;
/// - `MasterCodec` / `WorkerReply`: the messages (`MessageCodec.swift`);
/// - `Job`: the inputs and results of one call, retries and their history (`Jobs.swift`).
///
/// The backend (`PoolBackend`) moves messages and reports typed events; the engine knows
/// nothing of its transport. `step()` is one round of work; tests drive it directly with a
/// scripted backend, without processes or threads.
final class PoolEngine: @unchecked Sendable {
    let backend: any PoolBackend
    let maxTasksPerChild: Int?
    let initializer: FunctionDefinition?

    // Shared with callers, under `lock`.
    private let lock = ConditionLock()
    private var incoming: [Job] = []
    /// Function values to drop once idle (`forget(_:)`).
    private var forgotten: [FunctionDefinition] = []
    private var closing = false
    private var terminating = false
    private var stopped = false
    private var brokenReason: PoolError?
    private let hasIntake = Atomic<Bool>(false)
    /// Who runs the rounds: this pool's thread, or a caller driving its own `apply`.
    private let baton = EngineBaton()
    /// Whether the last round left nothing to do (no job, no task, no timer): a caller may
    /// drive then. Written by whoever holds the baton.
    private let isIdle = Atomic<Bool>(true)
    /// Callers waiting for `placement()`; the engine thread answers with a new generation.
    private var placementWaiters = 0
    private var placementGeneration = 0
    private var placementAnswer: [WorkerPlacement] = []

    // Engine thread only. The state touched for every task is `@exclusivity(unchecked)`:
    // only the thread holding the baton uses it, so the runtime's dynamic exclusivity checks
    // (a thread-local access set updated around each access) find nothing to catch; they
    // cost about a tenth of the pool thread's time per chunk in a map of tiny tasks (perf).
    @exclusivity(unchecked) private var jobs: [Job] = []
    @exclusivity(unchecked) private var ledger = TaskLedger()
    @exclusivity(unchecked) private var workers: WorkerTable
    @exclusivity(unchecked) private var functions: FunctionCache
    @exclusivity(unchecked) private var writer = WireWriter(capacity: 64 << 10)
    private var hasStopped = false
    /// Workers in a row that died before taking their first task while they had work.
    private var startDeaths = 0
    /// Per worker slot: its workers killed in a row as wedged before answering a task (reset
    /// by the slot's next answer). Per slot, not in all: a lock held at the moment a pool
    /// forks many workers may wedge several of them once; only a start that hangs every time
    /// wedges one slot's replacements again and again.
    private var wedgedStarts: [Int]
    /// When the engine must look again at the latest (a time limit or a retry falls due).
    private var nextTimer: UInt64?

    /// The engine's clock (monotonic ns); tests drive it by hand.
    var clock: () -> UInt64 = monotonicNanoseconds

    /// Workers dying before their first task this many times in a row break the pool.
    static let startDeathLimit = 3

    /// A worker that has not taken the first chunk it holds for this long (ns), its process
    /// using next to no CPU meanwhile, is wedged: it is replaced and its chunks run elsewhere
    /// (`replaceWedgedWorkers`). Tests shorten it (from any thread).
    var wedgeNanoseconds: UInt64 {
        get { wedgeLimit.load(ordering: .relaxed) }
        set { wedgeLimit.store(newValue, ordering: .relaxed) }
    }
    private let wedgeLimit = Atomic<UInt64>(WedgeWatch.defaultLimitNanoseconds)
    /// Where the engine says what it did on its own (a wedged worker replaced): a warning
    /// through the program's swift-log handler (stderr unless it bootstrapped another).
    /// Tests set their own before the engine runs.
    var logger = Logger(label: "swift-multiprocessing")
    /// When the engine last looked for wedged workers, and how often it looks.
    private var lastWedgeCheck: UInt64 = 0
    static let wedgeCheckInterval: UInt64 = 1_000_000_000

    init(backend: any PoolBackend, maxTasksPerChild: Int?, initializer: FunctionDefinition?) {
        self.backend = backend
        self.maxTasksPerChild = maxTasksPerChild
        self.initializer = initializer
        self.workers = WorkerTable(count: backend.workerCount)
        self.functions = FunctionCache(workers: backend.workerCount)
        self.wedgedStarts = Array(repeating: 0, count: backend.workerCount)
    }

    func startThread() throws {
        try spawnThread(named: "swiftmp-pool") { [self] in loop() }
    }

    // MARK: called by any thread

    /// Queues `job`.
    func submit(_ job: Job) throws(PoolError) {
        lock.lock()
        if let brokenReason {
            lock.unlock()
            throw brokenReason
        }
        if closing || terminating {
            lock.unlock()
            throw PoolError(.closed, "the pool is closed; create a new Pool")
        }
        incoming.append(job)
        lock.unlock()
        signalIntake()
    }

    /// Cancels `job`: inputs not started are dropped, a worker running one is killed and
    /// replaced (local backend), the caller gets `PoolError.cancelled`.
    func cancel(_ job: Job) {
        job.requestCancel()
        signalIntake()
    }

    /// Drops `function` from the engine's cache and from the workers that have it, if no job
    /// uses it (a worker rank's engine, when rank 0 has dropped it: `NodeScheduler`).
    func forget(_ function: FunctionDefinition) {
        lock.withLock { forgotten.append(function) }
        signalIntake()
    }

    /// How many function values the engine keeps, and how many its workers hold (engine
    /// thread; tests).
    var cachedFunctions: (kept: Int, onWorkers: Int) { functions.counts }

    /// Stops taking work; workers exit when the submitted work is done.
    func close() {
        lock.withLock { closing = true }
        signalIntake()
    }

    /// Stops now: pending work fails with `PoolError.terminated`, workers are killed.
    func terminate() {
        lock.withLock { terminating = true }
        signalIntake()
    }

    var isClosedOrTerminated: Bool { lock.withLock { closing || terminating } }

    private func signalIntake() {
        hasIntake.store(true, ordering: .sequentiallyConsistent)
        backend.wake()
        baton.wakeThread()
    }

    /// Waits until the engine has stopped every worker.
    func join(timeout: Double? = nil) -> Bool {
        let end = deadline(after: timeout)
        return lock.withLock {
            while !stopped {
                if !lock.wait(until: end), let end, monotonicNanoseconds() >= end, !stopped { return false }
            }
            return true
        }
    }

    var isStopped: Bool { lock.withLock { stopped } }

    /// Which process is in each worker slot now (pid, rank, host), read on the engine thread
    /// (the backend's tables are the engine thread's alone). Waits up to 5 s for it.
    func placement() -> [WorkerPlacement] {
        if PoolThread.isCurrent(ObjectIdentifier(self)) { return currentPlacement() }
        lock.lock()
        defer { lock.unlock() }
        // After the engine thread ended nothing changes the tables any more.
        if stopped { return currentPlacement() }
        let generation = placementGeneration
        placementWaiters += 1
        defer { placementWaiters -= 1 }
        signalIntake()
        let end = deadline(after: 5)
        while placementGeneration == generation && !stopped {
            if !lock.wait(until: end), let end, monotonicNanoseconds() >= end { break }
        }
        if placementGeneration == generation && stopped { return currentPlacement() }
        return placementAnswer
    }

    private func currentPlacement() -> [WorkerPlacement] { backend.placements() }

    // MARK: the engine thread

    enum StepOutcome {
        case progressed, idle, stopped
    }

    /// The pool's thread. It holds the baton for each round and for its waits while the
    /// engine has work; idle, it leaves the baton to callers that drive (`EngineBaton`).
    /// It runs inside `ForkGuard` activity throughout — its rounds, and the bookkeeping and
    /// checks of its waits — and leaves it only while it sleeps (in the backend's or the
    /// baton's futex wait), as the MPI service thread does.
    private func loop() {
        PoolThread.mark(self)
        ForkGuard.enterActivity()
        defer { ForkGuard.leaveActivity() }
        var idleRounds = 0
        while true {
            guard !baton.callerWaiting, baton.tryTakeForThread() else {
                sleepWhileCallersDrive()
                continue
            }
            switch step() {
            case .stopped:
                baton.releaseByThread()
                return
            case .progressed:
                idleRounds = 0
            case .idle:
                idleRounds += 1
                // A map whose caller still writes its inputs (`BatchJob.awaitsInput`) is waited
                // for as replies are, spinning first, and its next publication ends the wait:
                // asleep in `waitIdle`, the pool's thread took a futex wake-up (tens of µs
                // here) after the first publication of every such map, and a spinning one did
                // not see a publication before a reply or its spin's end
                // (`Benchmarks/reports/input-kinds.md`, session 13).
                // (Found once per round: the wait's test runs on every spin, and most rounds
                // have no such map.)
                let producing = jobs.filter { $0.awaitsInput }
                if !ledger.isEmpty || nextTimer != nil || !producing.isEmpty {
                    waitForWork(idleRounds: idleRounds) {
                        baton.callerWaiting || producing.contains { $0.hasFreshInput }
                    }
                } else if baton.callersDrive() {
                    baton.releaseByThread()
                    sleepWhileCallersDrive()
                    continue
                } else {
                    backend.waitIdle(timeoutNanoseconds: 500_000_000) {
                        hasIntake.load(ordering: .sequentiallyConsistent) || baton.callerWaiting
                    }
                }
            }
            baton.releaseByThread()
        }
    }

    /// The pool's thread, without the baton, while callers drive: until a submission or the
    /// backend's idle check is due.
    private func sleepWhileCallersDrive() {
        baton.sleepWhileDriven(timeoutNanoseconds: backend.idleCheckNanoseconds) {
            hasIntake.load(ordering: .sequentiallyConsistent)
        }
    }

    /// Waits for the backend while work is in flight (or a timer is set), at most until the
    /// next timer.
    private func waitForWork(idleRounds: Int, orWhen ready: () -> Bool) {
        var timeout: Int64 = 50_000_000
        if let timer = nextTimer {
            let now = clock()
            timeout = min(timeout, timer > now ? Int64(timer - now) : 0)
        }
        backend.pace(replyEvery: workers.replyInterval(now: monotonicNanoseconds(), smoothed: backend.schedulesInputs))
        backend.waitForActivity(spinning: idleRounds < 4, timeoutNanoseconds: timeout) {
            hasIntake.load(ordering: .sequentiallyConsistent) || ready()
        }
    }

    /// Runs `job` — a caller's `apply` — on the calling thread until it is done, when the
    /// engine has nothing else to do: the caller takes the baton, admits the job and runs
    /// the rounds itself, with the pool's thread asleep, so the round trip has no hand-off
    /// between threads. Returns false without submitting when the engine is busy or the
    /// caller is the pool's thread. Hands the engine back to the pool's thread as soon as
    /// anything else arrives (a submission, a cancellation, `close`); the job then goes on
    /// there and the caller waits for it as usual.
    func runDriven(_ job: Job, until isDone: () -> Bool) throws(PoolError) -> Bool {
        guard isIdle.load(ordering: .sequentiallyConsistent), !hasIntake.load(ordering: .sequentiallyConsistent),
            !PoolThread.isCurrent(ObjectIdentifier(self))
        else { return false }
        baton.takeForCaller { backend.wake() }
        defer {
            isIdle.store(jobs.isEmpty && ledger.isEmpty && nextTimer == nil, ordering: .sequentiallyConsistent)
            let leftWork = !isIdle.load(ordering: .sequentiallyConsistent) || hasIntake.load(ordering: .sequentiallyConsistent)
            baton.releaseByCaller()
            if leftWork { baton.wakeThread() }
        }
        guard !hasStopped, jobs.isEmpty, ledger.isEmpty, nextTimer == nil,
            !hasIntake.load(ordering: .sequentiallyConsistent)
        else { return false }
        let refusal: PoolError? = lock.withLock {
            if let brokenReason { return brokenReason }
            return closing || terminating ? PoolError(.closed, "the pool is closed; create a new Pool") : nil
        }
        if let refusal { throw refusal }
        // Inside `ForkGuard` activity as the pool's thread is (entered with the baton held:
        // never waiting for it inside), unless this thread is already in it (another pool's
        // callback).
        ForkGuard.withActivity {
            admit(job)
            // Sent before the first round's poll (under MPI, 1–2 µs of probing that can find
            // nothing of this call): a worker's end that poll would have reported first leaves
            // the task untaken there, and it runs elsewhere.
            _ = dispatch(now: clock())
            backend.flush()
            var idleRounds = 0
            while !isDone() && !hasIntake.load(ordering: .sequentiallyConsistent) {
                let outcome = step(admitting: false)
                if outcome == .stopped || isDone() { break }
                if outcome == .idle {
                    idleRounds += 1
                    waitForWork(idleRounds: idleRounds) { false }
                } else {
                    idleRounds = 0
                }
            }
        }
        return true
    }

    /// One round of engine work, on the engine's thread (inside `ForkGuard` activity).
    /// `admitting: false` (a caller driving) leaves submissions, cancellations and requests
    /// to the pool's thread.
    func step(admitting: Bool = true) -> StepOutcome {
        if hasStopped { return .stopped }
        var progressed = false
        if admitting, hasIntake.exchange(false, ordering: .sequentiallyConsistent) {
            let (newJobs, dropped, isTerminating, placementAsked, isClosing) = lock.withLock {
                () -> ([Job], [FunctionDefinition], Bool, Bool, Bool) in
                defer {
                    incoming.removeAll()
                    forgotten.removeAll()
                }
                return (incoming, forgotten, terminating, placementWaiters > 0, closing)
            }
            if placementAsked {
                let answer = currentPlacement()
                lock.withLock {
                    placementAnswer = answer
                    placementGeneration += 1
                    lock.broadcast()
                }
            }
            if isTerminating {
                for job in newJobs { job.failAll(PoolError(.terminated, "the pool was terminated")) }
                failEverything(PoolError(.terminated, "the pool was terminated"))
                // Inside ForkGuard activity: the backend lets go of it only while it waits.
                backend.shutdown(deadline: monotonicNanoseconds())
                return markStopped()
            }
            // Jobs first: a bundle and rank 0's undefine of its function taken in one round
            // came in that order (the undefine marks the value to go once the bundle is done).
            for job in newJobs { admit(job) }
            for function in dropped { undefineEverywhere(functions.evict(equalTo: function)) }
            // Closed: nothing more comes, and `join` waits for the work, not for the consumers
            // of streams (Python's): every stream the pool reads may run ahead of its consumer.
            if isClosing { for job in jobs { job.poolClosed() } }
            progressed = true
        }
        // One clock read for the replies of a poll (not one each: a map of tiny tasks takes
        // several per round), at the first event — except a reply from a worker without shared
        // progress words (MPI, in-process): there its next input's time limit counts from the
        // reply's time (`observed`), which a caller's callback run for an earlier reply of the
        // same poll must not make look older.
        var polledAt: UInt64 = 0
        if backend.poll({ event in
            if polledAt == 0 {
                polledAt = clock()
            } else if case .reply(let worker, _) = event, backend.progress(of: worker) == nil {
                polledAt = clock()
            }
            handle(event, now: polledAt)
        }) {
            progressed = true
        }
        let now = clock()
        if cancelRequestedJobs() { progressed = true }
        if let broken = lock.withLock({ brokenReason }), !jobs.isEmpty || !ledger.isEmpty {
            failEverything(broken)
            progressed = true
        }
        nextTimer = nil
        if enforceTimeLimits(now: now) { progressed = true }
        if fillVacancies(now: now) { progressed = true }
        if now &- lastWedgeCheck >= Self.wedgeCheckInterval, replaceWedgedWorkers(now: now) { progressed = true }
        releaseGoneSegments(now: now)
        if dispatch(now: now) { progressed = true }
        if rebalance(now: now) {
            progressed = true
            _ = dispatch(now: now)
        }
        // What this round sent goes now, before callbacks run.
        backend.flush()
        for job in jobs {
            job.settle()
            job.everyRound?(job)
        }
        if retireFinishedJobs() { progressed = true }
        for job in jobs { if let due = job.nextRetryTime { nextTimer = min(nextTimer ?? due, due) } }
        // `incoming` too: a call submitted just before `close()` may not be admitted yet.
        if jobs.isEmpty && ledger.isEmpty && lock.withLock({ closing && incoming.isEmpty }) {
            stopWorkersGracefully()
            return markStopped()
        }
        isIdle.store(jobs.isEmpty && ledger.isEmpty && nextTimer == nil, ordering: .sequentiallyConsistent)
        return progressed ? .progressed : .idle
    }

    private func markStopped() -> StepOutcome {
        hasStopped = true
        lock.withLock {
            stopped = true
            lock.broadcast()
        }
        return .stopped
    }

    // MARK: jobs

    private func admit(_ job: Job) {
        let (definition, evicted) = functions.adopt(job.function)
        job.function = definition
        undefineEverywhere(evicted)
        if job.finished {
            undefineEverywhere(functions.release(definition))
        } else {
            jobs.append(job)
        }
    }

    /// Tells each worker that has one of `ids` (function values the cache dropped) to drop it.
    private func undefineEverywhere(_ ids: [UInt32]) {
        for id in ids {
            for worker in workers.indices where functions.drop(id, from: worker) {
                MasterCodec.undefine(id, into: &writer)
                backend.send(&writer, to: worker)
            }
        }
    }

    private func retireFinishedJobs() -> Bool {
        guard jobs.contains(where: { $0.finished }) else { return false }
        // (Their progress reported its end when they finished: `Job.finished`.)
        for job in jobs where job.finished { undefineEverywhere(functions.release(job.function)) }
        jobs.removeAll { $0.finished }
        return true
    }

    /// Fails every job and forgets every task (the pool broke or was terminated).
    private func failEverything(_ error: any Error) {
        for job in jobs { job.failAll(error) }
        _ = retireFinishedJobs()
        ledger.removeAll()
        for worker in workers.indices { workers[worker].tasks.removeAll() }
    }

    private func breakPool(_ error: PoolError) {
        lock.withLock { if brokenReason == nil { brokenReason = error } }
    }

    /// Cancelled jobs end now; their inputs that wait on a worker are withdrawn, and a worker
    /// running one is killed (and replaced).
    private func cancelRequestedJobs() -> Bool {
        guard jobs.contains(where: { $0.cancelRequested && !$0.finished }) else { return false }
        let cancelled = jobs.filter { $0.cancelRequested && !$0.finished }
        for job in cancelled {
            job.failAll(PoolError(.cancelled, "the call was cancelled"))
            for worker in workers.indices where workers[worker].tasks.contains(where: { ledger[$0]?.job === job }) {
                if backend.schedulesInputs {
                    // The slot cancels its share and still answers each task (dropped then).
                    for id in workers[worker].tasks where ledger[id]?.job === job { backend.cancel(task: id, on: worker) }
                    continue
                }
                guard let running = runningTask(on: worker) else { continue }
                _ = withdraw(from: worker)
                if running.job === job, backend.kill(worker: worker) {
                    workers[worker].killedFor = .cancelled
                }
            }
        }
        return true
    }

    // MARK: dispatch

    /// Sends spans to workers with room, one per worker per pass; idle workers first. Returns
    /// whether anything was sent.
    private func dispatch(now: UInt64) -> Bool {
        if jobs.isEmpty { return false }
        var progressed = false
        var sentThisPass = true
        var idleOnly = true
        let bundling = backend.schedulesInputs
        while sentThisPass || idleOnly {
            if !sentThisPass { idleOnly = false }
            sentThisPass = false
            for worker in workers.indices {
                let held = workers[worker].tasks.count
                if idleOnly && held > 0 { continue }
                if workers[worker].retiring || workers[worker].exclusive || workers[worker].isVacant
                    || held
                        >= (bundling
                            ? Self.bundlesInFlight
                            : workers.depth(
                                for: worker, lateReplyBytes: backend.lateReplyBytes,
                                pipelineNanoseconds: backend.pipelineNanoseconds))
                    || !backend.canAccept(worker: worker)
                {
                    continue
                }
                // A scheduling slot retires its own processes.
                if !bundling, let limit = maxTasksPerChild, workers[worker].tasksAssigned >= limit { continue }
                let idle = held == 0
                guard let job = jobs.first(where: { $0.hasSpan(now: now) && (!$0.exclusive || idle) }) else { continue }
                if send(job, to: worker, now: now) {
                    progressed = true
                    sentThisPass = true
                }
            }
        }
        return progressed
    }

    private func ensureInitialized(_ worker: Int) {
        guard !workers[worker].initialized else { return }
        workers[worker].initialized = true
        guard let initializer else { return }
        // The initializer runs as task 0 with a single Void input before any other task.
        define(initializer, on: worker)
        MasterCodec.beginChunk(task: 0, function: initializer.id, into: &writer)
        _VoidTransport.encode(count: 1, into: &writer)
        workers[worker].sent &+= 1
        workers[worker].initializerChunk = workers[worker].sent
        backend.send(&writer, to: worker)
    }

    /// When the engine last looked for dropped shared segments.
    private var lastSegmentSweep: UInt64 = 0
    static let segmentSweepInterval: UInt64 = 500_000_000

    /// Tells workers to let go of shared segments (queues, locks, values) that this process
    /// has dropped, and drops cached functions that mention them — so a long-lived pool
    /// given many short-lived objects keeps only the live ones mapped. At most twice a second.
    private func releaseGoneSegments(now: UInt64) {
        guard now &- lastSegmentSweep >= Self.segmentSweepInterval else { return }
        lastSegmentSweep = now
        var gone: Set<SegmentID> = []
        for worker in workers.indices where !workers[worker].sentSegments.isEmpty {
            for id in workers[worker].sentSegments where SegmentRegistry.lookup(id) == nil { gone.insert(id) }
        }
        guard !gone.isEmpty else { return }
        undefineEverywhere(functions.evict(mentioning: gone))
        for worker in workers.indices {
            let dropped = workers[worker].sentSegments.intersection(gone)
            guard !dropped.isEmpty else { continue }
            workers[worker].sentSegments.subtract(dropped)
            MasterCodec.release(Array(dropped), into: &writer)
            backend.send(&writer, to: worker)
        }
    }

    /// Sends the descriptors of `segments` the worker does not have yet.
    private func attach(_ segments: [SegmentStorage], to worker: Int) throws {
        let missing = segments.filter { !workers[worker].sentSegments.contains($0.id) }
        guard !missing.isEmpty else { return }
        try backend.sendAttachments(missing, to: worker)
        for segment in missing { workers[worker].sentSegments.insert(segment.id) }
    }

    private func define(_ definition: FunctionDefinition, on worker: Int) {
        guard !functions.has(definition.id, on: worker) else { return }
        do {
            try attach(definition.attachments, to: worker)
        } catch {
            functions.markBroken(definition.id, error)
        }
        MasterCodec.define(definition, into: &writer)
        backend.send(&writer, to: worker)
        functions.record(definition.id, on: worker)
    }

    private func send(_ job: Job, to worker: Int, now: UInt64) -> Bool {
        ensureInitialized(worker)
        let function = job.function
        define(function, on: worker)
        if !functions.broken.isEmpty, let broken = functions.broken[function.id] {
            job.failAll(broken)
            return true
        }
        let bundling = backend.schedulesInputs
        guard let span = bundling ? job.takeSpan(now: now, upTo: bundleSize(for: worker, job: job)) : job.takeSpan(now: now)
        else { return false }
        if bundling {
            MasterCodec.beginBundle(
                task: ledger.upcomingID, function: function.id, chunkSize: job.inputsPerChunk,
                timeoutNanoseconds: job.options.timeoutNanoseconds, into: &writer)
        } else {
            MasterCodec.beginChunk(task: ledger.upcomingID, function: function.id, into: &writer)
        }
        do {
            // Plain numbers cannot mention a shared segment: no collecting context per chunk.
            let segments: [SegmentStorage]
            if job.encodesPlainInputs {
                try job.encode(span, into: &writer)
                segments = []
            } else {
                segments = try AttachmentContext.collecting { try job.encode(span, into: &writer) }.1
            }
            if !segments.isEmpty {
                // The chunk is not sent yet, so the descriptors still go first.
                let chunk = writer
                try attach(segments, to: worker)
                writer = chunk
            }
        } catch {
            if runHalvesAgain(span, of: job) { return true }
            let failure = PoolError(.encoding, "cannot encode an input: \(error)")
            for index in span.first..<span.end { job.inputFailed(index, error: failure, as: nil, now: now) }
            return true
        }
        workers[worker].sent &+= 1
        let task = ledger.record(job: job, span: span, worker: worker, chunk: workers[worker].sent)
        backend.send(&writer, to: worker)
        if workers[worker].tasks.isEmpty { workers[worker].lastReply = now }
        workers[worker].tasks.append(task.id)
        if job.exclusive { workers[worker].exclusive = true }
        workers[worker].tasksAssigned += 1
        if !bundling, let limit = maxTasksPerChild, workers[worker].tasksAssigned >= limit {
            // After its last allowed task, a worker is told to stop; it is replaced when it exits.
            workers[worker].retiring = true
            backend.stop(worker: worker)
        }
        return true
    }

    /// A scheduling slot (`PoolBackend.schedulesInputs`) holds this many bundles: one its
    /// processes run, one that arrives meanwhile.
    static let bundlesInFlight = 2

    /// How many inputs a bundle for a scheduling slot carries: `chunksPerLane` chunks for each
    /// of its processes (`bundleChunksPerLane`) — so the engine's cost per input falls with the
    /// number of inputs per bundle, and the slot still hands them out a chunk at a time (the
    /// balance of the call's chunk size).
    private func bundleSize(for worker: Int, job: Job) -> Int {
        job.inputsPerChunk * max(1, backend.lanes(of: worker)) * workers[worker].bundleChunksPerLane
    }

    /// The longest a slot's bundle should take, about: two of the backend's round trips.
    private var bundleTarget: Double { 2 * Double(backend.pipelineNanoseconds) }

    // MARK: where each worker is

    /// The task `worker` is running now, if the engine can tell: from the shared progress
    /// words, or (without them) the oldest task it holds.
    private func runningTask(on worker: Int) -> TaskLedger.Task? {
        let slot = workers[worker]
        guard let first = slot.tasks.first else { return nil }
        guard let progress = backend.progress(of: worker) else { return ledger[first] }
        let taken = progress.snapshot().taken
        for id in slot.tasks {
            if let task = ledger[id], task.chunk == taken { return task }
        }
        return nil
    }

    /// Takes back every chunk `worker` has not started and queues its inputs again (their
    /// jobs run them elsewhere). Returns whether anything was withdrawn.
    private func withdraw(from worker: Int) -> Bool {
        guard let progress = backend.progress(of: worker) else { return false }
        let taken = progress.withdraw(sent: workers[worker].sent)
        if let initializerChunk = workers[worker].initializerChunk, !WorkerProgress.isAtOrAfter(taken, initializerChunk) {
            workers[worker].initialized = false
            workers[worker].initializerChunk = nil
        }
        var withdrew = false
        workers[worker].tasks.removeAll { id in
            guard let task = ledger[id] else { return false }
            guard !WorkerProgress.isAtOrAfter(taken, task.chunk) else { return false }
            _ = ledger.settle(id, from: worker)
            task.job?.runAgain(task.span)
            withdrew = true
            return true
        }
        if workers[worker].tasks.isEmpty { workers[worker].exclusive = false }
        return withdrew
    }

    /// A free worker never waits long while inputs nobody started sit behind another worker's
    /// running task: when a worker is idle and nothing is left to send, the chunks waiting
    /// behind a task that has run for longer than `stealAge` (and twice its worker's usual
    /// time) are withdrawn and sent again. Younger tasks are left alone: re-sending their
    /// followers would cost more than waiting for them (short tasks at the end of a map).
    private func rebalance(now: UInt64) -> Bool {
        // Without shared progress words (MPI, in-process) nothing can be withdrawn.
        guard backend.progress(of: 0) != nil else { return false }
        guard !jobs.isEmpty, !jobs.contains(where: { $0.hasSpan(now: now) }) else { return false }
        guard
            workers.indices.contains(where: { worker in
                let slot = workers[worker]
                return slot.tasks.isEmpty && !slot.retiring && !slot.isVacant && backend.canAccept(worker: worker)
                    && maxTasksPerChild.map { slot.tasksAssigned < $0 } ?? true
            })
        else { return false }
        var withdrew = false
        for worker in workers.indices where workers[worker].tasks.count > 1 && !workers[worker].exclusive {
            // The running task started when the worker last replied (or was sent work idle).
            let slot = workers[worker]
            let due = slot.lastReply &+ max(Self.stealAge, UInt64(2 * max(0, slot.serviceNanoseconds)))
            if now < due {
                nextTimer = min(nextTimer ?? due, due)
                continue
            }
            if withdraw(from: worker) { withdrew = true }
        }
        return withdrew
    }

    /// How long a task must have run before what waits behind it is withdrawn (ns).
    static let stealAge: UInt64 = 1_000_000

    /// Wedged workers. A worker takes each chunk it holds as soon as it has read the message
    /// (before it decodes the function value or runs anything), within microseconds of
    /// finishing the one before or of starting. One that has not taken the first chunk it holds
    /// for `wedgeNanoseconds`, asleep (not running, not waiting for a device, not held by a
    /// debugger) and having used under 1 % of a CPU meanwhile, is stuck before running anything
    /// of it — say a `.fork` child that met a lock another thread held at the fork, reading its
    /// first message — and would keep its inputs for ever where the call set no time limit.
    /// Its chunks are withdrawn (they run elsewhere, and it skips them should it ever read
    /// them), and it is killed and replaced: no input is charged. A worker still reading a
    /// large message uses CPU or waits for a device (its binary paged in from a slow file
    /// system) and is watched afresh; one running the pool's initializer has taken that chunk.
    /// A hang after the take (in the function's decoding, the initializer, the task) is the
    /// call's time limit's to end (`enforceInitializerTimeLimit` for the initializer). Without the process's state (`PoolBackend.activity` nil) the
    /// engine cannot tell a wedged worker from a slow one and leaves it alone. Three workers of
    /// one slot in a row wedged before a task's answer break the pool (`wedgedStarts`). Looked
    /// at once a second; when the engine's rounds stopped for longer (a long callback on its
    /// thread), what was seen before is forgotten, so only time the engine watched counts.
    private func replaceWedgedWorkers(now: UInt64) -> Bool {
        let away = now &- lastWedgeCheck > 3 * Self.wedgeCheckInterval
        lastWedgeCheck = now
        guard backend.canReplaceWorkers, !backend.schedulesInputs else { return false }
        var acted = false
        for worker in workers.indices {
            guard workers[worker].killedFor == nil, let progress = backend.progress(of: worker),
                let first = firstUnansweredChunk(of: worker)
            else {
                workers[worker].wedgeWatch.forget()
                continue
            }
            guard
                let waited = workers[worker].wedgeWatch.look(
                    first: first, taken: progress.snapshot().taken, activity: { backend.activity(of: worker) }, now: now,
                    away: away, limit: wedgeNanoseconds)
            else { continue }
            _ = withdraw(from: worker)
            // Taken just now: not wedged after all.
            if WorkerProgress.isAtOrAfter(progress.snapshot().taken, first) { continue }
            workers[worker].killedFor = .wedged
            guard backend.kill(worker: worker) else {
                workers[worker].killedFor = nil
                continue
            }
            warnWedged(backend.identity(of: worker), held: "\(waited / 1_000_000_000) s", killer: "")
            backend.killedBeforeFirstTask(worker: worker)
            acted = true
        }
        return acted
    }

    /// Says that a worker held its work for `held` without starting it and was killed
    /// (`killer`: "" by the engine, " by its rank" by the MPI worker rank that hosts it).
    private func warnWedged(_ identity: WorkerDied, held: String, killer: String) {
        let place = workerPlace(pid: identity.pid, rank: identity.rank, host: identity.host, unnamed: "a worker")
        logger.warning(
            """
            \(place) held its work for \(held) without starting it, asleep and using no CPU: killed\(killer) and \
            replaced; its inputs run on other workers, none is lost
            """)
    }

    /// The number of the first chunk `worker` holds unanswered: the initializer's, or its
    /// oldest task's.
    private func firstUnansweredChunk(of worker: Int) -> UInt32? {
        if let chunk = workers[worker].initializerChunk { return chunk }
        guard let id = workers[worker].tasks.first else { return nil }
        return ledger[id]?.chunk
    }

    /// Kills the workers whose running input is past its job's time limit (withdrawing what
    /// waits behind it first); notes when the next limit falls due.
    private func enforceTimeLimits(now: UInt64) -> Bool {
        // A scheduling slot applies each input's limit itself (the bundle carries it).
        guard !backend.schedulesInputs, jobs.contains(where: { $0.options.timeoutNanoseconds != nil }) else { return false }
        var acted = false
        for worker in workers.indices where !workers[worker].tasks.isEmpty && workers[worker].killedFor == nil {
            if let due = enforceInitializerTimeLimit(on: worker, now: now) {
                if due <= now { acted = true } else { nextTimer = min(nextTimer ?? due, due) }
                continue
            }
            guard let running = runningTask(on: worker), let job = running.job, !job.finished,
                let limit = job.options.timeoutNanoseconds
            else {
                workers[worker].observed = nil
                continue
            }
            let progress = backend.progress(of: worker)
            let input = progress.map { min(max(0, $0.snapshot().input), running.span.count - 1) } ?? 0
            if workers[worker].observed?.task != running.id || workers[worker].observed?.input != input {
                // Seen now; without shared progress the oldest task started at the worker's
                // last reply (or when it was sent to the idle worker): `lastReply`.
                workers[worker].observed = (running.id, input, progress == nil ? workers[worker].lastReply : now)
            }
            let due = workers[worker].observed!.since &+ limit
            if now >= due {
                acted = true
                if backend.canReplaceWorkers {
                    _ = withdraw(from: worker)
                    workers[worker].killedFor = .timedOut(task: running.id, input: input, limit: limit)
                    if !backend.kill(worker: worker) { workers[worker].killedFor = nil }
                } else {
                    giveUp(running, on: worker, limit: limit, now: now)
                }
            } else {
                nextTimer = min(nextTimer ?? due, due)
            }
        }
        return acted
    }

    /// A worker running the pool's initializer while it holds tasks: the time limit of the
    /// first task's call applies to the initializer's run (a hung initializer would hold the
    /// call for ever otherwise). Past it, the worker is killed and replaced, its tasks run
    /// elsewhere and no input is charged (`stuckInInitializer`: three such workers in a row of
    /// one slot break the pool). Returns when the limit falls due (now or earlier: acted), or
    /// nil if the worker is not in its initializer or the call has no limit.
    private func enforceInitializerTimeLimit(on worker: Int, now: UInt64) -> UInt64? {
        guard backend.canReplaceWorkers, let initializerChunk = workers[worker].initializerChunk,
            let progress = backend.progress(of: worker), progress.snapshot().taken == initializerChunk,
            let first = workers[worker].tasks.first, let job = ledger[first]?.job, !job.finished,
            let limit = job.options.timeoutNanoseconds
        else { return nil }
        // The initializer is task 0.
        if workers[worker].observed?.task != 0 { workers[worker].observed = (0, -1, now) }
        let due = workers[worker].observed!.since &+ limit
        guard now >= due else { return due }
        _ = withdraw(from: worker)
        workers[worker].killedFor = .stuckInInitializer(limit: limit)
        if backend.kill(worker: worker) {
            let place = workerPlace(pid: backend.identity(of: worker).pid, rank: nil, host: nil, unnamed: "a worker")
            logger.warning(
                """
                \(place) ran the pool's initializer past the call's time limit (\(Double(limit) / 1e9) s): killed and \
                replaced; its inputs run on other workers, none is charged
                """)
            backend.killedBeforeFirstTask(worker: worker)
        } else {
            workers[worker].killedFor = nil
        }
        return due
    }

    /// A worker that cannot be killed (an MPI rank) keeps running a task past its limit: its
    /// inputs fail with `TaskTimedOut` now, and its late reply is dropped.
    private func giveUp(_ task: TaskLedger.Task, on worker: Int, limit: UInt64, now: UInt64) {
        _ = ledger.settle(task.id, from: worker)
        workers[worker].observed = nil
        guard let job = task.job else { return }
        let identity = backend.identity(of: worker)
        for index in task.span.first..<task.span.end {
            job.inputFailed(
                index,
                error: TaskTimedOut(
                    inputIndex: index, seconds: Double(limit) / 1e9, pid: identity.pid,
                    rank: identity.rank, host: identity.host),
                as: .timedOut, now: now)
        }
    }

    // MARK: events

    private func handle(_ event: BackendEvent, now: UInt64) {
        switch event {
        case .reply(let worker, let reply):
            handleReply(from: worker, reply, now: now)
        case .malformed(let worker, let error):
            // Untrusted input: a worker that sends nonsense is ended like a crashed one.
            if !backend.kill(worker: worker) {
                breakPool(PoolError(.protocolViolation, "a worker sent a malformed message: \(error)"))
            }
        case .ended(let worker, let exit):
            handleEnd(of: worker, exit)
        case .failed(let error):
            breakPool(error)
        case .started(let worker):
            if workers[worker].vacancy?.awaitingStart == true { filled(worker) }
        case .notStarted(let worker, let error):
            guard workers[worker].vacancy?.awaitingStart == true else { break }
            runElsewhere(whatWasSentTo: worker)
            startFailed(worker, error, now: now)
        }
    }

    /// Removes `id` from `worker`'s list (also a task given up on or withdrawn) and notes the reply.
    private func noteReply(_ id: UInt64, from worker: Int, bytes: Int, now: UInt64) {
        if let position = workers[worker].tasks.firstIndex(of: id) { workers[worker].tasks.remove(at: position) }
        if workers[worker].tasks.isEmpty { workers[worker].exclusive = false }
        workers.noteReply(from: worker, now: now)
        workers[worker].lastReplyBytes = bytes
        workers[worker].observed = nil
        startDeaths = 0
        wedgedStarts[worker] = 0
    }

    /// A worker's reply, seen at `now`.
    private func handleReply(from worker: Int, _ reply: WorkerReply, now: UInt64) {
        switch reply {
        case .stopped:
            break
        case .log(let record):
            record.emit(from: backend.identity(of: worker))
        case .result(let id, var outputs):
            if id == 0 {
                // (A worker may still wedge before its first task's answer: `wedgedStarts`.)
                workers[worker].initializerChunk = nil
                startDeaths = 0
                return
            }
            noteReply(id, from: worker, bytes: outputs.remaining, now: now)
            guard let task = ledger.settle(id, from: worker), let job = task.job else { return }
            noteBundle(task, from: worker)
            guard job.wantsWork else { return }
            do {
                try job.deliver(task.span, outputs: &outputs)
                job.forgetHistory(task.span)
            } catch {
                let codec = !(error is PoolError || error is CheckpointError)
                if codec && runHalvesAgain(task.span, of: job) { return }
                let failure: any Error =
                    codec
                    ? PoolError(.encoding, "cannot decode results of \(FunctionIdentity.readableName(job.function.typeName)): \(error)")
                    : error
                for index in task.span.first..<task.span.end { job.inputFailed(index, error: failure, as: nil, now: now) }
            }
        case .outcomes(let id, var pieces):
            noteReply(id, from: worker, bytes: pieces.remaining, now: now)
            guard let task = ledger.settle(id, from: worker), let job = task.job else { return }
            noteBundle(task, from: worker)
            guard job.wantsWork else { return }
            settleOutcomes(of: task, job: job, &pieces, from: worker, now: now)
        case .failure(let id, let index, let kind, let typeName, let message, var outputs):
            if id == 0 {
                // The initializer threw: the pool cannot work.
                workers[worker].initializerChunk = nil
                breakPool(PoolError(.startFailed, "the pool's initializer threw \(typeName): \(message)"))
                return
            }
            noteReply(id, from: worker, bytes: outputs.remaining, now: now)
            guard let task = ledger.settle(id, from: worker), let job = task.job, job.wantsWork else { return }
            let span = task.span
            switch kind {
            case .threw, .resultNotEncodable:
                let position = min(max(0, index), span.count - 1)
                let (before, culprit, after) = pieces(of: span, at: position)
                job.split(span, into: [before, culprit, after].filter { $0.count > 0 })
                if before.count > 0 {
                    do {
                        try job.deliver(before, outputs: &outputs)
                        job.forgetHistory(before)
                    } catch {
                        job.runAgain(before)
                    }
                }
                if kind == .resultNotEncodable {
                    // Deterministic: no retry.
                    job.inputFailed(culprit.first, error: PoolError(.encoding, "input \(culprit.first): \(message)"), as: nil, now: now)
                } else {
                    let identity = backend.identity(of: worker)
                    let remote = RemoteError(
                        typeName: typeName, message: message, inputIndex: culprit.first, pid: identity.pid,
                        rank: identity.rank, host: identity.host)
                    job.inputFailed(culprit.first, error: remote, as: .threw, now: now)
                }
                job.runAgain(after)
            case .machinery:
                let unresolvable = typeName == "PoolError" && message.contains("by name")
                // The chunk's inputs did not decode there: find the ones that do not alone.
                if !unresolvable && runHalvesAgain(span, of: job) { return }
                let failure = PoolError(unresolvable ? .unresolvableFunction : .encoding, message)
                for input in span.first..<span.end { job.inputFailed(input, error: failure, as: nil, now: now) }
            case .initializer:
                let failure = PoolError(.startFailed, message)
                for input in span.first..<span.end { job.inputFailed(input, error: failure, as: nil, now: now) }
            }
        }
    }

    /// For a scheduling slot, after an answer: bundles grow (doubling, up to 64 chunks per
    /// process) while a full one is answered in under half of `bundleTarget` — the time then
    /// goes to the round trip, not to the work — and shrink (halving, down to one chunk per
    /// process) when one takes more than twice as long: long tasks are sent a chunk per process,
    /// so that nothing waits behind them at the slot while another slot is idle.
    private func noteBundle(_ task: TaskLedger.Task, from worker: Int) {
        guard backend.schedulesInputs, let job = task.job else { return }
        let perChunk = max(1, job.inputsPerChunk)
        let chunks = (task.span.count + perChunk - 1) / perChunk
        let lanes = max(1, backend.lanes(of: worker))
        let current = workers[worker].bundleChunksPerLane
        let took = workers[worker].lastServiceNanoseconds
        if took > 2 * bundleTarget {
            workers[worker].bundleChunksPerLane = max(1, current / 2)
        } else if took < bundleTarget / 2, chunks >= current * lanes {
            workers[worker].bundleChunksPerLane = min(Self.maxBundleChunksPerLane, current * 2)
        }
    }

    /// The most chunks per process a bundle carries.
    static let maxBundleChunksPerLane = 64

    /// A bundle answered input by input (`Outcomes`): the runs that succeeded are delivered,
    /// each failed input fails alone with what the slot said (its retry policy applies), and
    /// inputs the answer does not cover run again.
    private func settleOutcomes(of task: TaskLedger.Task, job: Job, _ reader: inout WireReader, from worker: Int, now: UInt64) {
        let span = task.span
        let pieces: [Outcomes.Piece]
        do {
            pieces = try Outcomes.pieces(&reader)
        } catch {
            let failure = PoolError(.protocolViolation, "a worker answered a bundle unreadably: \(error)")
            for index in span.first..<span.end { job.inputFailed(index, error: failure, as: nil, now: now) }
            return
        }
        var spans: [InputSpan] = []
        var position = span.first
        for piece in pieces where position < span.end {
            let count = min(piece.count, span.end - position)
            spans.append(InputSpan(first: position, count: count))
            position += count
        }
        let rest = InputSpan(first: position, count: span.end - position)
        job.split(span, into: (spans + [rest]).filter { $0.count > 0 })
        let identity = backend.identity(of: worker)
        for (piece, part) in zip(pieces, spans) {
            switch piece {
            case .outputs(_, let bytes):
                var outputs = WireReader(bytes)
                do {
                    try job.deliver(part, outputs: &outputs)
                    job.forgetHistory(part)
                } catch {
                    let failure: any Error =
                        error is PoolError || error is CheckpointError
                        ? error : PoolError(.encoding, "cannot decode results of \(FunctionIdentity.readableName(job.function.typeName)): \(error)")
                    for index in part.first..<part.end { job.inputFailed(index, error: failure, as: nil, now: now) }
                }
            case .failed(let failure):
                let (error, kind) = failure.error(inputIndex: part.first, worker: identity)
                job.inputFailed(part.first, error: error, as: kind, now: now)
            }
        }
        job.runAgain(rest)
    }

    /// A span that failed as a whole in a codec — an input or a result that cannot be encoded
    /// or decoded, a worker that died while decoding or encoding the chunk — runs again in two
    /// halves, each halved again if it fails so: only the inputs that fail alone are charged,
    /// in a number of rounds that grows with the logarithm of the chunk size. False for a
    /// single input (it is the one that fails).
    private func runHalvesAgain(_ span: InputSpan, of job: Job) -> Bool {
        guard span.count > 1 else { return false }
        let half = span.count / 2
        let halves = [InputSpan(first: span.first, count: half), InputSpan(first: span.first + half, count: span.count - half)]
        job.split(span, into: halves)
        for piece in halves { job.runAgain(piece) }
        return true
    }

    /// `span` around position `position`: the inputs before it, it, and those after it.
    private func pieces(of span: InputSpan, at position: Int) -> (InputSpan, InputSpan, InputSpan) {
        (
            InputSpan(first: span.first, count: position),
            InputSpan(first: span.first + position, count: 1),
            InputSpan(first: span.first + position + 1, count: span.count - position - 1)
        )
    }

    /// A worker ended: the input it was running fails (`WorkerDied`, or `TaskTimedOut` /
    /// cancelled when the engine killed it for that); every other input it held runs again
    /// elsewhere. Then the slot gets a new worker.
    private func handleEnd(of worker: Int, _ exit: ChildExit) {
        let now = clock()
        let slot = workers[worker]
        // Killed by the engine, or as wedged by the MPI worker rank that hosts it.
        let killedFor = slot.killedFor ?? (backend.endedWedged(worker: worker) ? .wedged : nil)
        let live = backend.progress(of: worker)
        let progress = live?.snapshot() ?? backend.finalProgress(of: worker)
        var identity = backend.identity(of: worker)
        switch exit {
        case .signaled(let signal): identity.signal = signal
        case .exited(let code): identity.exitCode = code
        }
        // Killed by the pool (a time limit, a cancellation, a wedge): not for memory.
        if slot.killedFor != nil { identity.outOfMemory = false }
        if slot.killedFor == nil, killedFor == .wedged {
            warnWedged(identity, held: "\(WedgeWatch.defaultLimitNanoseconds / 1_000_000_000) s or more", killer: " by its rank")
        }
        var hadWork = slot.initializerChunk != nil
        for (position, id) in slot.tasks.enumerated() {
            guard let task = ledger.settle(id, from: worker) else { continue }
            hadWork = true
            guard let job = task.job, job.wantsWork else { continue }
            var running: Bool
            var inputPosition = 0
            if let progress {
                running = task.chunk == progress.taken
                inputPosition = min(max(0, progress.input), task.span.count - 1)
            } else {
                running = position == 0
            }
            // Killed for its limit before it took the task: where the engine sees progress only
            // at the end (an MPI rank's worker), the limit counts from when the task reached the
            // free worker, and may run out on the way. The input fails once (`TaskTimedOut`);
            // run again, it would be killed again, and again (a 1e-12 s limit: 31 kills).
            if !running, live == nil, case .timedOut(let timedOutTask, _, _) = killedFor, timedOutTask == id {
                running = true
                inputPosition = 0
            }
            guard running else {
                job.runAgain(task.span)
                continue
            }
            // Died decoding the chunk's inputs or encoding its results: no input is charged
            // yet; the halves run again until the one that ends its worker runs alone.
            if progress?.input == WorkerProgress.betweenInputs, killedFor == nil, runHalvesAgain(task.span, of: job) {
                continue
            }
            let (before, culprit, after) = pieces(of: task.span, at: inputPosition)
            job.split(task.span, into: [before, culprit, after].filter { $0.count > 0 })
            job.runAgain(before)
            job.runAgain(after)
            var died = identity
            died.inputIndex = culprit.first
            switch killedFor {
            // Without live progress words the limit was enforced on the task's start, not its input's.
            case .timedOut(let timedOutTask, let timedOutInput, let limit)
            where timedOutTask == id && (timedOutInput == inputPosition || live == nil):
                job.inputFailed(
                    culprit.first,
                    error: TaskTimedOut(
                        inputIndex: culprit.first, seconds: Double(limit) / 1e9,
                        pid: identity.pid, rank: identity.rank, host: identity.host),
                    as: .timedOut, now: now)
            default:
                job.inputFailed(culprit.first, error: died, as: .workerDied, now: now)
            }
        }
        // Died before taking its first task (start-up or the initializer crashed)?
        let beforeFirstTask: Bool
        if let progress {
            beforeFirstTask = progress.taken == 0 || progress.taken == slot.initializerChunk
        } else {
            beforeFirstTask = slot.completedSinceStart == 0
        }
        // A worker killed as wedged counts, in its slot, if it never answered a task (its
        // initializer's answer aside). A retiring one too (`maxTasksPerChild`: told to stop as
        // its last task was sent, it exits of itself only after taking it); until session 21 it
        // was not counted, and a start that failed every time with `maxTasksPerChild: 1` was
        // replaced for ever.
        var stuckInInitializer: UInt64?
        if case .stuckInInitializer(let limit) = killedFor { stuckInInitializer = limit }
        if killedFor == .wedged || stuckInInitializer != nil {
            if slot.completedSinceStart == 0 { wedgedStarts[worker] += 1 }
        } else if hadWork && beforeFirstTask && killedFor == nil {
            startDeaths += 1
        }
        // (A slot whose start was asked for hears `started` before its worker's end — one MPI
        // channel, in order — so it is not vacant here; counted out anyway if it were.)
        if workers[worker].vacancy != nil { vacantSlots -= 1 }
        workers.reset(worker)
        functions.forget(worker: worker)
        if lock.withLock({ terminating || stopped }) { return }
        guard backend.canReplaceWorkers else {
            breakPool(PoolError(.startFailed, "\(identity); this backend cannot replace a worker, so the pool cannot go on"))
            return
        }
        if startDeaths >= Self.startDeathLimit {
            breakPool(
                PoolError(
                    .startFailed,
                    """
                    \(startDeaths) workers in a row ended before their first task (last: \(identity)); \
                    the pool's initializer or the worker's start-up crashes — fix it and create a new Pool
                    """))
            return
        }
        if wedgedStarts[worker] >= Self.startDeathLimit, let limit = stuckInInitializer {
            breakPool(
                PoolError(
                    .startFailed,
                    """
                    \(wedgedStarts[worker]) workers in a row in one place ran the pool's initializer past the call's \
                    time limit (\(Double(limit) / 1e9) s; last: \(identity)): the initializer hangs — fix it and create a new Pool
                    """))
            return
        }
        if wedgedStarts[worker] >= Self.startDeathLimit {
            breakPool(
                PoolError(
                    .startFailed,
                    """
                    \(wedgedStarts[worker]) workers in a row in one place were killed before their first task, none \
                    taken in \(Double(wedgeNanoseconds) / 1e9) s (last: \(identity)); the worker's start-up hangs (a .fork \
                    child waiting for a lock another thread held at the fork? try .spawn) — fix it and create a new Pool
                    """))
            return
        }
        startReplacement(worker, now: now)
    }

    // MARK: vacant slots

    // A replacement that cannot start for a reason that may pass — the system out of processes
    // (`EAGAIN`), of memory, or this process out of descriptors — leaves its slot vacant
    // rather than breaking the pool: a long run goes on with the other workers, and the
    // engine starts the slot's worker again after a pause (10 ms, doubling up to 1 s). Only
    // when no slot has had a worker for `vacancyLimitNanoseconds` while work waited does the
    // pool break, with the reason (an idle pool keeps trying). Any other failure breaks it at
    // once, as before.

    /// How long the engine retries when no slot has a worker (ns). Tests shorten it.
    var vacancyLimitNanoseconds: UInt64 = 60_000_000_000
    /// How many slots are vacant (none: `fillVacancies` returns at once, every round).
    private var vacantSlots = 0
    /// Since when every slot has been vacant while work waited.
    private var workerlessSince: UInt64?

    /// Starts `worker`'s replacement; a failure that may pass leaves the slot vacant. A start
    /// the backend only asked for (an MPI worker rank's, `ReplacementStart.requested`) is sent
    /// work at once, and counts as vacant (for the no-worker limit, for a new request) until
    /// the backend says how it went (`BackendEvent.started`, `.notStarted`: what was sent then
    /// runs elsewhere). Until session 22 a start that failed on the rank broke the pool.
    private func startReplacement(_ worker: Int, now: UInt64) {
        let start: ReplacementStart
        do {
            // Out of this thread's fork activity while it forks (a worker rank's engine,
            // `NodeScheduler`, may be stepped by a thread that holds none).
            start = try ForkGuard.whileBlocked { try backend.replace(worker: worker) }
        } catch {
            startFailed(worker, error, now: now)
            return
        }
        switch start {
        case .started:
            filled(worker)
        case .requested:
            vacate(worker, now: now) { $0.awaitingStart = true }
        }
    }

    /// Marks `worker`'s slot vacant (since `now` if it was not), changed by `change`.
    private func vacate(_ worker: Int, now: UInt64, _ change: (inout WorkerTable.Vacancy) -> Void) {
        var vacancy = workers[worker].vacancy ?? WorkerTable.Vacancy(since: now, retryAt: 0, failures: 0, reason: "")
        change(&vacancy)
        if workers[worker].vacancy == nil { vacantSlots += 1 }
        workers[worker].vacancy = vacancy
    }

    /// A vacant slot's worker started. (What was sent to it while its start was only asked
    /// for stays its work.)
    private func filled(_ worker: Int) {
        guard let vacancy = workers[worker].vacancy else { return }
        workers[worker].vacancy = nil
        vacantSlots -= 1
        workerlessSince = nil
        if vacancy.failures > 0 { logger.notice("swift-multiprocessing: worker slot \(worker) has a worker again") }
    }

    /// What was sent to `worker` while its start was only asked for, and did not start there
    /// (the hosting rank dropped it), runs again elsewhere; no input is charged.
    private func runElsewhere(whatWasSentTo worker: Int) {
        for id in workers[worker].tasks {
            guard let task = ledger.settle(id, from: worker), let job = task.job, job.wantsWork else { continue }
            job.runAgain(task.span)
        }
        let vacancy = workers[worker].vacancy
        workers.reset(worker)
        workers[worker].vacancy = vacancy
        functions.forget(worker: worker)
    }

    /// `worker`'s replacement did not start: the slot stays vacant, and is tried again after a
    /// pause, if the reason may pass; the pool breaks otherwise.
    private func startFailed(_ worker: Int, _ error: any Error, now: UInt64) {
        guard Self.mayPass(error) else {
            breakPool(PoolError(.startFailed, "cannot start a replacement worker: \(error)"))
            return
        }
        if (workers[worker].vacancy?.failures ?? 0) == 0 {
            logger.warning(
                """
                swift-multiprocessing: cannot start a replacement worker (\(error)); the pool goes on \
                without it and tries again
                """)
        }
        vacate(worker, now: now) { vacancy in
            vacancy.failures += 1
            vacancy.retryAt = now &+ WorkerTable.Vacancy.pause(afterFailures: vacancy.failures)
            vacancy.reason = "\(error)"
            vacancy.awaitingStart = false
        }
    }

    /// Whether a start that threw `error` may succeed later: the system or this process out of
    /// processes, memory or descriptors, or the fork server lost (the next use starts another).
    static func mayPass(_ error: any Error) -> Bool {
        if error is ForkServerLost { return true }
        guard let code = systemErrno(of: error) else { return false }
        return [EAGAIN, ENOMEM, EMFILE, ENFILE].contains(code)
    }

    /// The `errno` a start failed with, where it was a system call's failure.
    static func systemErrno(of error: any Error) -> Int32? {
        switch error {
        case let refusal as ForkRefusal: return refusal.error.errno
        case let error as SystemError: return error.errno
        case let remote as RemoteStartFailure: return remote.errno == 0 ? nil : remote.errno
        default: return nil
        }
    }

    /// Starts the workers of vacant slots that are due; breaks the pool when no slot has had
    /// a worker for `vacancyLimitNanoseconds` while work waited. Returns whether a slot got a
    /// worker or the pool broke.
    private func fillVacancies(now: UInt64) -> Bool {
        guard vacantSlots > 0 else { return false }
        var filled = false
        for worker in workers.indices {
            guard let vacancy = workers[worker].vacancy, !vacancy.awaitingStart, now >= vacancy.retryAt else { continue }
            if lock.withLock({ terminating || stopped }) { return filled }
            startReplacement(worker, now: now)
            if workers[worker].vacancy == nil { filled = true }
        }
        // No worker at all while work waits: counted from when that began.
        if vacantSlots == workers.indices.count && !(jobs.isEmpty && ledger.isEmpty) {
            let since = workerlessSince ?? now
            workerlessSince = since
            if now &- since >= vacancyLimitNanoseconds,
                let last = workers.indices.compactMap({ workers[$0].vacancy }).max(by: { $0.failures < $1.failures })
            {
                breakPool(
                    PoolError(
                        .startFailed,
                        """
                        no worker could be started for \(Double(now &- since) / 1e9) s while work waited \
                        (\(last.failures == 0 ? "a start was asked of a worker rank, which did not answer" : "\(last.failures) tries in one slot; last: \(last.reason)")); \
                        free processes, memory or descriptors and create a new Pool
                        """))
                for worker in workers.indices { workers[worker].vacancy = nil }
                vacantSlots = 0
                workerlessSince = nil
                return true
            }
        } else {
            workerlessSince = nil
        }
        for worker in workers.indices {
            if let vacancy = workers[worker].vacancy, !vacancy.awaitingStart {
                nextTimer = min(nextTimer ?? vacancy.retryAt, vacancy.retryAt)
            }
        }
        return filled
    }

    private func stopWorkersGracefully() {
        for worker in workers.indices where !workers[worker].retiring && !workers[worker].isVacant {
            backend.stop(worker: worker)
        }
        backend.shutdown(deadline: monotonicNanoseconds() &+ 5_000_000_000)
    }
}

/// Which pool's engine runs on this thread (callbacks run there): a blocking wait for that
/// pool on its own thread could never end, so it fails at once instead (Python's
/// "cannot join current thread").
enum PoolThread {
    private static let key: pthread_key_t = {
        var key = pthread_key_t()
        let result = pthread_key_create(&key, nil)
        precondition(result == 0, "pthread_key_create failed (\(result)): the process is out of thread-local keys")
        return key
    }()

    static func mark(_ engine: PoolEngine) {
        pthread_setspecific(key, UnsafeRawPointer(Unmanaged.passUnretained(engine).toOpaque()))
    }

    static func isCurrent(_ engine: ObjectIdentifier) -> Bool {
        guard let current = pthread_getspecific(key) else { return false }
        return ObjectIdentifier(Unmanaged<PoolEngine>.fromOpaque(current).takeUnretainedValue()) == engine
    }

    static func waitMessage(_ call: String) -> String {
        "\(call) was called in a callback, on the pool's own thread, which it would wait for for ever: call it from "
            + "another thread (callbacks should be short), or give get() a timeout"
    }
}
