import Synchronization

/// A result that one thread produces once and others wait for: the core of `AsyncResult`.
/// Waiters spin very briefly (results of tiny tasks arrive within microseconds), then sleep.
final class Completion<Value: Sendable>: @unchecked Sendable {
    private let lock = ConditionLock()
    private let done = Atomic<Bool>(false)
    private var result: Result<Value, any Error>?
    private var callbacks: [@Sendable (Result<Value, any Error>) -> Void] = []

    var isDone: Bool { done.load(ordering: .acquiring) }

    /// Stores the result (only the first call counts) and runs the callbacks on this thread.
    /// As in Python, callbacks run before waiters see the result.
    func complete(_ outcome: Result<Value, any Error>) {
        let pending: [@Sendable (Result<Value, any Error>) -> Void]? = lock.withLock {
            if result != nil { return nil }
            result = outcome
            let pending = callbacks
            callbacks.removeAll()
            return pending
        }
        guard let pending else { return }
        for callback in pending { callback(outcome) }
        // Broadcast after unlocking: a waiter woken while the mutex is still held would block
        // on it and be woken a second time (seen in perf sched traces of cold round trips).
        lock.withLock { done.store(true, ordering: .releasing) }
        lock.broadcast()
    }

    /// Runs `callback` with the result: now if it is there, otherwise when it arrives.
    func onComplete(_ callback: @escaping @Sendable (Result<Value, any Error>) -> Void) {
        let now: Result<Value, any Error>? = lock.withLock {
            if let result { return result }
            callbacks.append(callback)
            return nil
        }
        if let now { callback(now) }
    }

    /// Waits until done or the deadline passes; returns whether it is done.
    /// `spinning: false` when the thread that will complete it needs this CPU (the MPI
    /// backend's engine thread polls MPI on the same cores).
    func wait(until deadline: UInt64?, spinning: Bool = true) -> Bool {
        if spinning && AdaptiveWait.spin(until: { isDone }) { return true }
        return lock.withLock {
            while !isDone {
                if !lock.wait(until: deadline), !isDone,
                    let deadline, monotonicNanoseconds() >= deadline
                {
                    return false
                }
            }
            return true
        }
    }

    /// The result, if done.
    var outcome: Result<Value, any Error>? { lock.withLock { result } }
}
