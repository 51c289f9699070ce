/// What a checkpointed stream's source gives for one wait (`Pool+CheckpointStream.swift`).
enum StreamBatch<Output> {
    /// The next results: never empty.
    case results([Result<Output, any Error>])
    case ended
    /// The deadline passed first.
    case timedOut
}

/// The results of `imap` / `imapUnordered`, as they arrive.
///
/// Iterate it as a `Sequence` of `Result`s — exactly one per input; a failed input does not
/// end the stream — call `next()`, or `for try await` it as an `AsyncSequence`. Dropping it
/// before the end, or `cancel()`, cancels the inputs not done (a worker running one is
/// killed and replaced, local backend).
public final class ResultStream<F: ParallelFunction>: Sequence, IteratorProtocol, @unchecked Sendable {
    private let job: StreamJob<F>?
    /// Instead of a job: gives the next results (nil at the end) and says whether it ended
    /// (a checkpointed stream, `Pool+CheckpointStream.swift`).
    private let external: (next: (UInt64?) -> StreamBatch<F.Output>, finished: () -> Bool)?
    private let canceller: @Sendable () -> Void
    /// The engine whose thread produces the results: iterating on that thread (in a callback
    /// of the same pool) could wait for ever.
    private var completer: ObjectIdentifier?
    private var buffer: [Result<F.Output, any Error>] = []
    private var position = 0
    private var ended = false
    /// Reads the caller's sequence (one that is not `Sendable`) into the job's `fed` inputs,
    /// up to its window: on the thread that iterates the results, never the pool's.
    private var feeder: (() -> Void)?

    init(
        job: StreamJob<F>, engine: PoolEngine? = nil, feeder: (() -> Void)? = nil,
        cancel: @escaping @Sendable () -> Void
    ) {
        self.job = job
        self.external = nil
        self.canceller = cancel
        self.completer = engine.map(ObjectIdentifier.init)
        self.feeder = feeder
    }

    /// Hands the job the inputs its window has room for, read from the caller's sequence
    /// here (a stream over a sequence that is not `Sendable`; nothing otherwise).
    func feed() {
        guard !ended, position >= buffer.count else { return }
        feeder?()
    }

    init(
        results next: @escaping (_ deadline: UInt64?) -> StreamBatch<F.Output>, finished: @escaping () -> Bool,
        cancel: @escaping @Sendable () -> Void
    ) {
        self.job = nil
        self.external = (next, finished)
        self.canceller = cancel
    }

    /// A stream dropped before its job finished cancels what is left. (`isFinished`: the
    /// engine's thread sets the job's `finished` while this may run on any other.)
    deinit { if !(job?.isFinished ?? external?.finished() ?? true) { canceller() } }

    /// Stops the stream: what is not done is cancelled; `next()` then returns nil.
    public func cancel() {
        canceller()
        ended = true
        buffer.removeAll()
        position = 0
    }

    /// The next result (or failure) in order; nil at the end.
    public func next() -> Result<F.Output, any Error>? {
        feed()
        if case .result(let result) = next(until: nil) { return result }
        return nil
    }

    /// `next()` waiting at most `timeout` seconds: throws `TimeoutError` when no result came
    /// in time — the stream goes on, a later call gets it (Python's
    /// `IMapIterator.next(timeout)`); nil at the end. As every timeout of the API: 0, a
    /// negative one or NaN does not wait, infinity (or 10⁹ s and more) waits as `next()`.
    public func next(timeout: Double) throws -> Result<F.Output, any Error>? {
        feed()
        switch next(until: deadline(after: timeout)) {
        case .result(let result): return result
        case .end: return nil
        case .timedOut: throw TimeoutError(seconds: timeout)
        }
    }

    /// What waiting for the next result ends with.
    enum Next {
        case result(Result<F.Output, any Error>)
        case end
        case timedOut
    }

    /// The next result, waiting at most until `deadline` (monotonic ns; nil: for ever).
    func next(until deadline: UInt64?) -> Next {
        if position < buffer.count {
            defer { position += 1 }
            return .result(buffer[position])
        }
        if ended { return .end }
        buffer.removeAll(keepingCapacity: true)
        position = 0
        if let external {
            switch external.next(deadline) {
            case .results(let results): buffer = results
            case .ended:
                ended = true
                return .end
            case .timedOut: return .timedOut
            }
            return next(until: deadline)
        }
        if let completer, PoolThread.isCurrent(completer) {
            // In a callback of the same pool: the results could never arrive; the stream ends.
            ended = true
            return .result(.failure(PoolError(.invalidArgument, PoolThread.waitMessage("iterating an imap stream"))))
        }
        guard let job else {
            ended = true
            return .end
        }
        switch job.take(until: deadline) {
        case .ended:
            ended = true
            return .end
        case .timedOut:
            return .timedOut
        case .piece(.outputs(let outputs)):
            buffer = outputs.map { .success($0) }
        case .piece(.failure(let error, let count)):
            if count == 0 {
                // The pool broke, was terminated, or the stream was cancelled.
                buffer = [.failure(error)]
                ended = true
            } else {
                buffer = Array(repeating: .failure(error), count: count)
            }
        }
        return next(until: deadline)
    }

    /// The next output; throws the input's failure; nil at the end.
    public func nextValue() throws -> F.Output? {
        try next()?.get()
    }

    /// `nextValue()` without reading the caller's sequence (`AsyncValues`, on its waiting
    /// thread: it was read where the iteration runs).
    func nextValueFed() throws -> F.Output? {
        if case .result(let result) = next(until: nil) { return try result.get() }
        return nil
    }
}

extension ResultStream {
    /// The outputs as an `AsyncSequence`: `for try await y in stream.values { … }`.
    /// A failed input throws and ends the iteration. Cancelling the iterating `Task`
    /// cancels the stream.
    public var values: AsyncValues { AsyncValues(stream: self) }

    public struct AsyncValues: AsyncSequence, Sendable {
        public typealias Element = F.Output
        let stream: ResultStream<F>

        public struct AsyncIterator: AsyncIteratorProtocol {
            let stream: ResultStream<F>

            public mutating func next() async throws -> F.Output? {
                if let buffered = stream.nextBuffered() { return try buffered.get() }
                let stream = self.stream
                // Here, not on the waiting thread: the sequence is read where it was iterated.
                stream.feed()
                // Waiting blocks a thread: do it on our own thread, not the cooperative pool.
                return try await withTaskCancellationHandler {
                    try await withCheckedThrowingContinuation { continuation in
                        do {
                            try spawnThread(named: "mp-imap-wait") {
                                continuation.resume(with: Result { try stream.nextValueFed() })
                            }
                        } catch {
                            continuation.resume(throwing: error)
                        }
                    }
                } onCancel: {
                    stream.canceller()
                }
            }
        }

        public func makeAsyncIterator() -> AsyncIterator { AsyncIterator(stream: stream) }
    }

    /// The next result if one is already here.
    func nextBuffered() -> Result<F.Output, any Error>? {
        guard position < buffer.count else { return nil }
        defer { position += 1 }
        return buffer[position]
    }
}
