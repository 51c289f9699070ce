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
/// dies as `WorkerDied` — never a hang — and the pool replaces it and stays usable.
public final class Pool: @unchecked Sendable {
    /// The number of workers (processes, or MPI worker ranks).
    public let processes: Int
    /// How the workers were started (local backend; under MPI, the value passed, unused).
    public let startMethod: StartMethod
    /// Where the workers run: `.local` or `.mpi` (never `.automatic`).
    public let backend: Backend
    let engine: PoolEngine

    /// Starts `processes` workers (default: `Multiprocessing.cpuCount`).
    ///
    /// - Parameters:
    ///   - processes: the number of workers. Under the MPI backend the workers are the job's
    ///     ranks 1…N−1: nil (the default) uses them all, a smaller number only the first
    ///     `processes`, a larger one is cut to N−1. With `mpirun -np 1` the pool runs the
    ///     tasks in this process, on the pool's thread.
    ///   - startMethod: how workers start; see `StartMethod`. Local backend only.
    ///   - initializer: runs once in every worker before its first task (Python's
    ///     `initializer`/`initargs`: put the arguments in its stored properties). If it
    ///     throws, the pool is broken and every call fails with `PoolError.startFailed`.
    ///   - maxTasksPerChild: a worker is replaced after this many chunks. Local backend only:
    ///     the MPI backend cannot replace a rank and throws `PoolError.invalidArgument`.
    ///   - backend: where the workers run; see `Backend`. `.automatic` (the default) is MPI
    ///     when mpirun started the program, local otherwise. `.mpi` outside mpirun throws
    ///     `PoolError.backendUnavailable`. One MPI pool at a time per process: a second one
    ///     while the first lives throws `PoolError.invalidArgument`.
    public init(processes: Int? = nil, startMethod: StartMethod = .automatic,
                initializer: (any ParallelFunction<Void, Void>)? = nil,
                maxTasksPerChild: Int? = nil, backend: Backend = .automatic) throws {
        if let processes, processes < 1 {
            throw PoolError(.invalidArgument, "processes must be at least 1, not \(processes)")
        }
        if let processes, processes > 4096 {
            throw PoolError(.invalidArgument, "processes must be at most 4096, not \(processes)")
        }
        if let maxTasksPerChild, maxTasksPerChild < 1 {
            throw PoolError(.invalidArgument, "maxTasksPerChild must be at least 1, not \(maxTasksPerChild)")
        }
        let definition = try initializer.map { try Pool.definition(of: $0) }
        let chosen = backend.resolved
        let poolBackend: any PoolBackend
        let resolved: StartMethod
        switch chosen {
        case .mpi:
            if maxTasksPerChild != nil {
                throw PoolError(.invalidArgument, "maxTasksPerChild is not supported by the MPI backend (an MPI rank cannot be "
                    + "replaced): remove it, or pass backend: .local")
            }
            poolBackend = try Backend.makeMPI(processes: processes)
            resolved = startMethod
        case .local, .automatic:
            let count = processes ?? Multiprocessing.cpuCount
            resolved = startMethod.resolved
            do {
                let local = try LocalBackend(workers: count, method: resolved)
                try local.start()
                poolBackend = local
            } catch let error as PoolError {
                throw error
            } catch {
                throw PoolError(.startFailed, "cannot start \(count) worker processes (\(resolved.rawValue)): \(error)")
            }
        }
        self.processes = poolBackend.workerCount
        self.startMethod = resolved
        self.backend = chosen
        self.engine = PoolEngine(backend: poolBackend, maxTasksPerChild: maxTasksPerChild, initializer: definition)
        if poolBackend is MPIBackend { MPIRoot.shared.attach(owner: self, engine: engine) }
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
    }

    /// Runs `body` with a new pool, then closes it and waits for its workers (pending work
    /// completes). If `body` throws, the pool is terminated instead.
    ///
    /// Unlike Python's `with Pool() as p:`, which calls `terminate()` on exit, this waits
    /// for work submitted with `applyAsync`/`mapAsync` to finish.
    public static func with<R>(processes: Int? = nil, startMethod: StartMethod = .automatic,
                               initializer: (any ParallelFunction<Void, Void>)? = nil,
                               maxTasksPerChild: Int? = nil, backend: Backend = .automatic,
                               _ body: (Pool) throws -> R) throws -> R {
        let pool = try Pool(processes: processes, startMethod: startMethod, initializer: initializer,
                            maxTasksPerChild: maxTasksPerChild, backend: backend)
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
    public func terminate() { engine.terminate() }

    /// Waits for the workers to exit. Call `close()` or `terminate()` first.
    public func join() throws {
        _ = engine.join()
    }

    // MARK: map

    /// Python's default chunk size for `map`: ceil(n / (4 × workers)).
    func defaultChunkSize(_ count: Int) -> Int {
        max(1, (count + 4 * processes - 1) / (4 * processes))
    }

    private func batch<F: ParallelFunction>(_ function: F, _ inputs: [F.Input], chunkSize: Int?, waiting: Bool = false,
                                            exclusive: Bool = false,
                                            finish: @escaping (Result<[F.Output], any Error>) -> Void) throws {
        if let chunkSize, chunkSize < 1 {
            throw PoolError(.invalidArgument, "chunkSize must be at least 1, not \(chunkSize)")
        }
        let definition = try FunctionDefinition.make(function)
        let job = BatchJob<F>(function: definition, inputs: inputs,
                              chunkSize: chunkSize ?? defaultChunkSize(inputs.count), finish: finish)
        job.exclusive = exclusive
        try engine.submit(job, wake: !waiting)
    }

    /// Applies `function` to every input, in parallel; results in input order.
    /// Throws the first failure (`RemoteError`, `WorkerDied`, `PoolError`).
    public func map<F: ParallelFunction>(_ function: F, _ inputs: some Sequence<F.Input>,
                                         chunkSize: Int? = nil) throws -> [F.Output] {
        let completion = Completion<[F.Output]>()
        try batch(function, Array(inputs), chunkSize: chunkSize, waiting: true) { completion.complete($0) }
        return try AsyncResult(completion, engine: engine).get()
    }

    /// `map` without waiting. `callback` runs (on the pool's thread) with the results,
    /// `errorCallback` with the error; keep both short.
    public func mapAsync<F: ParallelFunction>(_ function: F, _ inputs: some Sequence<F.Input>,
                                              chunkSize: Int? = nil,
                                              callback: (@Sendable ([F.Output]) -> Void)? = nil,
                                              errorCallback: (@Sendable (any Error) -> Void)? = nil)
        throws -> AsyncResult<[F.Output]> {
        let completion = Completion<[F.Output]>()
        attach(callback, errorCallback, to: completion)
        try batch(function, Array(inputs), chunkSize: chunkSize) { result in
            completion.complete(result.map { $0 })
        }
        return AsyncResult(completion, engine: engine)
    }

    /// Calls `function(input)` in a worker and waits for the result.
    public func apply<F: ParallelFunction>(_ function: F, _ input: F.Input) throws -> F.Output {
        let completion = Completion<F.Output>()
        try batch(function, [input], chunkSize: 1, waiting: true) { completion.complete($0.map { $0[0] }) }
        return try AsyncResult(completion, engine: engine).get()
    }

    /// Calls `function(input)` in a worker without waiting.
    public func applyAsync<F: ParallelFunction>(_ function: F, _ input: F.Input,
                                                callback: (@Sendable (F.Output) -> Void)? = nil,
                                                errorCallback: (@Sendable (any Error) -> Void)? = nil)
        throws -> AsyncResult<F.Output> {
        let completion = Completion<F.Output>()
        attach(callback, errorCallback, to: completion)
        try batch(function, [input], chunkSize: 1) { result in
            completion.complete(result.map { $0[0] })
        }
        return AsyncResult(completion, engine: engine)
    }

    /// `applyAsync` for a task that runs alone on a worker that runs nothing else meanwhile
    /// (a `Process` target on an MPI rank, `MPIProcessHost`).
    func applyExclusive<F: ParallelFunction>(_ function: F, _ input: F.Input,
                                             done: @escaping @Sendable () -> Void) throws -> AsyncResult<F.Output> {
        let completion = Completion<F.Output>()
        completion.onComplete { _ in done() }
        try batch(function, [input], chunkSize: 1, exclusive: true) { result in
            completion.complete(result.map { $0[0] })
        }
        return AsyncResult(completion)
    }

    private func attach<T>(_ callback: (@Sendable (T) -> Void)?, _ errorCallback: (@Sendable (any Error) -> Void)?,
                           to completion: Completion<T>) {
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
    /// few chunks ahead of the consumer), results are yielded in input order as they come.
    /// Default chunk size 1, as Python's.
    public func imap<F: ParallelFunction>(_ function: F, _ inputs: some Sequence<F.Input> & Sendable,
                                          chunkSize: Int = 1) throws -> ResultStream<F> {
        try stream(function, inputs, chunkSize: chunkSize, ordered: true)
    }

    /// Like `imap`, but results are yielded in the order they finish.
    public func imapUnordered<F: ParallelFunction>(_ function: F, _ inputs: some Sequence<F.Input> & Sendable,
                                                   chunkSize: Int = 1) throws -> ResultStream<F> {
        try stream(function, inputs, chunkSize: chunkSize, ordered: false)
    }

    private func stream<F: ParallelFunction>(_ function: F, _ inputs: some Sequence<F.Input>,
                                             chunkSize: Int, ordered: Bool) throws -> ResultStream<F> {
        guard chunkSize >= 1 else {
            throw PoolError(.invalidArgument, "chunkSize must be at least 1, not \(chunkSize)")
        }
        let definition = try FunctionDefinition.make(function)
        let engine = self.engine
        let job = StreamJob<F>(function: definition, source: AnyIterator(inputs.makeIterator()),
                               chunkSize: chunkSize, ordered: ordered, window: 8 * processes + 16,
                               wake: { [weak engine] in engine?.backend.wake() })
        try engine.submit(job)
        return ResultStream(job: job)
    }
}

extension Pool {
    /// A description of the backend and its workers, for `swiftmp info`.
    public var backendSummary: String { engine.backend.summary }
}
