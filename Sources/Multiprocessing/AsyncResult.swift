/// The pending result of `applyAsync`, `mapAsync` or `starmapAsync` — Python's
/// `AsyncResult`. Wait with `get(timeout:)` or `wait(timeout:)`, or `await value`.
public final class AsyncResult<Value: Sendable>: @unchecked Sendable {
    let completion: Completion<Value>
    /// The engine that produces the result, which a waiting caller may drive itself.
    private weak var engine: PoolEngine?

    init(_ completion: Completion<Value>, engine: PoolEngine? = nil) {
        self.completion = completion
        self.engine = engine
    }

    /// Waits until done or `deadline`, running the engine on this thread when it can.
    private func waitForCompletion(until deadline: UInt64?) -> Bool {
        if completion.isDone { return true }
        guard let engine else { return completion.wait(until: deadline) }
        engine.drive(until: { completion.isDone }, deadline: deadline)
        return completion.wait(until: deadline, spinning: engine.backend.allowsCallerDriving)
    }

    /// The result, waiting for it at most `timeout` seconds (nil: as long as it takes).
    /// Throws the task's error (`RemoteError`, `WorkerDied`, `PoolError`), or
    /// `TimeoutError` when the time runs out.
    public func get(timeout: Double? = nil) throws -> Value {
        guard waitForCompletion(until: deadline(after: timeout)) else {
            throw TimeoutError(seconds: timeout ?? 0)
        }
        return try completion.outcome!.get()
    }

    /// Waits at most `timeout` seconds; returns whether the result is ready.
    @discardableResult
    public func wait(timeout: Double? = nil) -> Bool {
        waitForCompletion(until: deadline(after: timeout))
    }

    /// Whether the call has completed (successfully or not).
    public var isReady: Bool { completion.isDone }

    /// Whether the call has completed without an error (false while it is not ready).
    public var isSuccessful: Bool {
        guard completion.isDone, case .success = completion.outcome else { return false }
        return true
    }

    /// The result, awaited without blocking a thread.
    public var value: Value {
        get async throws {
            try await withCheckedThrowingContinuation { continuation in
                completion.onComplete { continuation.resume(with: $0) }
            }
        }
    }
}
