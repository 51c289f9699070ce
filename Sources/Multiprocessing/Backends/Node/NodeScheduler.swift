import Wire

/// The scheduler a worker rank runs for one pool when rank 0 hands it bundles
/// (ARCHITECTURE.md §8, "node scheduling"): a `PoolEngine` over the rank's local workers
/// (`LocalBackend`), driven by the rank's serve loop (`step()`, no thread of its own). Rank 0's
/// engine sees the rank as one slot and sends it many inputs at once (`MasterMessage.bundle`);
/// this engine hands them out a chunk at a time to the local workers, with the local backend's
/// exact accounting, withdrawals, per-input time limits, cancellation and replacements, and
/// answers each bundle once, input by input where some failed (`Outcomes`). So rank 0 pays
/// its per-task cost once per bundle, not once per input, and the balance between the local
/// workers stays that of the call's chunk size.
///
/// Messages from rank 0 arrive through `handle(_:)`; what goes back is in `answers` (complete
/// messages, with headroom for the relay's envelope), and the local workers' messages that are
/// not the engine's — a task's object request, a log record — are in `passedOn`, for the rank
/// to relay as before. No MPI here: tests drive it with local processes alone.
final class NodeScheduler {
    let backend: LocalBackend
    private let maxTasksPerChild: Int?
    private(set) var engine: PoolEngine?
    private var definitions: [UInt32: FunctionDefinition] = [:]
    /// The function types resolved by name, per function id (resolving costs a lookup by
    /// name: once per function, not per bundle).
    private var types: [UInt32: any ParallelFunction.Type] = [:]
    private var initializer: FunctionDefinition?
    /// Bundles not answered yet, by rank 0's task id.
    private var bundles: [UInt64: Job] = [:]
    /// Messages for rank 0, each with `MessageBuffer.headroom` bytes in front, in order.
    var answers: [[UInt8]] = []
    /// Local workers' messages that are not for the engine: (local index, bytes).
    var passedOn: [(index: Int, bytes: [UInt8])] = []
    /// Local workers that ended: (local index, how, its pid).
    var endings: [(index: Int, exit: ChildExit, pid: Int32?, read: UInt64)] = []
    private var writer = WireWriter(capacity: 4096)
    /// Rank 0 sent `stop`: the local workers were told to exit; `stopped` is answered when
    /// all have (meanwhile the rank relays what they send, e.g. their last object releases).
    private var stopping = false
    private var exited: Set<Int> = []
    private var stoppedAnswered = false

    /// `backend` is started.
    init(backend: LocalBackend, maxTasksPerChild: Int?) {
        self.backend = backend
        self.maxTasksPerChild = maxTasksPerChild
        // The engine's round wakes each local worker it sent to once, at its end (`flush`).
        backend.defersWakes = true
        backend.intercept = { [unowned self] index, bytes in
            guard let kind = bytes.first,
                kind == WorkerMessage.objectRequest.rawValue || kind == WorkerMessage.log.rawValue
            else { return false }
            passedOn.append((index, Array(bytes)))
            return true
        }
        backend.observeEnd = { [unowned self] index, exit in
            endings.append((index, exit, self.backend.identity(of: index).pid, self.backend.readPosition(of: index)))
        }
    }

    /// Whether bundles are in hand (the rank then waits on its local workers' doorbell).
    var isBusy: Bool { !bundles.isEmpty || (stopping && !stoppedAnswered) }

    /// One message of rank 0's for this pool (without headroom).
    func handle(_ message: UnsafeRawBufferPointer) {
        var reader = WireReader(message)
        guard let kind = (try? reader.read(UInt8.self)).flatMap(MasterMessage.init(rawValue:)) else { return }
        switch kind {
        case .define:
            guard let id = try? reader.read(UInt32.self), let name = try? reader.read(String.self),
                let bytes = try? reader.readLengthPrefixed()
            else { return }
            definitions[id] = FunctionDefinition(typeName: name, bytes: Array(bytes))
            types.removeValue(forKey: id)
        case .undefine:
            // Rank 0 dropped the value: so does this engine, and its local workers, so that
            // nothing it holds (served objects' handles) outlives rank 0's copy.
            if let id = try? reader.read(UInt32.self), let definition = definitions.removeValue(forKey: id) {
                types.removeValue(forKey: id)
                engine?.forget(definition)
            }
        case .chunk:
            // Only the pool's initializer comes as a chunk (task 0): this engine runs it on each
            // local worker before its first task; rank 0's slot is answered at once.
            guard let task = try? reader.read(UInt64.self), let function = try? reader.read(UInt32.self) else { return }
            if task == 0 {
                if engine == nil { initializer = definitions[function] }
                WorkerCodec.beginResult(task: 0, into: &writer)
                _VoidTransport.encode(count: 1, into: &writer)
                answers.append(writer.bytes)
            } else {
                answerFailed(task: task, PoolError(.protocolViolation, "a worker rank that schedules its workers got a chunk"))
            }
        case .bundle:
            receiveBundle(&reader)
        case .stop:
            // Rank 0 stops a pool only when nothing is in flight: the local workers are told to
            // exit, and the engine is not stepped any more (it would replace them).
            guard !stopping else { return }
            stopping = true
            // A slot without a process (its replacement could not start) has nothing to stop.
            for worker in 0..<backend.workerCount {
                if backend.hasWorker(worker) { backend.stop(worker: worker) } else { exited.insert(worker) }
            }
            backend.flush()
        case .release, .objectReply:
            break
        }
    }

    private func receiveBundle(_ reader: inout WireReader) {
        guard let task = try? reader.read(UInt64.self), let function = try? reader.read(UInt32.self),
            let chunkSize = try? reader.read(UInt32.self), let timeout = try? reader.read(UInt64.self)
        else { return }
        guard let definition = definitions[function] else {
            answerFailed(task: task, PoolError(.encoding, "the worker rank has no function \(function)"))
            return
        }
        guard let type = types[function] ?? FunctionIdentity.resolve(definition.typeName) else {
            answerFailed(
                task: task,
                PoolError(
                    .unresolvableFunction,
                    "the worker cannot find the function type \(FunctionIdentity.readableName(definition.typeName)) by name; declare it internal or public at file scope"
                ))
            return
        }
        types[function] = type
        do {
            let job = try Self.makeJob(
                type, task: task, definition: definition, chunkSize: Int(chunkSize),
                timeout: timeout == 0 ? nil : timeout, inputs: &reader
            ) { [unowned self] answer in answered(answer) }
            bundles[task] = job
            try engineForWork().submit(job)
        } catch {
            bundles.removeValue(forKey: task)
            answerFailed(task: task, error as? PoolError ?? PoolError(.encoding, "cannot decode the inputs of a bundle: \(error)"))
        }
    }

    private static func makeJob<F: ParallelFunction>(
        _: F.Type, task: UInt64, definition: FunctionDefinition, chunkSize: Int, timeout: UInt64?,
        inputs reader: inout WireReader, complete: @escaping (any BundleAnswer) -> Void
    ) throws -> Job {
        try BundleJob<F>(
            task: task, function: definition, chunkSize: chunkSize, timeoutNanoseconds: timeout, inputs: &reader,
            complete: complete)
    }

    /// The engine, created with the first bundle (after the initializer, if the pool has one).
    private func engineForWork() throws(PoolError) -> PoolEngine {
        if let engine { return engine }
        let created = PoolEngine(backend: backend, maxTasksPerChild: maxTasksPerChild, initializer: initializer)
        engine = created
        return created
    }

    private func answered(_ answer: any BundleAnswer) {
        bundles.removeValue(forKey: answer.task)
        do {
            try answer.writeAnswer(into: &writer)
            answers.append(writer.bytes)
        } catch {
            answerWhole(task: answer.task, .machinery, typeName: String(reflecting: type(of: error)), "cannot transport outputs: \(error)")
        }
    }

    /// The whole bundle failed before any input ran.
    private func answerFailed(task: UInt64, _ error: PoolError) {
        answerWhole(task: task, error.code == .startFailed ? .initializer : .machinery, typeName: "PoolError", error.message)
    }

    /// A `failure` at position 0 with no outputs: every input of the bundle failed this way.
    private func answerWhole(task: UInt64, _ kind: FailureKind, typeName: String, _ message: String) {
        WorkerCodec.beginFailure(task: task, index: 0, kind: kind, typeName: typeName, message: message, into: &writer)
        _VoidTransport.encode(count: 0, into: &writer)
        answers.append(writer.bytes)
    }

    /// Rank 0 cancelled the call whose bundle this is.
    func cancel(task: UInt64) {
        guard let job = bundles[task], let engine else { return }
        engine.cancel(job)
    }

    /// One round of the engine. Returns whether anything moved.
    @discardableResult
    func step() -> Bool {
        if stopping { return stepWhileStopping() }
        guard let engine else {
            // Before the first bundle nothing runs, but a local worker may still end.
            return backend.poll { _ in }
        }
        return engine.step() == .progressed
    }

    /// After `stop`: relays what the local workers send as they leave; answers `stopped` when
    /// every one has exited.
    private func stepWhileStopping() -> Bool {
        let moved = backend.poll { event in
            if case .ended(let worker, _) = event { exited.insert(worker) }
        }
        if !stoppedAnswered && exited.count == backend.workerCount {
            stoppedAnswered = true
            WorkerCodec.stopped(into: &writer)
            answers.append(writer.bytes)
            return true
        }
        return moved
    }

    /// Ends the local workers: what runs gets `graceNanoseconds` (then is killed); bundles not
    /// answered are answered as terminated.
    func close(graceNanoseconds: UInt64) {
        guard let engine, !stopping else {
            backend.shutdown(deadline: monotonicNanoseconds() &+ graceNanoseconds)
            return
        }
        let deadline = monotonicNanoseconds() &+ graceNanoseconds
        engine.close()
        while engine.step() != .stopped {
            if monotonicNanoseconds() >= deadline {
                engine.terminate()
                while engine.step() != .stopped {}
                break
            }
            backend.waitForActivity(spinning: false, timeoutNanoseconds: 1_000_000) { false }
        }
    }
}
