import Synchronization

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
/// killed and replaced, local backend). Threads may share one stream (as Python's
/// `IMapIterator`): each result goes to one of them, one `next` at a time; a `next(timeout:)`
/// waiting for its turn behind another thread's `next()` still returns in time.
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
    /// One consumer at a time touches `buffer`, `position` and `ended` (threads may share a
    /// stream): `consuming` is the turn (taken by compare-and-swap: one thread iterating pays
    /// no lock); threads waiting for it count themselves in `waitingTurns` and sleep on `turns`.
    private let consuming = Atomic<Bool>(false)
    private let waitingTurns = Atomic<Int>(0)
    private let turns = ConditionLock()

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
        guard takeTurn(until: nil) else { return }
        defer { endTurn() }
        feedInTurn()
    }

    /// `feed()` whatever results wait to be read (`Pool.join()` on a closed pool, whose
    /// stream jobs take every input).
    func feedAhead() {
        guard takeTurn(until: nil) else { return }
        defer { endTurn() }
        if !ended { feeder?() }
    }

    private func feedInTurn() {
        guard !ended, position >= buffer.count else { return }
        feeder?()
    }

    /// Waits until no other thread is in `next`; false if `deadline` passed first.
    private func takeTurn(until deadline: UInt64?) -> Bool {
        if consuming.compareExchange(expected: false, desired: true, ordering: .acquiring).exchanged { return true }
        turns.lock()
        defer { turns.unlock() }
        // Counted before trying again: `endTurn` then wakes this thread if it missed the turn.
        waitingTurns.add(1, ordering: .sequentiallyConsistent)
        defer { waitingTurns.subtract(1, ordering: .sequentiallyConsistent) }
        while !consuming.compareExchange(expected: false, desired: true, ordering: .sequentiallyConsistent).exchanged {
            if !turns.wait(until: deadline), let deadline, monotonicNanoseconds() >= deadline {
                return consuming.compareExchange(expected: false, desired: true, ordering: .sequentiallyConsistent).exchanged
            }
        }
        return true
    }

    private func endTurn() {
        consuming.store(false, ordering: .sequentiallyConsistent)
        if waitingTurns.load(ordering: .sequentiallyConsistent) > 0 {
            turns.lock()
            turns.broadcast()
            turns.unlock()
        }
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
        // First: a thread waiting in `next` then sees the end and gives its turn back.
        canceller()
        _ = takeTurn(until: nil)
        defer { endTurn() }
        ended = true
        buffer.removeAll()
        position = 0
    }

    /// The next result (or failure) in order; nil at the end.
    public func next() -> Result<F.Output, any Error>? {
        guard takeTurn(until: nil) else { return nil }
        defer { endTurn() }
        feedInTurn()
        if case .result(let result) = nextInTurn(until: nil) { return result }
        return nil
    }

    /// `next()` waiting at most `timeout` seconds: throws `TimeoutError` when no result came
    /// in time — the stream goes on, a later call gets it (Python's
    /// `IMapIterator.next(timeout)`); nil at the end. As every timeout of the API: 0, a
    /// negative one or NaN does not wait, infinity (or 10⁹ s and more) waits as `next()`.
    public func next(timeout: Double) throws -> Result<F.Output, any Error>? {
        let end = deadline(after: timeout)
        guard takeTurn(until: end) else { throw TimeoutError(seconds: timeout) }
        defer { endTurn() }
        feedInTurn()
        switch nextInTurn(until: end) {
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

    /// The next result, waiting at most until `deadline` (monotonic ns; nil: for ever) — for
    /// its turn too.
    func next(until deadline: UInt64?) -> Next {
        guard takeTurn(until: deadline) else { return .timedOut }
        defer { endTurn() }
        return nextInTurn(until: deadline)
    }

    private func nextInTurn(until deadline: UInt64?) -> Next {
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
            return nextInTurn(until: deadline)
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
        return nextInTurn(until: deadline)
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
        guard takeTurn(until: nil) else { return nil }
        defer { endTurn() }
        guard position < buffer.count else { return nil }
        defer { position += 1 }
        return buffer[position]
    }
}
