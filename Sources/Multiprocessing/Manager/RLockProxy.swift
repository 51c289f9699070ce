import CSystemShims

#if canImport(Glibc)
import Glibc
#endif

/// A reentrant lock held by a `Manager` — Python's `Manager().RLock()`. The thread that
/// acquires it holds it: it may acquire it again (and must release it as many times), and
/// only it may release it. `acquire` retries the request while another thread holds it, at
/// most `timeout` seconds (nil: for ever). A holder that ends without releasing leaves it
/// held, as Python's does.
public struct RLockProxy: Codable, Sendable {
    let address: ManagerAddress
    let id: UInt64

    /// Acquires the lock (again, if this thread holds it); false if another thread held it
    /// for `timeout` seconds (or, not blocking, held it).
    @discardableResult
    public func acquire(blocking: Bool = true, timeout: Double? = nil) throws -> Bool {
        let owner = ManagerOwner.current
        return try ProxyCall.acquire(address, id, .rlockAcquire, blocking: blocking, timeout: timeout) { $0.write(owner) }
    }

    /// Releases one level; throws `ManagerError(.invalidRequest)` if this thread does not
    /// hold the lock.
    public func release() throws {
        let owner = ManagerOwner.current
        try ProxyCall.release(address, id, .rlockRelease, refusal: "release() of a manager RLock this thread does not hold") {
            $0.write(owner)
        }
    }

    /// Runs `body` holding the lock (Python's `with rlock:`).
    public func withLock<R>(_ body: () throws -> R) throws -> R {
        try acquire()
        defer { try? release() }
        return try body()
    }

    /// Whether this thread holds the lock now, and how many times (0: not held by it).
    public func heldByCurrentThread() throws -> Int {
        let reply = try ProxyCall.perform(address, id, .rlockState) { $0.write(ManagerOwner.current) }.1
        guard reply.count >= 9, reply[0] == 2 else { return 0 }
        return try ProxyCall.readCount(Array(reply[1...]))
    }

    /// Whether some thread holds the lock now: a snapshot.
    public func isLocked() throws -> Bool {
        try ProxyCall.perform(address, id, .rlockState) { $0.write(ManagerOwner.current) }.1.first != 0
    }
}

/// Names a thread of a process to a manager's reentrant locks: a random token per process
/// (drawn again in a forked child, whose pid differs) mixed with the thread's id, never 0.
/// Unique across the hosts of an mpirun job, where pids and thread ids repeat.
enum ManagerOwner {
    private static let state = ConditionLock(resetInForkedChild: true)
    nonisolated(unsafe) private static var process: (pid: pid_t, token: UInt64) = (0, 0)

    static var current: UInt64 {
        let pid = getpid()
        let token = state.withLock { () -> UInt64 in
            if process.pid != pid { process = (pid, UInt64.random(in: 1...UInt64.max)) }
            return process.token
        }
        let mixed = token ^ (UInt64(UInt32(bitPattern: CSystemShims_gettid())) &* 0x9E37_79B9_7F4A_7C15)
        return mixed == 0 ? 1 : mixed
    }
}
