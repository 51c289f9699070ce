/// The pending result of `applyAsync`, `mapAsync` or `starmapAsync` — Python's
/// `AsyncResult`. Wait with `get(timeout:)` or `wait(timeout:)`, or `await value`;
/// `cancel()` gives it up.
public final class AsyncResult<Value: Sendable>: @unchecked Sendable {
    let completion: Completion<Value>
    private let canceller: (@Sendable () -> Void)?
    /// The engine whose thread completes it: a wait on that thread (in a callback) could
    /// never end.
    private let completer: ObjectIdentifier?

    init(_ completion: Completion<Value>, engine: PoolEngine? = nil, cancel: (@Sendable () -> Void)? = nil) {
        self.completion = completion
        self.canceller = cancel
        self.completer = engine.map(ObjectIdentifier.init)
    }

    // Waiters sleep at once rather than spin: on a full machine a spinning caller takes the
    // CPU that the pool's thread, a worker or (MPI) rank 0's polling needs to produce the
    // result (measured: MPI apply round trip 26 µs sleeping, 70 µs spinning, under load).

    /// The result, waiting for it at most `timeout` seconds (nil: as long as it takes).
    /// Throws the task's error (`RemoteError`, `WorkerDied`, `TaskTimedOut`,
    /// `RetriesExhausted`, `PoolError`), or `TimeoutError` when the time runs out (the call
    /// goes on; `cancel()` stops it). Called without a timeout in a callback of the same pool
    /// (on the pool's own thread, which completes it) it throws `PoolError.invalidArgument`
    /// instead of waiting for ever.
    public func get(timeout: Double? = nil) throws -> Value {
        if timeout == nil, !completion.isDone, let completer, PoolThread.isCurrent(completer) {
            throw PoolError(.invalidArgument, PoolThread.waitMessage("get()"))
        }
        guard completion.wait(until: deadline(after: timeout), spinning: false) else {
            throw TimeoutError(seconds: timeout ?? 0)
        }
        return try completion.outcome!.get()
    }

    /// Waits at most `timeout` seconds; returns whether the result is ready. In a callback
    /// of the same pool (on the pool's own thread, which completes it) it returns at once.
    @discardableResult
    public func wait(timeout: Double? = nil) -> Bool {
        if !completion.isDone, let completer, PoolThread.isCurrent(completer) { return false }
        return completion.wait(until: deadline(after: timeout), spinning: false)
    }

    /// Whether the call has completed (successfully or not).
    public var isReady: Bool { completion.isDone }

    /// Whether the call has completed without an error (false while it is not ready).
    public var isSuccessful: Bool {
        guard completion.isDone, case .success = completion.outcome else { return false }
        return true
    }

    /// Whether the call completed without an error — Python's `successful()`, which raises
    /// `ValueError` while the result is not ready: this throws `PoolError(.stillRunning)`.
    public func successful() throws(PoolError) -> Bool {
        guard completion.isDone else {
            throw PoolError(.stillRunning, "the call's result is not ready yet: wait() or get() first, or ask isReady")
        }
        return isSuccessful
    }

    /// Gives the call up: its inputs not started are dropped, a worker running one of them
    /// is killed and replaced (local backend; an MPI rank finishes it and the result is
    /// dropped), and the result becomes `PoolError.cancelled` — the error callback, if any,
    /// runs once with it. Does nothing once the result is ready.
    public func cancel() {
        guard !completion.isDone else { return }
        canceller?()
    }

    /// The result, awaited without blocking a thread. Cancelling the awaiting `Task`
    /// cancels the call.
    public var value: Value {
        get async throws {
            try await withTaskCancellationHandler {
                try await withCheckedThrowingContinuation { continuation in
                    completion.onComplete { continuation.resume(with: $0) }
                }
            } onCancel: {
                cancel()
            }
        }
    }
}
