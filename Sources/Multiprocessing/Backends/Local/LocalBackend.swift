import CSystemShims
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Worker processes on this machine, fed through shared-memory rings (`PoolRegion`): each
/// message is a frame (`Frame`: its length in the message's headroom, then the payload); a
/// message over 1 MiB travels in a memfd of its own, its frame only a reference (`OutOfBand`).
/// Each worker shares its progress words with the engine (`WorkerProgress`).
final class LocalBackend: PoolBackend, @unchecked Sendable {
    let workerCount: Int
    let canReplaceWorkers = true
    let lateReplyBytes: Int? = nil
    let method: StartMethod
    /// The process that runs the pool (its workers and descriptors are its own).
    private let owner = getpid()
    private let region: SharedRegion
    private let layout: PoolRegion
    private let parentPID = getpid()
    /// What the workers forked here install for their crash reports (`CrashReports.Setup`).
    private lazy var crashReportSetup = CrashReports.Setup(pool: parentPID)

    // Engine thread only (`@exclusivity(unchecked)`, as the engine's state: `PoolEngine`).
    @exclusivity(unchecked) private var slots: [Slot]
    /// `.fork`: where replacement workers are forked from (`ForkServer.template()`), made as
    /// the pool starts, while the thread that starts it waits here (not inside the Swift
    /// runtime); nil if it could not be made or stopped answering (workers are then forked
    /// here, as the first ones were).
    @exclusivity(unchecked) private var template: ForkServer?
    /// Templates no longer used (`killedBeforeFirstTask`), ended with the pool: their
    /// children may still run.
    @exclusivity(unchecked) private var retiredTemplates: [ForkServer] = []

    // Shared with the supervisor thread.
    private let endedLock = ConditionLock()
    private var endedQueue: [(slot: Int, generation: Int, exit: ChildExit)] = []
    private var live: Set<pid_t> = [] // workers started and not yet reaped
    private let hasEnded = Atomic<Bool>(false)

    private struct Slot {
        var pid: pid_t = 0
        var generation = 0
        var assembler = FrameAssembler()
        var outbound = FrameQueue()
        var ended: ChildExit?
        /// Our end of the worker's control socket (descriptors travel there), or -1.
        var control: Int32 = -1
        /// Its crash report, read when it ended by a signal (`CrashReports`).
        var crashReport: String?
        /// Its worker was forked by the pool's template (which it dies with).
        var byTemplate = false
        /// Its worker was killed while the out-of-memory killer ran (`OutOfMemoryKills`).
        var outOfMemory = false
        /// This pool killed its worker (`kill(worker:)`): its SIGKILL is not the kernel's.
        var killedByPool = false
        /// Large arguments sent remote (`RemoteTransfer`), kept until the worker has read
        /// them (its `inputsRead`) or ends.
        var held: [(token: UInt64, blocks: [WireDeferredBlock])] = []
    }

    static let ringCapacity = 1 << 20

    /// Whether each slot has queued outbound frames, readable without the engine's lock
    /// (the waiting thread may not hold it).
    private let outboundFlags: UnsafeMutablePointer<UInt32>

    private func updateOutboundFlag(_ slot: Int) {
        CSystemShims_store_u32(outboundFlags + slot, slots[slot].outbound.isEmpty ? 0 : 1)
    }

    /// Where the pool's thread sleeps when nothing is in flight (workers' ordinary doorbell
    /// rings do not wake it then).
    private let idleWord = WakeWord()
    /// Builds `stop` messages.
    private var scratch = WireWriter(capacity: 64)
    /// Workers written to without a wake-up (`forward(…, deferringWake: true)`, `send` with
    /// `defersWakes`), until `wakeDeferred()`.
    @exclusivity(unchecked) private(set) var unwoken: [Int] = []
    /// Names the messages sent out of band (`OutOfBand`).
    private var nextToken: UInt64 = 0

    func waitIdle(timeoutNanoseconds: Int64, ready: () -> Bool) {
        wakeDeferred()
        idleWord.arm()
        if ready() || hasEnded.load(ordering: .sequentiallyConsistent) { return }
        idleWord.sleep(nanoseconds: timeoutNanoseconds)
    }

    /// `Pool(…, tagOutput:)`: nil leaves it to `SWIFTMP_TAG_OUTPUT` (`OutputTagging`).
    private let tagOutput: Bool?

    init(workers: Int, method: StartMethod, summary: String? = nil, tagOutput: Bool? = nil) throws {
        self.tagOutput = tagOutput
        self.workerCount = workers
        self.summaryOverride = summary
        self.method = method.resolved
        let size = PoolRegion.byteCount(slots: workers, ringCapacity: LocalBackend.ringCapacity)
        region = try SharedRegion(size: size, name: "swiftmp-pool")
        layout = PoolRegion.format(region, slots: workers, ringCapacity: LocalBackend.ringCapacity)
        slots = Array(repeating: Slot(), count: workers)
        outboundFlags = .allocate(capacity: workers)
        outboundFlags.initialize(repeating: 0, count: workers)
        // Read once here, before any worker is forked: each forked worker would read the
        // environment again at its start otherwise (a lazy global is not set in the child).
        _ = RemoteTransfer.enabled
    }

    private let summaryOverride: String?
    var summary: String { summaryOverride ?? "local, \(method.rawValue)" }

    func start() throws {
        for slot in 0..<workerCount { try launch(slot, replacing: false) }
        // Once the workers are started (the supervisor's forks not behind it).
        defer {
            let atStart = outOfMemoryKillsAtStart
            ProcessSupervisor.shared.post {
                if let count = OutOfMemoryKills.count() { atStart.value.store(count, ordering: .releasing) }
            }
        }
        guard method == .fork else { return }
        do {
            template = try ForkServer.template()
        } catch {
            printError("swift-multiprocessing: no fork template for this pool (\(error)); replacement workers fork from the program")
        }
    }

    func killedBeforeFirstTask(worker: Int) {
        guard slots[worker].byTemplate, let template else { return }
        printError(
            """
            swift-multiprocessing: a worker forked by the pool's fork template was stuck before its first task \
            (the template may hold a lock another thread held when it was made); replacement workers fork \
            from the program from now on
            """)
        retiredTemplates.append(template)
        self.template = nil
    }

    /// How long a replacement waits for the template's answer before it forks here (ns).
    static let templateAnswerLimit: UInt64 = 5_000_000_000

    private func launch(_ slot: Int, replacing: Bool) throws {
        layout.progress(slot).reset()
        layout.transfer(slot).reset()
        slots[slot].held.removeAll()
        layout.taskRing(slot).reset()
        layout.resultRing(slot).reset()
        if slots[slot].control >= 0 { systemClose(slots[slot].control) }
        slots[slot].control = -1
        var pair: [Int32] = [-1, -1]
        try syscallRetrying("socketpair") {
            socketpair(AF_UNIX, Int32(SOCK_SEQPACKET.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &pair)
        }
        let childControl = pair[1]
        defer { systemClose(childControl) }
        slots[slot].control = pair[0]
        let generation = slots[slot].generation
        let onExit: @Sendable (pid_t, ChildExit) -> Void = { [weak self] pid, exit in
            self?.childEnded(slot: slot, generation: generation, pid: pid, exit: exit)
        }
        let pid: pid_t
        // tagOutput / SWIFTMP_TAG_OUTPUT=1: the worker's 1 and 2 are pipes read here (OutputTagging).
        let tagged = try OutputTagging.Pipes.ifEnabled(option: tagOutput)
        var launched = false
        defer { if !launched { tagged?.discard() } }
        let passed = tagged == nil ? " fds=2" : " fds=4 stdio=5"
        var fromTemplate: pid_t?
        if replacing, let template {
            do {
                fromTemplate = try template.fork(
                    spec: "pool-worker slot=\(slot) main=ran" + passed,
                    passing: [region.descriptor, childControl] + (tagged?.childEnds ?? []),
                    started: { [weak self] in self?.started($0) }, onExit: onExit, answerWithin: Self.templateAnswerLimit)
            } catch let refusal as ForkRefusal {
                // It answered: its fork failed (out of processes, memory or descriptors). It
                // stays; the engine leaves the slot vacant and asks again later.
                throw refusal.error
            } catch {
                // Ended, or wedged itself: from now on this pool forks its workers here.
                printError("swift-multiprocessing: \(error); from now on this pool forks its workers from the program")
                template.stop(deadline: monotonicNanoseconds() &+ 1_000_000_000)
                self.template = nil
            }
        }
        if let fromTemplate {
            pid = fromTemplate
        } else {
            switch method {
            case .fork, .automatic:
                let layout = self.layout
                let parent = parentPID
                let crashReports = crashReportSetup
                pid = try ProcessSupervisor.shared.perform { [self] in
                    let pid = try ChildLauncher.fork {
                        tagged?.redirectInChild()
                        if childControl != 3 { dup2(childControl, 3) }
                        ChildLauncher.becomeChild(parent: parent, firstToClose: 4)
                        _exit(ChildEntry.servePool(layout: layout, slot: slot, parent: parent, control: 3, crashReports: crashReports))
                    }
                    // Watched first: one that cannot be is killed, and was never registered.
                    try ProcessSupervisor.shared.watch(pid: pid) { onExit(pid, $0) }
                    started(pid)
                    return pid
                }
            case .spawn:
                let fd = region.descriptor
                let spec = "pool-worker parent=\(parentPID) slot=\(slot)" + passed
                pid = try ProcessSupervisor.shared.perform { [self] in
                    let pid = try ChildLauncher.spawn(spec: spec, passing: [fd, childControl] + (tagged?.childEnds ?? []))
                    // Watched first: one that cannot be is killed, and was never registered.
                    try ProcessSupervisor.shared.watch(pid: pid) { onExit(pid, $0) }
                    started(pid)
                    return pid
                }
            case .forkserver:
                let server = try ForkServer.shared()
                pid = try server.fork(
                    spec: "pool-worker slot=\(slot)" + passed,
                    passing: [region.descriptor, childControl] + (tagged?.childEnds ?? []),
                    started: { [weak self] in self?.started($0) }, onExit: onExit)
            }
        }
        slots[slot].pid = pid
        slots[slot].byTemplate = fromTemplate != nil
        slots[slot].outOfMemory = false
        slots[slot].killedByPool = false
        launched = true
        try tagged?.started(pid: pid)
    }

    /// Registers a started worker; on the supervisor thread, before it can be reaped.
    private func started(_ pid: pid_t) {
        endedLock.withLock { _ = live.insert(pid) }
    }

    private func childEnded(slot: Int, generation: Int, pid: pid_t, exit: ChildExit) {
        endedLock.withLock {
            endedQueue.append((slot, generation, exit))
            live.remove(pid)
            endedLock.broadcast()
        }
        hasEnded.store(true, ordering: .sequentiallyConsistent)
        idleWord.wake()
        layout.doorbell.ringAlways()
    }

    func send(_ message: inout WireWriter, to worker: Int) {
        Frame.finish(&message)
        // Whether this process can read the worker is found out after the message went out
        // (below): the worker already runs it meanwhile. A message with large arrays needs
        // only what the worker found out (`workerReadsPool`).
        defer { probe(worker) }
        let deferring = defersWakes
        if !message.deferredBlocks.isEmpty, slots[worker].ended == nil {
            nextToken &+= 1
            // The worker reads the arrays from here (`RemoteTransfer`), when it can.
            if OutOfBand.wants(message), RemoteTransfer.enabled, layout.transfer(worker).workerReadsPool == 1,
                let frame = RemoteTransfer.frame(for: message, token: nextToken)
            {
                slots[worker].held.append((nextToken, message.deferredBlocks))
                frame.withUnsafeBytes { send(frame: $0, to: worker, deferringWake: deferring) }
            } else if let reference = OutOfBand.send(deferred: &message, token: nextToken, on: slots[worker].control) {
                reference.withUnsafeBytes { send(frame: $0, to: worker, deferringWake: deferring) }
            } else {
                message.bytes.withUnsafeBytes { send(frame: $0, to: worker, deferringWake: deferring) }
            }
        } else {
            message.bytes.withUnsafeBytes { send(frame: $0, to: worker, deferringWake: deferring) }
        }
        // A large message went out of band: its buffer (or the arrays it referenced) is not
        // kept for the next one.
        if message.bytes.capacity > OutOfBand.threshold || !message.deferredBlocks.isEmpty {
            message = WireWriter(capacity: 64 << 10)
        }
        // The next messages written here may reference their large arrays rather than copy
        // them: this backend gathers them into the memfd (`OutOfBand.send(deferred:)`).
        message.defersLargeBlocks = true
    }

    /// Finds out once whether this process can read `worker`'s memory (`RemoteTransfer`),
    /// as soon as the worker published where to look.
    private func probe(_ worker: Int) {
        let words = layout.transfer(worker)
        guard words.poolReadsWorker == 0 else { return }
        let address = words.workerAddress
        guard address != 0, slots[worker].pid > 0, slots[worker].ended == nil else { return }
        words.poolReadsWorker = RemoteTransfer.probe(pid: slots[worker].pid, address: address) ? 1 : 2
    }

    /// Lets go of the large arguments `worker` has read.
    private func dropReadInputs(_ worker: Int) {
        guard !slots[worker].held.isEmpty else { return }
        let read = layout.transfer(worker).inputsRead
        slots[worker].held.removeAll { $0.token <= read }
    }

    func stop(worker: Int) {
        MasterCodec.stop(into: &scratch)
        send(&scratch, to: worker)
    }

    /// Sends a complete frame (header and payload) as it is, as a worker rank relays rank 0's
    /// message (`RankRelay`); dropped if the worker ended. `beckoning`: a lone task for an idle
    /// worker, which should then run on this CPU (`WorkerChannel.followsRank`); otherwise the
    /// worker stays where it is. `deferringWake`: a sleeping worker is woken only by the next
    /// `wakeDeferred()` (the rank forwards a whole batch first: a worker woken per task
    /// preempted the rank for each one).
    func forward(frame: UnsafeRawBufferPointer, to worker: Int, beckoning: Bool = false, deferringWake: Bool = false) {
        send(frame: frame, to: worker, beckoning: beckoning, deferringWake: deferringWake)
    }

    /// Where what was sent to `worker` so far ends in its task ring's byte stream (frames
    /// still queued included): a frame just sent has been read once `readPosition(of:)`
    /// reaches this (`RelayedObjectRequests`).
    func sentPosition(of worker: Int) -> UInt64 {
        layout.taskRing(worker).writePosition &+ UInt64(slots[worker].outbound.pendingBytes)
    }

    /// How far `worker` read its task ring (until a replacement's start resets it).
    func readPosition(of worker: Int) -> UInt64 {
        layout.taskRing(worker).readPosition
    }

    /// Wakes the workers that `forward(…, deferringWake: true)` (or `send` with `defersWakes`)
    /// wrote to since the last call.
    func wakeDeferred() {
        guard !unwoken.isEmpty else { return }
        for worker in unwoken { layout.taskRing(worker).wakeConsumer() }
        unwoken.removeAll(keepingCapacity: true)
    }

    /// Whether `send` leaves the worker asleep until `flush()` (or a wait, or `shutdown`): set
    /// by a worker rank that runs an engine over these workers (`NodeScheduler`), whose
    /// workers sleep between tasks on a full machine — woken per chunk, each preempted the rank
    /// (as in `RankRelay`'s batches). A local pool's engine wakes per message (its workers spin).
    var defersWakes = false

    func flush() {
        wakeDeferred()
    }

    /// What the last message to `worker` said of its sender (`TransferWords.sender`).
    func sender(of worker: Int) -> TransferWords.Sender { layout.transfer(worker).sender }

    private func send(frame: UnsafeRawBufferPointer, to worker: Int, beckoning: Bool = false, deferringWake: Bool = false) {
        if slots[worker].ended != nil { return }
        // Where the worker should not spin for its next task after an idle wait
        // (`WorkerChannel.onSendersCPU`), and whether it should move there (`followsRank`).
        let transfer = layout.transfer(worker)
        let sender = TransferWords.Sender(cpu: CSystemShims_current_cpu(), beckoning: beckoning)
        if transfer.sender != sender { transfer.sender = sender }
        if frame.count - Frame.headerSize > OutOfBand.threshold {
            nextToken &+= 1
            if let reference = OutOfBand.send(
                UnsafeRawBufferPointer(rebasing: frame[Frame.headerSize...]),
                token: nextToken, on: slots[worker].control)
            {
                return reference.withUnsafeBytes { send(frame: $0, to: worker, deferringWake: deferringWake) }
            }
        }
        var written = 0
        if slots[worker].outbound.isEmpty {
            written = layout.taskRing(worker).write(frame, waking: !deferringWake)
            if deferringWake && written > 0 && unwoken.last != worker && !unwoken.contains(worker) { unwoken.append(worker) }
        }
        if written < frame.count {
            slots[worker].outbound.append(Array(UnsafeRawBufferPointer(rebasing: frame[written...])))
            updateOutboundFlag(worker)
        }
    }

    func canAccept(worker: Int) -> Bool {
        slots[worker].ended == nil && slots[worker].outbound.pendingFrames < 4
    }

    func poll(_ handler: (BackendEvent) -> Void) -> Bool {
        pollRaw(
            decoding: true,
            message: { slot, bytes in
                if let intercept, intercept(slot, bytes) { return }
                handler(.decoding(bytes, from: slot))
            },
            ended: { slot, exit in
                observeEnd?(slot, exit)
                handler(.ended(worker: slot, exit))
            })
    }

    /// Set by a worker rank that runs an engine over these workers (`NodeScheduler`): sees each
    /// worker message before the engine and takes those that are not the engine's (a task's
    /// object request, a log record: relayed to rank 0) by returning true.
    var intercept: ((Int, UnsafeRawBufferPointer) -> Bool)?
    /// Set with `intercept`: learns of each worker's end before the engine.
    var observeEnd: ((Int, ChildExit) -> Void)?

    /// `poll` without decoding: each worker message as bytes (without its frame header), and
    /// each worker's end (after every message it wrote). A worker rank relays both to rank 0
    /// (`RankRelay`).
    func pollRaw(message: (Int, UnsafeRawBufferPointer) -> Void, ended: (Int, ChildExit) -> Void) -> Bool {
        pollRaw(decoding: false, message: message, ended: ended)
    }

    /// `decoding`: `message` decodes the bytes it gets (the large arrays of a remote message
    /// are then read while decoding, `WireRemoteRanges`), rather than copying them.
    private func pollRaw(
        decoding: Bool, message: (Int, UnsafeRawBufferPointer) -> Void, ended: (Int, ChildExit) -> Void
    ) -> Bool {
        var progressed = false
        for slot in 0..<workerCount {
            dropReadInputs(slot)
            if !slots[slot].outbound.isEmpty, slots[slot].outbound.push(layout.taskRing(slot)) {
                progressed = true
                updateOutboundFlag(slot)
            }
            progressed = drain(slot, decoding: decoding, message) || progressed
        }
        if hasEnded.exchange(false, ordering: .sequentiallyConsistent) {
            let endings = endedLock.withLock { () -> [(slot: Int, generation: Int, exit: ChildExit)] in
                let taken = endedQueue
                endedQueue.removeAll()
                return taken
            }
            for (slot, generation, exit) in endings where generation == slots[slot].generation {
                _ = drain(slot, decoding: decoding, message) // what it wrote before it ended still counts
                slots[slot].ended = exit
                slots[slot].held.removeAll() // its large arguments: nobody reads them any more
                if case .signaled = exit { slots[slot].crashReport = CrashReports.collect(parent: parentPID, worker: slots[slot].pid) }
                if exit == .signaled(SIGKILL) && !slots[slot].killedByPool { slots[slot].outOfMemory = takeOutOfMemoryKill() }
                slots[slot].outbound.removeAll()
                updateOutboundFlag(slot)
                ended(slot, exit)
                progressed = true
            }
        }
        return progressed
    }

    private func drain(_ slot: Int, decoding: Bool, _ handler: (Int, UnsafeRawBufferPointer) -> Void) -> Bool {
        // The handler may call back into this backend (identity, kill): the assembler is
        // taken out of `slots` while it runs, so that `slots` is not being modified meanwhile.
        var assembler = FrameAssembler()
        swap(&assembler, &slots[slot].assembler)
        defer { swap(&assembler, &slots[slot].assembler) }
        do {
            return try assembler.poll(layout.resultRing(slot)) { payload in
                switch payload {
                case .inline(let message):
                    handler(slot, message)
                case .outOfBand(let token, let size):
                    do {
                        let fd = try OutOfBand.receiveDescriptor(token: token, on: slots[slot].control)
                        defer { systemClose(fd) }
                        let message = try OutOfBand.map(fd, size: size)
                        defer { OutOfBand.unmap(message) }
                        handler(slot, message)
                    } catch {
                        // Nonsense from a worker: it is ended like a crashed one.
                        _ = kill(worker: slot)
                    }
                case .remote(let payload):
                    receiveRemote(payload, from: slot, decoding: decoding, handler)
                }
            }
        } catch {
            // A worker that sends nonsense is killed; its end is reported as usual.
            _ = kill(worker: slot)
            return true
        }
    }

    /// A message whose large arrays are still in `slot`'s worker (`RemoteTransfer`): read
    /// while decoding, or first when `decoding` is false. A worker that cannot be read (it
    /// ended after sending the message) or that sent nonsense is ended like a crashed one,
    /// the message dropped. The worker lets go of the arrays once told (`resultsRead`).
    private func receiveRemote(
        _ payload: UnsafeRawBufferPointer, from slot: Int, decoding: Bool, _ handler: (Int, UnsafeRawBufferPointer) -> Void
    ) {
        do {
            let message = try RemoteMessage(payload: payload, from: slots[slot].pid)
            defer { layout.transfer(slot).resultsRead = message.token }
            RemoteTransfer.receivedForTesting += 1
            if RemoteTransfer.awaitSenderExitForTesting { RemoteTransfer.awaitExit(of: slots[slot].pid) }
            guard message.probe() else {
                _ = kill(worker: slot)
                return
            }
            if decoding { message.register() } else { try message.materialize() }
            handler(slot, message.bytes)
        } catch {
            _ = kill(worker: slot)
        }
    }

    func waitForActivity(spinning: Bool, timeoutNanoseconds: Int64, ready: () -> Bool) {
        wakeDeferred()
        layout.doorbell.wait(spinning: spinning, timeoutNanoseconds: timeoutNanoseconds) {
            if ready() || hasEnded.load(ordering: .sequentiallyConsistent) { return true }
            for slot in 0..<workerCount {
                if layout.resultRing(slot).available > 0 { return true }
                if CSystemShims_load_u32(outboundFlags + slot) != 0 && layout.taskRing(slot).freeSpace > 0 { return true }
            }
            return false
        }
    }

    func wake() {
        // The doorbell first: it costs nothing when the pool's thread sleeps in `waitIdle`.
        // In the other order, a submitting thread preempted by the thread it just woke rang
        // the doorbell only after that thread had sent the work and gone to wait for the
        // reply — a second, useless wake-up in one cold `apply` of 7 (perf sched traces).
        layout.doorbell.ring()
        idleWord.wake()
    }

    @discardableResult
    func replace(worker: Int) throws -> ReplacementStart {
        let previous = slots[worker].ended
        defer {
            // Not started: the slot stays ended (nothing goes to it) until the engine retries,
            // and holds no descriptor meanwhile (the process may be out of them).
            if slots[worker].ended == nil && slots[worker].pid <= 0 {
                slots[worker].ended = previous ?? .signaled(SIGKILL)
                if slots[worker].control >= 0 { systemClose(slots[worker].control) }
                slots[worker].control = -1
            }
        }
        slots[worker].pid = 0
        slots[worker].held.removeAll()
        slots[worker].generation += 1
        slots[worker].assembler.reset()
        slots[worker].outbound.removeAll()
        updateOutboundFlag(worker)
        slots[worker].ended = nil
        slots[worker].crashReport = nil
        try launch(worker, replacing: true)
        return .started
    }

    func sendAttachments(_ segments: [SegmentStorage], to worker: Int) throws {
        let socket = slots[worker].control
        guard socket >= 0 else { throw PoolError(.startFailed, "worker \(worker) has no control socket") }
        for start in stride(from: 0, to: segments.count, by: 32) {
            let batch = segments[start..<min(start + 32, segments.count)]
            var message = WireWriter()
            message.write(UInt32(batch.count))
            for segment in batch {
                message.write(segment.id.high)
                message.write(segment.id.low)
            }
            let fds = batch.map { $0.region.descriptor }
            guard !fds.contains(-1) else {
                throw PoolError(.encoding, "a shared segment was received from another process and cannot be forwarded")
            }
            let sent = message.bytes.withUnsafeBytes { raw in
                fds.withUnsafeBufferPointer { CSystemShims_send_with_fds(socket, raw.baseAddress, raw.count, $0.baseAddress, Int32(fds.count)) }
            }
            if sent < 0 { throw SystemError("sendmsg (descriptors to a worker)", errno: errno) }
        }
    }

    func progress(of worker: Int) -> WorkerProgress? {
        layout.progress(worker)
    }
    func finalProgress(of worker: Int) -> (taken: UInt32, input: Int)? { nil }

    func activity(of worker: Int) -> ProcessActivity? {
        guard slots[worker].pid > 0, slots[worker].ended == nil else { return nil }
        return ProcessStat.activity(of: slots[worker].pid)
    }

    func pace(replyEvery nanoseconds: Int64) {}

    /// For tests: whether `worker` has found out at its start if it may read the pool's memory
    /// (`RemoteTransfer`): a large message sent to it before then takes the memfd.
    func hasProbedRemoteTransfer(_ worker: Int) -> Bool { layout.transfer(worker).workerReadsPool != 0 }

    func kill(worker: Int) -> Bool {
        if slots[worker].pid > 0 && slots[worker].ended == nil {
            slots[worker].killedByPool = true
            CrashReports.kill(worker: slots[worker].pid)
        }
        return true
    }

    /// The machine's count of out-of-memory kills when this pool started (read on the
    /// supervisor thread: 20 µs of the kernel's and more of ours, off the pool's start; max:
    /// not read yet) or last read it, the kills counted since and not yet given to a worker's
    /// end, and when they were counted.
    private final class CountAtStart: Sendable {
        let value = Atomic<UInt64>(.max)
    }
    private let outOfMemoryKillsAtStart = CountAtStart()
    private var outOfMemoryKillsRead: UInt64?
    private var outOfMemoryKillsSeen: UInt64? {
        if let outOfMemoryKillsRead { return outOfMemoryKillsRead }
        let start = outOfMemoryKillsAtStart.value.load(ordering: .acquiring)
        return start == .max ? nil : start
    }
    private var outOfMemoryKillsUnclaimed = 0
    private var outOfMemoryKillsCountedAt: UInt64 = 0
    /// How long a counted kill may still be a worker's whose end is seen later (two workers
    /// killed at once, their ends polled in two rounds).
    static let outOfMemoryClaimNanoseconds: UInt64 = 10_000_000_000

    /// For a worker ended by a SIGKILL the pool did not send: whether an out-of-memory kill
    /// counted since the last look is left for it (each kill is given to one end at most).
    private func takeOutOfMemoryKill() -> Bool {
        let now = monotonicNanoseconds()
        if now &- outOfMemoryKillsCountedAt > Self.outOfMemoryClaimNanoseconds { outOfMemoryKillsUnclaimed = 0 }
        if let count = OutOfMemoryKills.count() {
            if let seen = outOfMemoryKillsSeen, count > seen {
                outOfMemoryKillsUnclaimed += Int(count - seen)
                outOfMemoryKillsCountedAt = now
            }
            outOfMemoryKillsRead = count
        }
        guard outOfMemoryKillsUnclaimed > 0 else { return false }
        outOfMemoryKillsUnclaimed -= 1
        return true
    }

    /// Whether `worker`'s slot has a process that has not ended (a slot whose replacement
    /// could not start has none: `PoolEngine`, vacant slots).
    func hasWorker(_ worker: Int) -> Bool { slots[worker].pid > 0 && slots[worker].ended == nil }

    func identity(of worker: Int) -> WorkerDied {
        WorkerDied(
            pid: slots[worker].pid, host: LocalBackend.hostName, crashReport: slots[worker].crashReport,
            outOfMemory: slots[worker].outOfMemory)
    }

    /// This machine's name, for errors that say where a task ran.
    static let hostName: String? = {
        var buffer = [CChar](repeating: 0, count: 256)
        guard gethostname(&buffer, buffer.count - 1) == 0 else { return nil }
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }()

    /// Runs on the pool's thread inside `ForkGuard` activity (a fork for another pool never
    /// catches it in the Swift runtime); lets go of it only while it waits, because the
    /// supervisor that reaps the workers may need to fork meanwhile.
    func shutdown(deadline: UInt64) {
        // No worker is replaced from now on. A template whose children are all gone ends
        // now, while the workers exit; one with children ends after them (they die with it).
        if !slots.contains(where: \.byTemplate) { stopTemplates(deadline: 0) }
        wakeDeferred()
        // Nothing more is read here: a worker keeping a large result for this process to read
        // (`RemoteTransfer`) need not wait before it exits.
        for slot in 0..<workerCount { layout.transfer(slot).resultsRead = .max }
        // Keep pushing queued frames (the stops) while waiting for the workers to exit.
        while endedLock.withLock({ !live.isEmpty }) && monotonicNanoseconds() < deadline {
            for slot in 0..<workerCount where !slots[slot].outbound.isEmpty {
                _ = slots[slot].outbound.push(layout.taskRing(slot))
            }
            ForkGuard.whileBlocked {
                endedLock.withLock {
                    if !live.isEmpty { endedLock.wait(until: min(deadline, monotonicNanoseconds() &+ 2_000_000)) }
                }
            }
        }
        let survivors = endedLock.withLock { Array(live) }
        for pid in survivors { CrashReports.kill(worker: pid) }
        // Reaping happens on the supervisor thread; wait for it so no zombie outlives us.
        let end = monotonicNanoseconds() &+ 5_000_000_000
        ForkGuard.whileBlocked {
            endedLock.withLock {
                while !live.isEmpty && monotonicNanoseconds() < end { endedLock.wait(until: end) }
            }
        }
        let pids = slots.map(\.pid)
        ForkGuard.whileBlocked { OutputTagging.awaitEnd(of: pids, deadline: monotonicNanoseconds() &+ 2_000_000_000) }
        // Its children are gone: the template goes too.
        ForkGuard.whileBlocked { stopTemplates(deadline: monotonicNanoseconds() &+ 2_000_000_000) }
        template = nil
        retiredTemplates.removeAll()
    }

    /// Ends this pool's templates, the one in use and those retired, each waited for until
    /// `deadline` (0: not waited for).
    private func stopTemplates(deadline: UInt64) {
        for template in (template.map { [$0] } ?? []) + retiredTemplates { template.stop(deadline: deadline) }
    }

    deinit {
        // A forked child that drops a pool it inherited neither kills its parent's workers
        // nor closes descriptors by their numbers (its own by now).
        if owner == getpid() {
            for pid in endedLock.withLock({ Array(live) }) { CrashReports.kill(worker: pid) }
            for slot in slots where slot.control >= 0 { systemClose(slot.control) }
            stopTemplates(deadline: 0)
        }
        outboundFlags.deallocate()
    }
}
