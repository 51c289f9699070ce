/// A semaphore held by a `Manager` — Python's `Manager().Semaphore(value)` and
/// `Manager().BoundedSemaphore(value)`. Any process with the proxy may acquire and release
/// it. `acquire` retries the request while the value is 0, at most `timeout` seconds (nil:
/// for ever), as the manager's lock does.
public struct SemaphoreProxy: Codable, Sendable {
    let address: ManagerAddress
    let id: UInt64
    /// Whether a release past the starting value is refused.
    public let bounded: Bool

    /// Takes one unit; false if the value stayed 0 for `timeout` seconds (or, not blocking,
    /// was 0).
    @discardableResult
    public func acquire(blocking: Bool = true, timeout: Double? = nil) throws -> Bool {
        try ProxyCall.acquire(address, id, .semaphoreAcquire, blocking: blocking, timeout: timeout)
    }

    /// Gives one unit back; for a bounded semaphore already at its starting value throws
    /// `ManagerError(.invalidRequest)` (Python: "Semaphore released too many times") and
    /// changes nothing.
    public func release() throws {
        try ProxyCall.release(
            address, id, .semaphoreRelease,
            refusal: "release() of a manager BoundedSemaphore already at its starting value: released too many times")
    }

    /// Runs `body` holding one unit (Python's `with semaphore:`).
    public func withLock<R>(_ body: () throws -> R) throws -> R {
        try acquire()
        defer { try? release() }
        return try body()
    }

    /// The value now: a snapshot (Python's `get_value()`).
    public func value() throws -> Int {
        try ProxyCall.readCount(try ProxyCall.perform(address, id, .semaphoreValue) { _ in }.1)
    }
}
