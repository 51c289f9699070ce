#if canImport(Glibc)
import Glibc
#endif

/// A pool of worker processes — Python's `multiprocessing.Pool`.
///
/// ```swift
/// let pool = try Pool(processes: 4)
/// let squares = try pool.map(Square(), 0..<10)     // [0, 1, 4, …, 81]
/// pool.close(); try pool.join()
/// ```
///
/// Or scoped, which always cleans up: `try Pool.with(processes: 4) { pool in … }`.
///
/// Work is a `ParallelFunction` value. Results come back in input order. A function that
/// throws reaches the caller as `RemoteError` (with the failing input's index); a worker that
/// dies as `WorkerDied` for exactly the input it was running — never a hang — and the pool
/// replaces it and stays usable. Inputs can have a time limit and be retried (`taskTimeout`,
/// `RetryPolicy`); calls can be cancelled (`AsyncResult.cancel()`, Swift `Task` cancellation).
public final class Pool: @unchecked Sendable {
    /// The number of workers (processes, or MPI worker ranks).
    public let processes: Int
    /// How the workers were started (local backend; under MPI, the value passed, unused).
    public let startMethod: StartMethod
    /// Where the workers run: `.local` or `.mpi` (never `.automatic`).
    public let backend: Backend
    let engine: PoolEngine
    /// The broadcasts this pool made (`broadcast(_:)`), released at its end.
    let broadcasts = BroadcastOwnership()
    /// The streams over sequences that are not `Sendable` (`fedStream`), which the thread
    /// that iterates them reads — and `join()`, once the pool is closed, so that it never
    /// waits for a consumer that will not come (Python's `imap` reads its iterable itself).
    let fedStreams = FedStreams()
    /// The pool's `taskTimeout` and `retry`, for calls that give none.
    let defaults: TaskOptions

    /// Starts `processes` workers (default: `Multiprocessing.cpuCount`).
    ///
    /// - Parameters:
    ///   - processes: the number of workers. Under the MPI backend the workers are local
    ///     worker processes hosted by the job's ranks 1…N−1 (`processesPerRank` each): nil (the
    ///     default) uses them all, a smaller number only the first `processes` (ranks in
    ///     order), a larger one is cut to what the ranks host. With `mpirun -np 1` rank 0
    ///     hosts the local workers itself.
    ///   - processesPerRank: MPI backend: how many local worker processes each worker rank
    ///     hosts (forked from the rank; a task that crashes ends only its worker, which the
    ///     rank replaces). Default: one per CPU the rank may use — with ranks not bound to
    ///     CPUs, the node's CPUs shared among the worker ranks on it — so that one rank per
    ///     node (`--map-by ppr:1:node --bind-to none`) uses every core, and one rank per core
    ///     hosts one worker. Ignored by the local backend.
    ///   - startMethod: how workers start; see `StartMethod`. Local backend only.
    ///   - initializer: runs once in every worker before its first task (Python's
    ///     `initializer`/`initargs`: put the arguments in its stored properties). If it
    ///     throws, the pool is broken and every call fails with `PoolError.startFailed`; if
    ///     it crashes its worker three times in a row, likewise.
    ///   - maxTasksPerChild: a worker is replaced after this many chunks (under MPI, the
    ///     rank's local worker).
    ///   - taskTimeout: the longest an input may run, in seconds (nil: no limit), for calls
    ///     that give no `timeout:`. A worker running an input past it is killed and replaced
    ///     and the input fails with `TaskTimedOut` (also under MPI: the rank kills its local
    ///     worker).
    ///   - retry: how failed inputs are retried, for calls that give no `retry:` (default:
    ///     never).
    ///   - backend: where the workers run; see `Backend`. `.automatic` (the default) is MPI
    ///     when mpirun started the program, local otherwise. `.mpi` outside mpirun throws
    ///     `PoolError.backendUnavailable`. Several MPI pools may live at once, each with the
    ///     free workers it asks for; with none free, `PoolError.backendUnavailable`.
    ///   - tagOutput: local backend: each line a worker writes on its standard output or
    ///     error reaches the program's own prefixed with `[pid N] ` (`[rank R pid N] ` on an
    ///     MPI rank), like `mpirun --tag-output`. nil (the default): as the environment
    ///     variable `SWIFTMP_TAG_OUTPUT` says (`1` turns it on); true or false win over it.
    ///     Under the MPI backend the worker ranks' local workers follow it too (the variable
    ///     as rank 0's environment has it, when the option is nil).
    ///
    /// A pool cannot be created inside a pool task (its workers are daemonic, as in Python):
    /// that throws `PoolError.nested`.
    public convenience init(
        processes: Int? = nil, startMethod: StartMethod = .automatic,
        initializer: (any ParallelFunction<Void, Void>)? = nil,
        maxTasksPerChild: Int? = nil, taskTimeout: Double? = nil, retry: RetryPolicy = .none,
        processesPerRank: Int? = nil, backend: Backend = .automatic, tagOutput: Bool? = nil
    ) throws {
        try self.init(
            processes: processes, startMethod: startMethod, initializer: initializer,
            maxTasksPerChild: maxTasksPerChild, taskTimeout: taskTimeout, retry: retry,
            processesPerRank: processesPerRank, backend: backend, tagOutput: tagOutput, relayOnly: false)
    }

    /// `relayOnly`: under MPI, rank 0 schedules every local worker of the ranks itself
    /// (`RankScheduling.relay`) — for `Process` targets, each of which needs a local worker of
    /// its own (`MPIProcessHost`).
    init(
        processes: Int?, startMethod: StartMethod, initializer: (any ParallelFunction<Void, Void>)?,
        maxTasksPerChild: Int?, taskTimeout: Double?, retry: RetryPolicy,
        processesPerRank: Int?, backend: Backend, tagOutput: Bool?, relayOnly: Bool
    ) throws {
        if WorkerRuntime.servesThisProcess {
            throw PoolError(
                .nested,
                """
                a Pool cannot be created inside a pool task (pool workers are daemonic, as in Python, and a nested \
                pool would compete with its parent for the same cores): run the inner work in the task itself, or \
                submit it to the outer pool from the caller (e.g. flatten the two levels into one map)
                """)
        }
        if let processes, processes < 1 {
            throw PoolError(.invalidArgument, "processes must be at least 1, not \(processes)")
        }
        if let processes, processes > 4096 {
            throw PoolError(.invalidArgument, "processes must be at most 4096, not \(processes)")
        }
        if let processesPerRank, processesPerRank < 1 || processesPerRank > 4096 {
            throw PoolError(.invalidArgument, "processesPerRank must be between 1 and 4096, not \(processesPerRank)")
        }
        if let maxTasksPerChild, maxTasksPerChild < 1 {
            throw PoolError(.invalidArgument, "maxTasksPerChild must be at least 1, not \(maxTasksPerChild)")
        }
        let defaults = try TaskOptions(timeout: taskTimeout, retry: retry, defaults: .none)
        let definition = try initializer.map { try Pool.definition(of: $0) }
        let chosen = backend.resolved
        let poolBackend: any PoolBackend
        let resolved: StartMethod
        switch chosen {
        case .mpi:
            poolBackend = try Backend.makeMPI(
                processes: processes, perRank: processesPerRank, tagOutput: tagOutput, maxTasksPerChild: maxTasksPerChild,
                relayOnly: relayOnly)
            try poolBackend.start()
            resolved = startMethod
        case .local, .automatic:
            let count = processes ?? Multiprocessing.cpuCount
            resolved = startMethod.resolved
            do {
                let local = try LocalBackend(workers: count, method: resolved, tagOutput: tagOutput)
                try local.start()
                poolBackend = local
            } catch let error as PoolError {
                throw error
            } catch {
                throw PoolError(.startFailed, "cannot start \(count) worker processes (\(resolved.rawValue)): \(error)")
            }
        }
        self.processes = poolBackend.processCount
        self.startMethod = resolved
        self.backend = chosen
        self.defaults = defaults
        self.engine = PoolEngine(backend: poolBackend, maxTasksPerChild: maxTasksPerChild, initializer: definition)
        #if MPI
        if let mpi = poolBackend as? MPIBackend { MPIService.shared.attach(pool: mpi.pool, engine: engine) }
        #endif
        do {
            try engine.startThread()
        } catch {
            poolBackend.shutdown(deadline: monotonicNanoseconds())
            throw PoolError(.startFailed, "cannot start the pool's thread: \(error)")
        }
    }

    private static func definition<F: ParallelFunction>(of function: F) throws(PoolError) -> FunctionDefinition {
        try FunctionDefinition.make(function)
    }

    deinit {
        if !engine.isStopped { engine.terminate() }
        broadcasts.releaseAll()
    }

    /// Runs `body` with a new pool, then closes it and waits for its workers (pending work
    /// completes). If `body` throws, the pool is terminated instead.
    ///
    /// Unlike Python's `with Pool() as p:`, which calls `terminate()` on exit, this waits
    /// for work submitted with `applyAsync`/`mapAsync` to finish.
    public static func with<R>(
        processes: Int? = nil, startMethod: StartMethod = .automatic,
        initializer: (any ParallelFunction<Void, Void>)? = nil,
        maxTasksPerChild: Int? = nil, taskTimeout: Double? = nil, retry: RetryPolicy = .none,
        processesPerRank: Int? = nil, backend: Backend = .automatic, tagOutput: Bool? = nil,
        _ body: (Pool) throws -> R
    ) throws -> R {
        let pool = try Pool(
            processes: processes, startMethod: startMethod, initializer: initializer,
            maxTasksPerChild: maxTasksPerChild, taskTimeout: taskTimeout, retry: retry,
            processesPerRank: processesPerRank, backend: backend, tagOutput: tagOutput)
        let result: R
        do {
            result = try body(pool)
        } catch {
            pool.terminate()
            _ = pool.engine.join()
            throw error
        }
        pool.close()
        try pool.join()
        return result
    }

    // MARK: lifecycle

    /// No more work is accepted; workers exit once the submitted work is done.
    public func close() { engine.close() }

    /// Stops the workers now; outstanding calls fail with `PoolError` (`.terminated`).
    public func terminate() {
        engine.terminate()
        broadcasts.releaseAll()
    }

    /// Waits for the workers to exit. Call `close()` or `terminate()` first: without either
    /// it would wait for ever, and throws `PoolError.stillRunning` instead (Python's
    /// `ValueError("Pool is still running")`).
    public func join() throws {
        if PoolThread.isCurrent(ObjectIdentifier(engine)) {
            throw PoolError(.invalidArgument, PoolThread.waitMessage("join()"))
        }
        guard engine.isClosedOrTerminated else {
            throw PoolError(.stillRunning, "join() waits for the workers to exit: call close() (or terminate()) first")
        }
        // Closed: streams fed by their consumers' threads are fed here too (their windows no
        // longer hold), on this thread, one at a time with their consumers (`ResultStream`'s
        // turns); the rest is the engine's.
        while !engine.join(timeout: fedStreams.isEmpty ? nil : 0.01) { fedStreams.feedAll() }
        broadcasts.releaseAll()
    }

    // MARK: map

    /// Python's default chunk size for `map`: ceil(n / (4 × workers)).
    func defaultChunkSize(_ count: Int) -> Int {
        max(1, (count + 4 * processes - 1) / (4 * processes))
    }

    /// Submits a batch job; returns it (for cancellation).
    /// `definition`: the function already encoded (nil: encode it here); `prepare` runs on
    /// the job before the engine can see it (a checkpoint journal's hooks). `producing`: the
    /// caller writes that many inputs into the job after this returns (`inputs` is empty).
    /// `progression`: the inputs are those integers, computed (`inputs` is empty).
    /// `collection`: the inputs are read from it as their spans go out (`inputs` is empty).
    @discardableResult
    func batch<F: ParallelFunction>(
        _ function: F, _ inputs: [F.Input], producing: Int? = nil, progression: _IntegerProgression? = nil,
        collection: _CollectionInputs? = nil, chunkSize: Int?,
        timeout: Double?, retry: RetryPolicy?, progress: ProgressReport? = nil,
        exclusive: Bool = false, definition: FunctionDefinition? = nil,
        prepare: ((BatchJob<F>) -> Void)? = nil,
        drivenUntil isDone: (() -> Bool)? = nil,
        finish: @escaping (Result<[F.Output], any Error>) -> Void
    ) throws -> BatchJob<F> {
        if let chunkSize, chunkSize < 1 {
            throw PoolError(.invalidArgument, "chunkSize must be at least 1, not \(chunkSize)")
        }
        let count = progression?.count ?? collection?.count ?? producing ?? inputs.count
        try Pool.checkMemory(
            count: count, outputStride: MemoryLayout<F.Output>.stride,
            inputStride: producing == nil ? 0 : MemoryLayout<F.Input>.stride)
        let options = try TaskOptions(timeout: timeout, retry: retry, defaults: defaults)
        let job = BatchJob<F>(
            function: try definition ?? FunctionDefinition.make(function), options: options,
            inputs: inputs, producing: producing, progression: progression, collection: collection,
            // No chunk holds more than the call's inputs (a bundle's size under MPI is a
            // multiple of it: `Int.max` would overflow there).
            chunkSize: min(chunkSize ?? defaultChunkSize(count), max(1, count)),
            finish: finish)
        job.exclusive = exclusive
        job.progress = progress.map { ProgressMeter($0, total: count) }
        prepare?(job)
        // A synchronous apply runs the engine on its own thread when the pool is idle.
        if let isDone, try engine.runDriven(job, until: isDone) { return job }
        try engine.submit(job)
        return job
    }

    /// `checkMemory` before `inputs` are made an array (a checkpointed map of a range is):
    /// the array and the results must fit.
    @usableFromInline
    func _checkMemory<F: ParallelFunction>(_ inputs: some Sequence, _: F.Type) throws {
        try Pool.checkMemory(
            count: inputs.underestimatedCount, outputStride: MemoryLayout<F.Output>.stride,
            inputStride: MemoryLayout<F.Input>.stride)
    }

    /// Refuses a call whose results — and the inputs the caller writes into the job, for a
    /// `producing:` job — need more bytes than this process can be given (`MemoryLimit`: the
    /// machine's memory and swap, or its cgroup's limit): allocating them would end the program.
    /// Python's `map` raises `MemoryError` there.
    static func checkMemory(count: Int, outputStride: Int, inputStride: Int) throws(PoolError) {
        let (outputs, overflow) = count.multipliedReportingOverflow(by: max(outputStride, 1))
        let (inputs, inputOverflow) = count.multipliedReportingOverflow(by: inputStride)
        // Below 1 GiB no question (and no system call on the `apply` path).
        if !overflow && !inputOverflow && max(outputs, inputs) <= 1 << 30 { return }
        let limit = MemoryLimit.current
        guard overflow || inputOverflow || outputs > limit.bytes || inputs > limit.bytes else { return }
        throw PoolError(
            .invalidArgument,
            """
            a call over \(count) inputs cannot hold its results in memory (\(count) × \(outputStride) bytes; \
            more than \(limit.described)): use imap or imapUnordered, which keep only a window \
            of results, or split the inputs into several calls
            """)
    }

    /// Submits a batch job whose result `completion` receives, as an `AsyncResult`.
    func submit<F: ParallelFunction, Value>(
        _ function: F, _ inputs: [F.Input], chunkSize: Int?, timeout: Double?,
        retry: RetryPolicy?, progress: ProgressReport? = nil, checkpoint: String? = nil,
        completion: Completion<Value>,
        _ transform: @escaping ([F.Output]) -> Value
    ) throws -> AsyncResult<Value> {
        if let checkpoint {
            return try submitCheckpointed(
                function, inputs, path: checkpoint, chunkSize: chunkSize, timeout: timeout,
                retry: retry, progress: progress, completion: completion, transform)
        }
        let job = try batch(
            function, inputs, chunkSize: chunkSize, timeout: timeout, retry: retry,
            progress: progress
        ) { result in
            completion.complete(result.map(transform))
        }
        return AsyncResult(completion, engine: engine, cancel: { [weak engine] in engine?.cancel(job) })
    }

    /// Applies `function` to every input, in parallel; results in input order.
    /// Throws the first failure (`RemoteError`, `WorkerDied`, `TaskTimedOut`,
    /// `RetriesExhausted`, `PoolError`) as soon as it happens.
    ///
    /// - Parameters:
    ///   - function: the work, a `ParallelFunction` value (sent to each worker once).
    ///   - inputs: any sequence of inputs.
    ///   - chunkSize: inputs per task (default: Python's, ⌈n / (4 × workers)⌉).
    ///   - timeout: the longest one input may run, in seconds (default: the pool's `taskTimeout`).
    ///   - retry: how failed inputs are retried (default: the pool's `retry`).
    ///   - progress: where to report progress (default: nowhere); see `ProgressReport`.
    ///   - checkpoint: a journal file: each finished result is appended to it, and running
    ///     the same call again (after a crash, a kill, a wall-time limit) skips what it
    ///     holds and returns the same results. A journal of other work is refused
    ///     (`CheckpointError`). See the README's "Checkpoint and resume".
    ///
    /// Any `Sequence` is read in order, before the call returns (Python's `list(iterable)`),
    /// by code compiled in your module, where the compiler knows its type (`@inlinable`), so
    /// that every kind costs about what an `Array` costs. An `Array` is used as it is; an
    /// integer range or stride (`0..<n`, `0...n`, `stride(from:to:by:)`,
    /// `stride(from:through:by:)`) is not stored at all: each chunk's inputs are computed
    /// from its bounds straight into the chunk's message (`_IntegerProgression`); a `Set`, a
    /// slice or a dictionary's keys or values (of a thousand inputs or more) is not copied
    /// either: each chunk's inputs are read from it straight into the chunk's message, on
    /// the pool's thread (`_CollectionInputs`); another collection (a `lazy.map`…) is read on
    /// the calling thread into the call's input buffer while the workers already run the
    /// first chunks (`_InputProducer`, `PoolInputs.swift`), so a `lazy.map`'s closure runs on
    /// the calling thread, once per input.
    @inlinable
    public func map<F: ParallelFunction>(
        _ function: F, _ inputs: some Sequence<F.Input>, chunkSize: Int? = nil,
        timeout: Double? = nil, retry: RetryPolicy? = nil,
        progress: ProgressReport? = nil, checkpoint: String? = nil
    ) throws -> [F.Output] {
        if checkpoint == nil, let progression = _IntegerProgression(inputs, for: F.self) {
            return try _mapProgression(
                function, progression, chunkSize: chunkSize, timeout: timeout, retry: retry, progress: progress,
                callback: nil, errorCallback: nil
            ).get()
        }
        if checkpoint == nil, let collection = _CollectionInputs(inputs, for: F.self) {
            return try _mapCollection(
                function, collection, chunkSize: chunkSize, timeout: timeout, retry: retry, progress: progress,
                callback: nil, errorCallback: nil
            ).get()
        }
        if checkpoint == nil, let producer = _InputProducer(inputs) {
            let produced = try _submitProducing(
                function, count: producer.count, chunkSize: chunkSize, timeout: timeout, retry: retry,
                progress: progress, callback: nil, errorCallback: nil)
            producer.produce(into: produced.base, every: produced.step, publish: produced.publish)
            return try produced.result.get()
        }
        try _checkMemory(inputs, F.self)
        return try _map(
            function, Array(inputs), chunkSize: chunkSize, timeout: timeout, retry: retry, progress: progress,
            checkpoint: checkpoint)
    }

    /// `mapAsync` of the integers of `progression`, computed into each chunk's message.
    @usableFromInline
    func _mapProgression<F: ParallelFunction>(
        _ function: F, _ progression: _IntegerProgression, chunkSize: Int?, timeout: Double?, retry: RetryPolicy?,
        progress: ProgressReport?, callback: (@Sendable ([F.Output]) -> Void)?,
        errorCallback: (@Sendable (any Error) -> Void)?
    ) throws -> AsyncResult<[F.Output]> {
        try mapWithoutInputArray(
            function, progression: progression, collection: nil, chunkSize: chunkSize, timeout: timeout,
            retry: retry, progress: progress, callback: callback, errorCallback: errorCallback)
    }

    /// `mapAsync` of `collection`'s inputs, read on the pool's thread as each span goes out
    /// (`_CollectionInputs`).
    @usableFromInline
    func _mapCollection<F: ParallelFunction>(
        _ function: F, _ collection: _CollectionInputs, chunkSize: Int?, timeout: Double?, retry: RetryPolicy?,
        progress: ProgressReport?, callback: (@Sendable ([F.Output]) -> Void)?,
        errorCallback: (@Sendable (any Error) -> Void)?
    ) throws -> AsyncResult<[F.Output]> {
        try mapWithoutInputArray(
            function, progression: nil, collection: collection, chunkSize: chunkSize, timeout: timeout,
            retry: retry, progress: progress, callback: callback, errorCallback: errorCallback)
    }

    /// `mapAsync` of inputs the job reads from `progression` or `collection` as it sends them.
    private func mapWithoutInputArray<F: ParallelFunction>(
        _ function: F, progression: _IntegerProgression?, collection: _CollectionInputs?, chunkSize: Int?,
        timeout: Double?, retry: RetryPolicy?, progress: ProgressReport?,
        callback: (@Sendable ([F.Output]) -> Void)?, errorCallback: (@Sendable (any Error) -> Void)?
    ) throws -> AsyncResult<[F.Output]> {
        let completion = Completion<[F.Output]>()
        attach(callback, errorCallback, to: completion)
        let job = try batch(
            function, [], progression: progression, collection: collection, chunkSize: chunkSize, timeout: timeout,
            retry: retry, progress: progress
        ) { result in
            completion.complete(result)
        }
        return AsyncResult(completion, engine: engine, cancel: { [weak engine] in engine?.cancel(job) })
    }

    /// Submits a `mapAsync` of `count` inputs that the caller then writes, on this thread, in
    /// order, into the job's input buffer (`_ProducedInputs.base`), calling `publish(n)` every
    /// time it has written a multiple of `step` (and at the end): the engine sends those while
    /// the rest are written. (The caller writes them itself, in its own module, so that the
    /// sequence's iteration — a `lazy.map`'s closure — is compiled where it is known.)
    @usableFromInline
    func _submitProducing<F: ParallelFunction>(
        _ function: F, count: Int, chunkSize: Int?, timeout: Double?, retry: RetryPolicy?, progress: ProgressReport?,
        callback: (@Sendable ([F.Output]) -> Void)?, errorCallback: (@Sendable (any Error) -> Void)?
    ) throws -> _ProducedInputs<F.Input, F.Output> {
        let completion = Completion<[F.Output]>()
        attach(callback, errorCallback, to: completion)
        let job = try batch(
            function, [], producing: count, chunkSize: chunkSize, timeout: timeout, retry: retry,
            progress: progress
        ) { result in
            completion.complete(result)
        }
        // Published in whole chunks, at most ~16 times (each wakes the pool's thread).
        let chunk = chunkSize ?? defaultChunkSize(count)
        let wanted = max(4096, (count + 15) / 16)
        let step = (wanted + chunk - 1) / chunk * chunk
        let backend = engine.backend
        return _ProducedInputs(
            base: job.producedInputs!, step: step,
            publish: { written in
                job.publish(written)
                backend.wake()
            },
            result: AsyncResult(completion, engine: engine, cancel: { [weak engine] in engine?.cancel(job) }))
    }

    @usableFromInline
    func _map<F: ParallelFunction>(
        _ function: F, _ inputs: [F.Input], chunkSize: Int?, timeout: Double?,
        retry: RetryPolicy?, progress: ProgressReport?, checkpoint: String?
    ) throws -> [F.Output] {
        try submit(
            function, inputs, chunkSize: chunkSize, timeout: timeout, retry: retry, progress: progress,
            checkpoint: checkpoint, completion: Completion<[F.Output]>(), { $0 }
        ).get()
    }

    /// `map` without waiting. `callback` runs (on the pool's thread) with the results,
    /// `errorCallback` with the error — exactly one of them, once; keep both short.
    /// `inputs` is read as `map` reads it; what runs code of yours (a `lazy.map`'s closure)
    /// runs on the calling thread before this returns.
    @inlinable
    public func mapAsync<F: ParallelFunction>(
        _ function: F, _ inputs: some Sequence<F.Input>,
        chunkSize: Int? = nil, timeout: Double? = nil, retry: RetryPolicy? = nil,
        progress: ProgressReport? = nil, checkpoint: String? = nil,
        callback: (@Sendable ([F.Output]) -> Void)? = nil,
        errorCallback: (@Sendable (any Error) -> Void)? = nil
    )
        throws -> AsyncResult<[F.Output]>
    {
        if checkpoint == nil, let progression = _IntegerProgression(inputs, for: F.self) {
            return try _mapProgression(
                function, progression, chunkSize: chunkSize, timeout: timeout, retry: retry, progress: progress,
                callback: callback, errorCallback: errorCallback)
        }
        if checkpoint == nil, let collection = _CollectionInputs(inputs, for: F.self) {
            return try _mapCollection(
                function, collection, chunkSize: chunkSize, timeout: timeout, retry: retry, progress: progress,
                callback: callback, errorCallback: errorCallback)
        }
        if checkpoint == nil, let producer = _InputProducer(inputs) {
            let produced = try _submitProducing(
                function, count: producer.count, chunkSize: chunkSize, timeout: timeout, retry: retry,
                progress: progress, callback: callback, errorCallback: errorCallback)
            producer.produce(into: produced.base, every: produced.step, publish: produced.publish)
            return produced.result
        }
        try _checkMemory(inputs, F.self)
        return try _mapAsync(
            function, Array(inputs), chunkSize: chunkSize, timeout: timeout, retry: retry,
            progress: progress, checkpoint: checkpoint, callback: callback, errorCallback: errorCallback)
    }

    @usableFromInline
    func _mapAsync<F: ParallelFunction>(
        _ function: F, _ inputs: [F.Input], chunkSize: Int?, timeout: Double?,
        retry: RetryPolicy?, progress: ProgressReport?, checkpoint: String?,
        callback: (@Sendable ([F.Output]) -> Void)?,
        errorCallback: (@Sendable (any Error) -> Void)?
    ) throws -> AsyncResult<[F.Output]> {
        let completion = Completion<[F.Output]>()
        attach(callback, errorCallback, to: completion)
        return try submit(
            function, inputs, chunkSize: chunkSize, timeout: timeout, retry: retry, progress: progress,
            checkpoint: checkpoint, completion: completion, { $0 })
    }

    /// Calls `function(input)` in a worker and waits for the result. On an idle pool the
    /// calling thread runs the pool's engine itself while it waits (no hand-off to the pool's
    /// thread and back: ARCHITECTURE.md §6, "Callers drive their own `apply`").
    public func apply<F: ParallelFunction>(
        _ function: F, _ input: F.Input, timeout: Double? = nil,
        retry: RetryPolicy? = nil
    ) throws -> F.Output {
        let completion = Completion<F.Output>()
        let job = try batch(
            function, [input], chunkSize: 1, timeout: timeout, retry: retry, drivenUntil: { completion.isDone },
            finish: { result in completion.complete(result.map { $0[0] }) })
        return try AsyncResult(completion, engine: engine, cancel: { [weak engine] in engine?.cancel(job) }).get()
    }

    /// Calls `function(input)` in a worker without waiting.
    public func applyAsync<F: ParallelFunction>(
        _ function: F, _ input: F.Input, timeout: Double? = nil,
        retry: RetryPolicy? = nil,
        callback: (@Sendable (F.Output) -> Void)? = nil,
        errorCallback: (@Sendable (any Error) -> Void)? = nil
    )
        throws -> AsyncResult<F.Output>
    {
        let completion = Completion<F.Output>()
        attach(callback, errorCallback, to: completion)
        return try submit(
            function, [input], chunkSize: 1, timeout: timeout, retry: retry,
            completion: completion, { $0[0] })
    }

    /// `map`, awaited without blocking a thread of Swift's cooperative pool; cancelling the
    /// awaiting `Task` cancels the call (`PoolError.cancelled`). (A distinct name: an `async`
    /// overload of `map` would be chosen over the blocking one in every `async` context.)
    @inlinable
    public func asyncMap<F: ParallelFunction>(
        _ function: F, _ inputs: some Sequence<F.Input>, chunkSize: Int? = nil,
        timeout: Double? = nil, retry: RetryPolicy? = nil,
        progress: ProgressReport? = nil,
        checkpoint: String? = nil
    ) async throws -> [F.Output] {
        if checkpoint == nil, let progression = _IntegerProgression(inputs, for: F.self) {
            return try await _mapProgression(
                function, progression, chunkSize: chunkSize, timeout: timeout, retry: retry, progress: progress,
                callback: nil, errorCallback: nil
            ).value
        }
        if checkpoint == nil, let collection = _CollectionInputs(inputs, for: F.self) {
            return try await _mapCollection(
                function, collection, chunkSize: chunkSize, timeout: timeout, retry: retry, progress: progress,
                callback: nil, errorCallback: nil
            ).value
        }
        if checkpoint == nil, let producer = _InputProducer(inputs) {
            let produced = try _submitProducing(
                function, count: producer.count, chunkSize: chunkSize, timeout: timeout,
                retry: retry, progress: progress, callback: nil, errorCallback: nil)
            producer.produce(into: produced.base, every: produced.step, publish: produced.publish)
            return try await produced.result.value
        }
        try _checkMemory(inputs, F.self)
        return try await _mapAsync(
            function, Array(inputs), chunkSize: chunkSize, timeout: timeout, retry: retry,
            progress: progress, checkpoint: checkpoint, callback: nil, errorCallback: nil
        ).value
    }

    /// `apply`, awaited without blocking a thread; cancelling the awaiting `Task` cancels it.
    public func asyncApply<F: ParallelFunction>(
        _ function: F, _ input: F.Input, timeout: Double? = nil,
        retry: RetryPolicy? = nil
    ) async throws -> F.Output {
        try await submit(
            function, [input], chunkSize: 1, timeout: timeout, retry: retry,
            completion: Completion<F.Output>(), { $0[0] }
        ).value
    }

    /// `applyAsync` for a task that runs alone on a worker that runs nothing else meanwhile
    /// (a `Process` target on an MPI rank, `MPIProcessHost`).
    func applyExclusive<F: ParallelFunction>(
        _ function: F, _ input: F.Input,
        done: @escaping @Sendable () -> Void
    ) throws -> AsyncResult<F.Output> {
        let completion = Completion<F.Output>()
        completion.onComplete { _ in done() }
        let job = try batch(function, [input], chunkSize: 1, timeout: nil, retry: RetryPolicy.none, exclusive: true) { result in
            completion.complete(result.map { $0[0] })
        }
        return AsyncResult(completion, engine: engine, cancel: { [weak engine] in engine?.cancel(job) })
    }

    private func attach<T>(
        _ callback: (@Sendable (T) -> Void)?, _ errorCallback: (@Sendable (any Error) -> Void)?,
        to completion: Completion<T>
    ) {
        guard callback != nil || errorCallback != nil else { return }
        completion.onComplete { result in
            switch result {
            case .success(let value): callback?(value)
            case .failure(let error): errorCallback?(error)
            }
        }
    }

    // MARK: imap

    /// Like `map`, but lazy: inputs are taken from `inputs` as workers need them (at most a
    /// few chunks ahead of the consumer), results are yielded in input order as they come —
    /// one `Result` per input; a failed input (also one past its `timeout`) is one failed
    /// `Result` and the stream goes on. Default chunk size 1, as Python's (at most 2²⁴: a
    /// larger one is cut to it). Dropping the stream (or `cancel()`) cancels what is not done.
    @inlinable
    public func imap<F: ParallelFunction>(
        _ function: F, _ inputs: some Sequence<F.Input> & Sendable,
        chunkSize: Int = 1, timeout: Double? = nil, retry: RetryPolicy? = nil,
        progress: ProgressReport? = nil
    ) throws -> ResultStream<F> {
        try _stream(
            function, _specialisedIterator(inputs), chunkSize: chunkSize, ordered: true, timeout: timeout,
            retry: retry, progress: progress)
    }

    /// Like `imap`, but results are yielded in the order they finish.
    @inlinable
    public func imapUnordered<F: ParallelFunction>(
        _ function: F, _ inputs: some Sequence<F.Input> & Sendable,
        chunkSize: Int = 1, timeout: Double? = nil, retry: RetryPolicy? = nil,
        progress: ProgressReport? = nil
    ) throws -> ResultStream<F> {
        try _stream(
            function, _specialisedIterator(inputs), chunkSize: chunkSize, ordered: false, timeout: timeout,
            retry: retry, progress: progress)
    }

    /// `imap` over a sequence that is not `Sendable` — a `lazy.map` (never `Sendable` in
    /// Swift, whatever its closure), a `lazy.filter`, a sequence of your own: it is read on
    /// the thread that iterates the results (when the call is made, then at each `next()`,
    /// at most the stream's window ahead of what was consumed), never on the pool's thread,
    /// so an endless one is fine too. (Without this, the compiler took the standard
    /// library's eager `map` for a `lazy.map` argument: over `0...` it never returned.)
    public func imap<F: ParallelFunction, S: Sequence<F.Input>>(
        _ function: F, _ inputs: sending S,
        chunkSize: Int = 1, timeout: Double? = nil, retry: RetryPolicy? = nil,
        progress: ProgressReport? = nil
    ) throws -> ResultStream<F> {
        try fedStream(
            function, inputs.makeIterator(), chunkSize: chunkSize, ordered: true, timeout: timeout, retry: retry,
            progress: progress)
    }

    /// `imapUnordered` over a sequence that is not `Sendable`: read as `imap`'s is.
    public func imapUnordered<F: ParallelFunction, S: Sequence<F.Input>>(
        _ function: F, _ inputs: sending S,
        chunkSize: Int = 1, timeout: Double? = nil, retry: RetryPolicy? = nil,
        progress: ProgressReport? = nil
    ) throws -> ResultStream<F> {
        try fedStream(
            function, inputs.makeIterator(), chunkSize: chunkSize, ordered: false, timeout: timeout, retry: retry,
            progress: progress)
    }

    private func fedStream<F: ParallelFunction, I: IteratorProtocol<F.Input>>(
        _ function: F, _ iterator: I, chunkSize: Int, ordered: Bool, timeout: Double?, retry: RetryPolicy?,
        progress: ProgressReport?
    ) throws -> ResultStream<F> {
        var iterator = iterator
        var ended = false
        return try stream(
            function, nil, chunkSize: chunkSize, ordered: ordered, timeout: timeout, retry: retry,
            meter: progress.map { ProgressMeter($0, total: nil) }
        ) { job in
            guard !ended, let fed = job.fed else { return }
            let room = job.feedRoom
            guard room > 0 else { return }
            var inputs: [F.Input] = []
            inputs.reserveCapacity(min(room, 1 << 16))
            while inputs.count < room, let next = iterator.next() { inputs.append(next) }
            ended = inputs.count < room
            fed.push(inputs, ended: ended)
            job.wakeEngine()
        }
    }

    /// The largest chunk an `imap` stream sends (2²⁴ inputs): a larger `chunkSize` is cut to it.
    static let largestStreamChunk = 1 << 24

    @usableFromInline
    func _stream<F: ParallelFunction>(
        _ function: F, _ inputs: AnyIterator<F.Input>, chunkSize: Int,
        ordered: Bool, timeout: Double?, retry: RetryPolicy?,
        progress: ProgressReport?
    ) throws -> ResultStream<F> {
        try stream(
            function, inputs, chunkSize: chunkSize, ordered: ordered, timeout: timeout, retry: retry,
            meter: progress.map { ProgressMeter($0, total: nil) })
    }

    /// `_stream` reporting its progress to `meter` (a checkpointed stream's, which counts the
    /// inputs its journal answers too).
    ///
    /// `inputs` nil: the consumer's thread feeds the job with `feed` (`fedStream`), first here.
    func stream<F: ParallelFunction>(
        _ function: F, _ inputs: AnyIterator<F.Input>?, chunkSize: Int,
        ordered: Bool, timeout: Double?, retry: RetryPolicy?, meter: ProgressMeter?,
        feed: ((StreamJob<F>) -> Void)? = nil
    ) throws -> ResultStream<F> {
        guard chunkSize >= 1 else {
            throw PoolError(.invalidArgument, "chunkSize must be at least 1, not \(chunkSize)")
        }
        // The window (back-pressure) is a multiple of the chunk size: a larger chunk would
        // overflow it, and changes nothing but how many chunks the inputs are cut into.
        let chunkSize = min(chunkSize, Pool.largestStreamChunk)
        let options = try TaskOptions(timeout: timeout, retry: retry, defaults: defaults)
        let definition = try FunctionDefinition.make(function)
        let engine = self.engine
        let job = StreamJob<F>(
            function: definition, options: options, source: inputs,
            chunkSize: chunkSize, ordered: ordered, window: (8 * processes + 16) * chunkSize,
            wake: { [weak engine] in engine?.backend.wake() })
        job.progress = meter
        let feeder = feed.map { feed in { feed(job) } }
        feeder?()
        try engine.submit(job)
        let stream = ResultStream(job: job, engine: engine, feeder: feeder, cancel: { [weak engine] in engine?.cancel(job) })
        if feeder != nil { fedStreams.add(stream) }
        return stream
    }
}

/// A pool's fed streams (held weakly: a stream dropped is cancelled and needs no feeding).
final class FedStreams: @unchecked Sendable {
    private final class Entry {
        weak var stream: (any FedStream)?
        init(_ stream: any FedStream) { self.stream = stream }
    }
    private let lock = ConditionLock()
    private var entries: [Entry] = []

    func add(_ stream: any FedStream) {
        lock.withLock {
            entries.removeAll { $0.stream == nil }
            entries.append(Entry(stream))
        }
    }

    var isEmpty: Bool { lock.withLock { entries.allSatisfy { $0.stream == nil } } }

    /// Feeds every live stream what its job has room for, on this thread.
    func feedAll() {
        let live = lock.withLock { entries.compactMap(\.stream) }
        for stream in live { stream.feedAhead() }
    }
}

/// A stream whose inputs the iterating thread reads (`ResultStream.feed()`).
protocol FedStream: AnyObject {
    /// Hands the job what it has room for, whatever results wait to be read.
    func feedAhead()
}

extension ResultStream: FedStream {}

extension Pool {
    /// A description of the backend and its workers, as `swiftmp info` prints it: e.g.
    /// `local, fork` or `mpi, 2 worker ranks (ranks 1…2) on 1 host (node1)`.
    public var backendSummary: String { engine.backend.summary }

    /// Where each worker is now: one entry per worker slot, with the pid of the process in
    /// it (a replaced worker's successor once it has started), and under mpirun the worker
    /// rank that hosts it and that rank's host. `swiftmp info` prints it.
    /// Waits up to 5 s for workers still starting (a worker rank reports its workers' pids
    /// shortly after the pool is made).
    public var workerPlacement: [WorkerPlacement] {
        let end = monotonicNanoseconds() &+ 5_000_000_000
        var placement = engine.placement()
        // Not on the pool's own thread (a callback): nothing would change while it waited.
        while placement.contains(where: { $0.pid == nil }), !PoolThread.isCurrent(ObjectIdentifier(engine)), !engine.isStopped,
            monotonicNanoseconds() < end
        {
            var pause = timespec(tv_sec: 0, tv_nsec: 2_000_000)
            _ = nanosleep(&pause, nil)
            placement = engine.placement()
        }
        return placement
    }
}
