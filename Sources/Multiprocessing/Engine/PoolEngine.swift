import Synchronization

/// The master's scheduler, shared by both backends. One thread per pool runs `loop()`:
/// it takes submitted jobs, keeps every worker fed with a few chunks in flight, routes
/// replies to their jobs, and turns a worker's death into `WorkerDied` for exactly the
/// chunks it held — then replaces it.
final class PoolEngine: @unchecked Sendable {
    let backend: any PoolBackend
    let maxTasksPerChild: Int?
    let initializer: FunctionDefinition?

    // Shared with callers, under `lock`.
    private let lock = ConditionLock()
    private var incoming: [Job] = []
    private var closing = false
    private var terminating = false
    private var stopped = false
    private var brokenReason: PoolError?
    private let hasIntake = Atomic<Bool>(false)

    // Engine thread only.
    private var jobs: [Job] = []
    private var tasks: [UInt64: (job: Job, span: ChunkSpan, worker: Int)] = [:]
    private var workers: [WorkerState]
    private var nextTaskID: UInt64 = 1
    private var definitions: [DefinitionKey: FunctionDefinition] = [:]
    private var nextFunctionID: UInt32 = 1
    private var clock: UInt64 = 0
    private var writer = WireWriter(capacity: 64 << 10)

    private struct DefinitionKey: Hashable {
        let typeName: String
        let bytes: [UInt8]
    }

    struct WorkerState {
        var inFlight: [UInt64] = []
        var defined: Set<UInt32> = []
        var tasksAssigned = 0
        var retiring = false
        var failuresWithoutProgress = 0
        var completedSinceStart = 0
        var lastReply: UInt64 = 0
        var serviceNanoseconds: Double = 0
        /// The last time between two replies (or from dispatch to the first).
        var lastServiceNanoseconds: Double = 0
        /// The length of the worker's last result (see `PoolBackend.lateReplyBytes`).
        var lastReplyBytes = 0
        var initialized = false
        var sentSegments: Set<SegmentID> = []
        /// Runs an exclusive job's task (see `Job.exclusive`).
        var exclusive = false
    }

    init(backend: any PoolBackend, maxTasksPerChild: Int?, initializer: FunctionDefinition?) {
        self.backend = backend
        self.maxTasksPerChild = maxTasksPerChild
        self.initializer = initializer
        self.workers = Array(repeating: WorkerState(), count: backend.workerCount)
    }

    func startThread() throws {
        try spawnThread(named: "swiftmp-pool") { [self] in loop() }
    }

    // MARK: called by any thread

    /// Queues `job`. `wake: false` when the caller will drive the engine itself right away
    /// (a synchronous call): waking the pool's thread would only race it for the work.
    func submit(_ job: Job, wake: Bool = true) throws(PoolError) {
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
        hasIntake.store(true, ordering: .sequentiallyConsistent)
        if wake || !backend.allowsCallerDriving { backend.wake() }
    }

    /// Stops taking work; workers exit when the submitted work is done.
    func close() {
        lock.withLock { closing = true }
        hasIntake.store(true, ordering: .sequentiallyConsistent)
        backend.wake()
    }

    /// Stops now: pending work fails with `PoolError.terminated`, workers are killed.
    func terminate() {
        lock.withLock { terminating = true }
        hasIntake.store(true, ordering: .sequentiallyConsistent)
        backend.wake()
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

    // MARK: the engine thread

    private enum StepOutcome {
        case progressed, idle, stopped
    }

    /// Held by whoever runs the engine: the pool's thread, or a caller driving it while it
    /// waits for its own result (`drive`). Everything marked "engine thread only" is under it.
    private let driver = ConditionLock()
    private var hasStopped = false

    /// The pool's thread: runs the engine whenever no caller drives it.
    private func loop() {
        var idleRounds = 0
        while true {
            driver.lock()
            ForkGuard.enterActivity()
            let outcome = step()
            let busy = !tasks.isEmpty
            let waitWithLock = !backend.allowsCallerDriving
            ForkGuard.leaveActivity()
            if !waitWithLock { driver.unlock() }
            switch outcome {
            case .stopped:
                if waitWithLock { driver.unlock() }
                return
            case .progressed:
                idleRounds = 0
            case .idle:
                idleRounds += 1
                if busy {
                    backend.pace(replyEvery: replyInterval())
                    backend.waitForActivity(spinning: idleRounds < 4, timeoutNanoseconds: 50_000_000) {
                        hasIntake.load(ordering: .sequentiallyConsistent)
                    }
                } else {
                    backend.waitIdle(timeoutNanoseconds: 500_000_000) {
                        hasIntake.load(ordering: .sequentiallyConsistent)
                    }
                }
            }
            if waitWithLock { driver.unlock() }
        }
    }

    /// Runs the engine on the calling thread until `isDone()` or `deadline`, if the backend
    /// allows it and nobody else is running it; returns at once otherwise. A synchronous
    /// `apply`/`map` then goes caller → worker → caller, without waking the pool's thread.
    func drive(until isDone: () -> Bool, deadline: UInt64?) {
        guard backend.allowsCallerDriving, driver.tryLock() else { return }
        ForkGuard.enterActivity()
        var idleRounds = 0
        while !isDone() {
            if let deadline, monotonicNanoseconds() >= deadline { break }
            switch step() {
            case .stopped:
                break
            case .progressed:
                idleRounds = 0
                continue
            case .idle:
                idleRounds += 1
                ForkGuard.leaveActivity()
                backend.pace(replyEvery: replyInterval())
                backend.waitForActivity(spinning: idleRounds < 4, timeoutNanoseconds: 10_000_000) {
                    isDone() || hasIntake.load(ordering: .sequentiallyConsistent)
                }
                ForkGuard.enterActivity()
                continue
            }
            break
        }
        let leftover = !jobs.isEmpty || !tasks.isEmpty
        ForkGuard.leaveActivity()
        driver.unlock()
        // Hand the rest (other callers' jobs, callbacks) back to the pool's thread.
        if leftover { backend.wake() }
    }

    /// One round of engine work. Call with `driver` held, inside `ForkGuard` activity.
    private func step() -> StepOutcome {
        if hasStopped { return .stopped }
        var progressed = false
        if hasIntake.exchange(false, ordering: .sequentiallyConsistent) {
            let (newJobs, isClosing, isTerminating) = lock.withLock { () -> ([Job], Bool, Bool) in
                let taken = incoming
                incoming.removeAll()
                return (taken, closing, terminating)
            }
            if isTerminating {
                finishAll(with: PoolError(.terminated, "the pool was terminated"), newJobs: newJobs)
                // Inside ForkGuard activity: the backend lets go of it only while it waits.
                backend.shutdown(deadline: monotonicNanoseconds())
                hasStopped = true
                markStopped()
                return .stopped
            }
            for job in newJobs { admit(job) }
            if isClosing && jobs.isEmpty && tasks.isEmpty {
                stopWorkersGracefully()
                hasStopped = true
                markStopped()
                return .stopped
            }
            progressed = true
        }
        if backend.poll({ handle($0) }) { progressed = true }
        if dispatch() { progressed = true }
        if let broken = lock.withLock({ brokenReason }), !jobs.isEmpty || !tasks.isEmpty {
            finishAll(with: broken, newJobs: [])
        }
        if lock.withLock({ closing }) && jobs.isEmpty && tasks.isEmpty {
            hasIntake.store(true, ordering: .sequentiallyConsistent)
            return .progressed
        }
        return progressed ? .progressed : .idle
    }

    private func markStopped() {
        lock.withLock {
            stopped = true
            lock.broadcast()
        }
    }

    private func admit(_ job: Job) {
        let key = DefinitionKey(typeName: job.function.typeName, bytes: job.function.bytes)
        let definition: FunctionDefinition
        if let existing = definitions[key] {
            definition = existing
        } else {
            definition = job.function
            definition.id = nextFunctionID
            nextFunctionID = nextFunctionID == UInt32.max - 1 ? 1 : nextFunctionID + 1
            definitions[key] = definition
            evictDefinitions()
        }
        definition.activeJobs += 1
        definitionOf[ObjectIdentifier(job)] = definition
        if job.finished {
            release(job)
        } else {
            jobs.append(job)
        }
    }

    private var definitionOf: [ObjectIdentifier: FunctionDefinition] = [:]
    private var brokenDefinitions: [UInt32: any Error] = [:]

    private func release(_ job: Job) {
        if let definition = definitionOf.removeValue(forKey: ObjectIdentifier(job)) {
            definition.activeJobs -= 1
            clock += 1
            definition.lastUsed = clock
        }
    }

    /// Keeps at most 64 function definitions alive in the workers.
    private func evictDefinitions() {
        guard definitions.count > 64 else { return }
        let victims = definitions.filter { $0.value.activeJobs == 0 }
            .sorted { $0.value.lastUsed < $1.value.lastUsed }
            .prefix(definitions.count - 64)
        for (key, definition) in victims {
            definitions.removeValue(forKey: key)
            for worker in workers.indices where workers[worker].defined.contains(definition.id) {
                workers[worker].defined.remove(definition.id)
                beginFrame()
                writer.write(MasterMessage.undefine.rawValue)
                writer.write(definition.id)
                sendFrame(to: worker)
            }
        }
    }

    private func beginFrame() {
        if backend.framed { Frame.begin(&writer) } else { writer.bytes.removeAll(keepingCapacity: true) }
    }

    private func sendFrame(to worker: Int) {
        if backend.framed { Frame.finish(&writer) }
        writer.bytes.withUnsafeBytes { backend.send($0, to: worker) }
    }

    /// How soon a reply can be expected: over the workers with tasks in flight, the shortest
    /// recent time between replies (the smaller of the moving average and the last interval,
    /// so one quick reply after long tasks counts at once) — or, when a worker has been
    /// silent longer than that (or has no history yet, as in a fresh pool), how long it has
    /// been silent: its current task is at least that long.
    private func replyInterval() -> Int64 {
        let now = monotonicNanoseconds()
        var shortest = Double.infinity
        for state in workers where !state.inFlight.isEmpty {
            let recent = state.serviceNanoseconds > 0 ? min(state.serviceNanoseconds, state.lastServiceNanoseconds) : 0
            let silent = Double(now &- state.lastReply)
            shortest = min(shortest, max(recent, silent))
        }
        return shortest.isFinite ? Int64(shortest) : 0
    }

    /// How many chunks a worker should hold: enough to hide a round trip for tiny tasks,
    /// few for long ones so that the load stays balanced. One more while its results are long
    /// enough to arrive late (`PoolBackend.lateReplyBytes`): the engine then learns that a
    /// task is done only when the worker has finished the next one, and with two in hand the
    /// worker would wait for rank 0 after every other task.
    private func depth(for worker: Int) -> Int {
        let service = workers[worker].serviceNanoseconds
        let late = backend.lateReplyBytes.map { workers[worker].lastReplyBytes > $0 } ?? false
        let base = service <= 0 ? 2 : max(2, min(64, Int(200_000 / service) + 1))
        return late ? base + 1 : base
    }

    /// Sends chunks to workers with room. Returns whether anything was sent.
    private func dispatch() -> Bool {
        if jobs.isEmpty { return false }
        var progressed = false
        // Drop jobs that need nothing more.
        if jobs.contains(where: { $0.isCancelled }) {
            for job in jobs where job.isCancelled { job.finished = true }
        }
        if jobs.contains(where: { $0.finished }) {
            for job in jobs where job.finished { release(job) }
            jobs.removeAll { $0.finished }
        }
        var anyReady = true
        while anyReady {
            anyReady = false
            for worker in workers.indices {
                if workers[worker].retiring || workers[worker].exclusive || workers[worker].inFlight.count >= depth(for: worker)
                    || !backend.canAccept(worker: worker) { continue }
                if let limit = maxTasksPerChild, workers[worker].tasksAssigned >= limit { continue }
                guard jobs.contains(where: { $0.hasChunkReady }) else { return progressed }
                let idle = workers[worker].inFlight.isEmpty
                guard let job = jobs.first(where: { $0.hasChunkReady && (!$0.exclusive || idle) }) else { continue }
                if send(job, to: worker) {
                    progressed = true
                    anyReady = true
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
        beginFrame()
        writer.write(MasterMessage.chunk.rawValue)
        writer.write(UInt64(0))
        writer.write(initializer.id)
        writer.write(UInt64(1))
        sendFrame(to: worker)
    }

    /// Sends the descriptors of `segments` the worker does not have yet.
    private func attach(_ segments: [SegmentStorage], to worker: Int) throws {
        let missing = segments.filter { !workers[worker].sentSegments.contains($0.id) }
        guard !missing.isEmpty else { return }
        try backend.sendAttachments(missing, to: worker)
        for segment in missing { workers[worker].sentSegments.insert(segment.id) }
    }

    private func define(_ definition: FunctionDefinition, on worker: Int) {
        guard !workers[worker].defined.contains(definition.id) else { return }
        do {
            try attach(definition.attachments, to: worker)
        } catch {
            // The worker will report the function as unusable; jobs using it fail with this.
            brokenDefinitions[definition.id] = error
        }
        beginFrame()
        writer.write(MasterMessage.define.rawValue)
        writer.write(definition.id)
        writer.write(definition.typeName)
        definition.bytes.withUnsafeBytes { writer.writeLengthPrefixed($0) }
        sendFrame(to: worker)
        workers[worker].defined.insert(definition.id)
    }

    private func send(_ job: Job, to worker: Int) -> Bool {
        ensureInitialized(worker)
        guard let definition = definitionOf[ObjectIdentifier(job)] else { return false }
        define(definition, on: worker)
        if let broken = brokenDefinitions[definition.id] {
            _ = job.fail(nil, error: broken)
            job.finished = true
            return true
        }
        let taskID = nextTaskID
        beginFrame()
        writer.write(MasterMessage.chunk.rawValue)
        writer.write(taskID)
        writer.write(definition.id)
        let span: ChunkSpan?
        do {
            var encoded: ChunkSpan?
            let (_, segments) = try AttachmentContext.collecting {
                encoded = try job.encodeNextChunk(into: &writer)
            }
            if !segments.isEmpty {
                // The chunk frame is not sent yet, so the descriptors still go first.
                let frame = writer
                try attach(segments, to: worker)
                writer = frame
            }
            span = encoded
        } catch {
            _ = job.fail(nil, error: PoolError(.encoding, "cannot encode an input: \(error)"))
            job.finished = true
            return true
        }
        guard let span else { return false }
        nextTaskID += 1
        sendFrame(to: worker)
        tasks[taskID] = (job, span, worker)
        if workers[worker].inFlight.isEmpty { workers[worker].lastReply = monotonicNanoseconds() }
        workers[worker].inFlight.append(taskID)
        if job.exclusive { workers[worker].exclusive = true }
        workers[worker].tasksAssigned += 1
        if let limit = maxTasksPerChild, workers[worker].tasksAssigned >= limit {
            retire(worker)
        }
        return true
    }

    /// After its last allowed task, a worker is told to stop; it is replaced when it exits.
    private func retire(_ worker: Int) {
        workers[worker].retiring = true
        beginFrame()
        writer.write(MasterMessage.stop.rawValue)
        sendFrame(to: worker)
    }

    private func handle(_ event: BackendEvent) {
        switch event {
        case .message(let worker, let bytes):
            handleMessage(from: worker, bytes)
        case .ended(let worker, let exit):
            handleEnd(of: worker, exit)
        case .failed(let error):
            breakPool(error)
        }
    }

    private func handleMessage(from worker: Int, _ bytes: UnsafeRawBufferPointer) {
        var reader = WireReader(bytes)
        do {
            let kind = try reader.read(UInt8.self)
            switch WorkerMessage(rawValue: kind) {
            case .result:
                let taskID = try reader.read(UInt64.self)
                guard let task = takeTask(taskID, from: worker) else { return }
                workers[worker].lastReplyBytes = bytes.count
                do {
                    if try task.job.deliver(task.span, outputs: &reader) { retireFinished(task.job) }
                } catch {
                    let wrapped = error as? PoolError
                        ?? PoolError(.encoding, "cannot decode results of \(task.job.function.typeName): \(error)")
                    if task.job.fail(task.span, error: wrapped) { retireFinished(task.job) }
                }
            case .failure:
                let taskID = try reader.read(UInt64.self)
                let index = Int(try reader.read(Int64.self))
                let kind = FailureKind(rawValue: try reader.read(UInt8.self)) ?? .machinery
                let typeName = try reader.read(String.self)
                let message = try reader.read(String.self)
                if taskID == 0 {
                    // The initializer threw: the pool cannot work.
                    workers[worker].initialized = true
                    breakPool(PoolError(.startFailed, "the pool's initializer threw \(typeName): \(message)"))
                    return
                }
                guard let task = takeTask(taskID, from: worker) else { return }
                let error: any Error
                switch kind {
                case .threw:
                    error = RemoteError(typeName: typeName, message: message, inputIndex: task.span.firstInput + index)
                case .machinery:
                    error = PoolError(.encoding, message)
                case .initializer:
                    error = PoolError(.startFailed, message)
                }
                if task.job.fail(task.span, error: error) { retireFinished(task.job) }
            case .stopped:
                break
            case nil:
                throw PoolError(.protocolViolation, "unknown message kind \(kind)")
            }
        } catch {
            // Untrusted input: a worker that sends nonsense is ended like a crashed one.
            if !backend.kill(worker: worker) {
                breakPool(PoolError(.protocolViolation, "a worker sent a malformed message: \(error)"))
            }
        }
    }

    private func takeTask(_ taskID: UInt64, from worker: Int) -> (job: Job, span: ChunkSpan, worker: Int)? {
        guard let task = tasks.removeValue(forKey: taskID), task.worker == worker else { return nil }
        if let position = workers[worker].inFlight.firstIndex(of: taskID) {
            workers[worker].inFlight.remove(at: position)
        }
        if workers[worker].inFlight.isEmpty { workers[worker].exclusive = false }
        let now = monotonicNanoseconds()
        let elapsed = Double(now &- workers[worker].lastReply)
        workers[worker].lastReply = now
        let old = workers[worker].serviceNanoseconds
        workers[worker].serviceNanoseconds = old == 0 ? elapsed : old * 0.8 + elapsed * 0.2
        workers[worker].lastServiceNanoseconds = elapsed
        workers[worker].failuresWithoutProgress = 0
        workers[worker].completedSinceStart += 1
        return task
    }

    private func retireFinished(_ job: Job) {
        job.finished = true
    }

    private func handleEnd(of worker: Int, _ exit: ChildExit) {
        let lost = workers[worker].inFlight
        let wasRetiring = workers[worker].retiring
        workers[worker].exclusive = false
        let identity = backend.identity(of: worker)
        for taskID in lost {
            guard let task = tasks.removeValue(forKey: taskID) else { continue }
            var died = identity
            switch exit {
            case .signaled(let signal): died.signal = signal
            case .exited(let code): died.exitCode = code
            }
            died.inputIndex = task.span.firstInput
            if task.job.fail(task.span, error: died) { retireFinished(task.job) }
        }
        let madeProgress = workers[worker].completedSinceStart > 0
        var state = WorkerState()
        state.failuresWithoutProgress = (wasRetiring || madeProgress) ? 0 : workers[worker].failuresWithoutProgress + 1
        workers[worker] = state
        let isShuttingDown = lock.withLock { terminating || stopped }
        if isShuttingDown { return }
        guard backend.canReplaceWorkers else {
            breakPool(PoolError(.startFailed, "a worker ended and this backend cannot replace it: \(identity)"))
            return
        }
        if state.failuresWithoutProgress >= 5 {
            breakPool(PoolError(.startFailed, "workers keep ending before they finish any task (last: \(exit)); the pool is broken"))
            return
        }
        do {
            ForkGuard.leaveActivity()
            defer { ForkGuard.enterActivity() }
            try backend.replace(worker: worker)
        } catch {
            breakPool(PoolError(.startFailed, "cannot start a replacement worker: \(error)"))
        }
    }

    private func breakPool(_ error: PoolError) {
        lock.withLock { if brokenReason == nil { brokenReason = error } }
    }

    private func finishAll(with error: any Error, newJobs: [Job]) {
        for job in jobs + newJobs where !job.finished {
            _ = job.fail(nil, error: error)
            job.finished = true
        }
        for job in jobs + newJobs { release(job) }
        jobs.removeAll()
        tasks.removeAll()
        for worker in workers.indices { workers[worker].inFlight.removeAll() }
    }

    private func stopWorkersGracefully() {
        for worker in workers.indices where !workers[worker].retiring {
            beginFrame()
            writer.write(MasterMessage.stop.rawValue)
            sendFrame(to: worker)
        }
        backend.shutdown(deadline: monotonicNanoseconds() &+ 5_000_000_000)
    }
}
