/// A condition variable held by a `Manager` — Python's `Manager().Condition(lock)`: over a
/// manager `RLock` (the default, as Python's) or a manager `Lock`. Hold the lock, test the
/// shared state, and `wait` while it is not what you need; whoever changes the state does so
/// holding the lock and calls `notify` or `notifyAll`.
///
/// `wait` releases the lock completely (every level of an `RLock`) and registers the waiter in
/// one step, so no notify between the two is lost; it then asks the manager again and again
/// (from 50 µs apart up to 10 ms, as every manager object that waits) until a notify reached
/// it or its timeout passed, and takes the lock back as it held it before returning. A waiter
/// that dies never holds the lock, but a notify may be spent on it.
public struct ConditionProxy: Codable, Sendable {
    let address: ManagerAddress
    let id: UInt64
    /// The manager's lock the condition is over.
    let lockID: UInt64
    /// Whether that lock is an `RLock` (owned by a thread) or a `Lock`.
    let reentrant: Bool

    private var lockOperations: (acquire: ManagerOperation, release: ManagerOperation) {
        reentrant ? (.rlockAcquire, .rlockRelease) : (.lockAcquire, .lockRelease)
    }

    /// Acquires the condition's lock; false if another holder kept it `timeout` seconds (or,
    /// not blocking, held it). See `RLockProxy.acquire` and `LockProxy.acquire`.
    @discardableResult
    public func acquire(blocking: Bool = true, timeout: Double? = nil) throws -> Bool {
        let owner = ManagerOwner.current
        return try ProxyCall.acquire(address, lockID, lockOperations.acquire, blocking: blocking, timeout: timeout) {
            if reentrant { $0.write(owner) }
        }
    }

    /// Releases the condition's lock (one level of an `RLock`).
    public func release() throws {
        let owner = ManagerOwner.current
        try ProxyCall.release(address, lockID, lockOperations.release, refusal: "release() of a manager Condition's lock that is not held") {
            if reentrant { $0.write(owner) }
        }
    }

    /// Runs `body` holding the lock (Python's `with condition:`).
    public func withLock<R>(_ body: () throws -> R) throws -> R {
        try acquire()
        defer { try? release() }
        return try body()
    }

    /// Releases the lock, waits until notified or `timeout` seconds pass (nil: for ever), and
    /// takes the lock back before returning. Returns false on timeout.
    /// - Throws: `ManagerError(.invalidRequest)` if the caller does not hold the lock.
    public func wait(timeout: Double? = nil) throws -> Bool {
        let owner = ManagerOwner.current
        let end = deadline(after: timeout)
        let (status, reply) = try ProxyCall.perform(address, id, .conditionWait, deadline: end) { $0.write(owner) }
        guard status == .ok else {
            throw ManagerError(.invalidRequest, "wait() on a manager Condition without holding its lock: acquire it first (withLock { … })")
        }
        let ticket = UInt64(try ProxyCall.readCount(reply))
        var givingUp = false
        var backoff = ProxyCall.Backoff()
        while true {
            if let end, !givingUp, monotonicNanoseconds() >= end { givingUp = true }
            let (status, reply) = try ProxyCall.perform(address, id, .conditionResume, deadline: givingUp ? nil : end) { writer in
                writer.write(owner)
                writer.write(ticket)
                writer.write(UInt8(givingUp ? 1 : 0))
            }
            if status == .ok { return reply.first == 1 }
            // Once given up, only the lock is waited for: for ever, as Python's.
            backoff.pause(until: givingUp ? nil : end)
        }
    }

    /// Waits until `predicate` (evaluated holding the lock) is true or `timeout` seconds pass
    /// in all; returns the predicate's last value. Python's `wait_for`.
    public func wait(for predicate: () throws -> Bool, timeout: Double? = nil) throws -> Bool {
        let end = deadline(after: timeout)
        var result = try predicate()
        while !result {
            if let end {
                let now = monotonicNanoseconds()
                if now >= end { break }
                _ = try wait(timeout: Double(end - now) * 1e-9)
            } else {
                _ = try wait()
            }
            result = try predicate()
        }
        return result
    }

    /// Wakes up to `n` of the waiters waiting now, oldest first; never one that starts waiting
    /// later. Call it holding the lock. Returns how many it woke.
    /// - Throws: `ManagerError(.invalidRequest)` if the caller does not hold the lock.
    @discardableResult
    public func notify(n: Int = 1) throws -> Int {
        let owner = ManagerOwner.current
        let (status, reply) = try ProxyCall.perform(address, id, .conditionNotify) { writer in
            writer.write(owner)
            writer.write(UInt64(max(0, n)))
        }
        guard status == .ok else {
            throw ManagerError(.invalidRequest, "notify() on a manager Condition without holding its lock: acquire it first (withLock { … })")
        }
        return try ProxyCall.readCount(reply)
    }

    /// Wakes every waiter. Call it holding the lock. Python's `notify_all`.
    @discardableResult
    public func notifyAll() throws -> Int { try notify(n: Int(Int64.max)) }

    /// The waiters not yet notified: a snapshot (for tests that must know a waiter waits).
    public func waiterCount() throws -> Int {
        try ProxyCall.readCount(try ProxyCall.perform(address, id, .conditionWaiters) { _ in }.1)
    }
}
