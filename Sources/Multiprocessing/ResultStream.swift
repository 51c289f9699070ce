/// The results of `imap` / `imapUnordered`, as they arrive.
///
/// Iterate it as a `Sequence` of `Result`s (a failed input does not end the stream), call
/// `next()` which throws, or `for try await` it as an `AsyncSequence`. Dropping it before
/// the end cancels the inputs not yet sent.
public final class ResultStream<F: ParallelFunction>: Sequence, IteratorProtocol, @unchecked Sendable {
    private let job: StreamJob<F>
    private var buffer: [Result<F.Output, any Error>] = []
    private var position = 0
    private var ended = false

    init(job: StreamJob<F>) {
        self.job = job
    }

    deinit { job.cancel() }

    /// The next result (or failure) in order; nil at the end.
    public func next() -> Result<F.Output, any Error>? {
        if position < buffer.count {
            defer { position += 1 }
            return buffer[position]
        }
        if ended { return nil }
        buffer.removeAll(keepingCapacity: true)
        position = 0
        guard let chunk = job.take() else {
            ended = true
            return nil
        }
        switch chunk {
        case .success(let outputs):
            buffer = outputs.map { .success($0) }
        case .failure(let error):
            buffer = [.failure(error)]
            if !(error is RemoteError || error is WorkerDied) { ended = true }
        }
        return next()
    }

    /// The next output; throws the input's failure; nil at the end.
    public func nextValue() throws -> F.Output? {
        try next()?.get()
    }
}

extension ResultStream {
    /// The outputs as an `AsyncSequence`: `for try await y in stream.values { … }`.
    /// A failed input throws and ends the iteration.
    public var values: AsyncValues { AsyncValues(stream: self) }

    public struct AsyncValues: AsyncSequence, Sendable {
        public typealias Element = F.Output
        let stream: ResultStream<F>

        public struct AsyncIterator: AsyncIteratorProtocol {
            let stream: ResultStream<F>

            public mutating func next() async throws -> F.Output? {
                if let buffered = stream.nextBuffered() { return try buffered.get() }
                let stream = self.stream
                // Waiting blocks a thread: do it on our own thread, not the cooperative pool.
                return try await withCheckedThrowingContinuation { continuation in
                    do {
                        try spawnThread(named: "mp-imap-wait") {
                            continuation.resume(with: Result { try stream.nextValue() })
                        }
                    } catch {
                        continuation.resume(throwing: error)
                    }
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
