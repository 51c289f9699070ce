import CSystemShims

#if canImport(Glibc)
import Glibc
#endif

/// A server process that holds dictionaries, lists, namespaces, queues, locks, events and
/// values for other processes — Python's `multiprocessing.Manager()`.
///
/// ```swift
/// let manager = try Manager()
/// let scores = try manager.dict(String.self, Int.self)
/// try pool.map(Record(scores: scores), names)      // workers write through the proxy
/// print(try scores.snapshot())
/// ```
///
/// The server listens on a Unix socket in a directory only this user can enter (created
/// with mode 0700), accepts only peers of the same user (`SO_PEERCRED`) that present a
/// random 32-byte authentication key (proxies carry it), and never listens on a network.
/// It shuts down with `shutdown()`, when the `Manager` is dropped, or when this process
/// exits (it removes its socket and directory then).
///
/// Under mpirun (rank 0 of a job with worker ranks, where rank 0 serves the shared objects)
/// no server process starts: rank 0 holds the objects itself, and proxies used by tasks and
/// `Process` targets on worker ranks send their requests to rank 0 over MPI (answered while
/// an MPI pool is live, as for a served `Queue`). Proxies behave the same either way.
public final class Manager: @unchecked Sendable {
    let address: ManagerAddress
    /// Under mpirun: the handle of the manager rank 0 serves (it is freed with this object).
    private let served: MPIServedObject?
    private let directory: String
    private let pid: pid_t
    private let stateLock = ConditionLock()
    private var exited = false

    /// Starts the server process (under mpirun, in rank 0: a manager rank 0 serves itself).
    public init() throws {
        if MPIObjects.isServing {
            let served = MPIServedManager.make()
            self.served = served
            address = ManagerAddress(path: "", authkey: [], served: served.id)
            directory = ""
            pid = getpid()
            exitState = nil
            return
        }
        var template = Array("/tmp/swiftmp-manager-XXXXXX".utf8CString)
        guard template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) != nil else {
            throw SystemError("mkdtemp", errno: errno)
        }
        // The C string without its terminating NUL (mkdtemp filled in the X's).
        directory = String(decoding: template.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        let path = directory + "/socket"
        var generator = SystemRandomNumberGenerator()
        let key = (0..<32).map { _ in UInt8.random(in: 0...255, using: &generator) }
        address = ManagerAddress(path: path, authkey: key)
        served = nil
        let listener: Int32
        do {
            listener = try Manager.listen(at: path)
        } catch {
            unlink(path)
            rmdir(directory)
            throw error
        }
        defer { systemClose(listener) }
        let spec = "manager parent=\(getpid()) fds=1 dir=\(directory) key=\(ManagerKey.hex(key))"
        let state = ExitState()
        do {
            pid = try ProcessSupervisor.shared.perform {
                let pid = try ChildLauncher.spawn(spec: spec, passing: [listener])
                try ProcessSupervisor.shared.watch(pid: pid) { _ in state.markExited() }
                return pid
            }
        } catch {
            unlink(path)
            rmdir(directory)
            throw error
        }
        exitState = state
        // Return only once the server answers, so that no caller races its start-up. (The
        // connection stays for this process's proxies; `shutdown` closes it.)
        do {
            _ = try ManagerConnection.to(address)
        } catch {
            kill(pid, SIGKILL)
            unlink(path)
            rmdir(directory)
            throw error
        }
    }

    /// Nil for a manager rank 0 serves in process.
    private var exitState: ExitState!

    private final class ExitState: @unchecked Sendable {
        let lock = ConditionLock()
        var exited = false
        func markExited() {
            lock.withLock {
                exited = true; lock.broadcast()
            }
        }
        func wait(seconds: Double) -> Bool {
            let end = deadline(after: seconds)
            return lock.withLock {
                while !exited { if !lock.wait(until: end), !exited, let end, monotonicNanoseconds() >= end { return false } }
                return true
            }
        }
    }

    private static func listen(at path: String) throws -> Int32 {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw SystemError("socket", errno: errno) }
        guard let storage = SocketAddress.unix(path) else {
            systemClose(fd)
            throw SystemError("bind \(path)", errno: ENAMETOOLONG)
        }
        guard SocketAddress.withGeneric(storage, { bind(fd, $0, $1) }) == 0, Glibc.listen(fd, 128) == 0 else {
            let code = errno
            systemClose(fd)
            throw SystemError("bind/listen \(path)", errno: code)
        }
        return fd
    }

    private func create(_ operation: ManagerOperation, _ arguments: (inout WireWriter) throws -> Void = { _ in }) throws -> UInt64 {
        let (_, reply) = try ProxyCall.perform(address, 0, operation, arguments)
        return UInt64(try ProxyCall.readCount(reply))
    }

    /// A new shared dictionary.
    public func dict<Key: Codable & Hashable & Sendable, Value: Codable & Sendable>(
        _ key: Key.Type = Key.self, _ value: Value.Type = Value.self
    ) throws -> DictProxy<Key, Value> {
        DictProxy(address: address, id: try create(.createDict))
    }

    /// A new shared list.
    public func list<Element: Codable & Sendable>(of element: Element.Type = Element.self) throws -> ListProxy<Element> {
        ListProxy(address: address, id: try create(.createList))
    }

    /// A new shared set. Python's `Manager().set()`.
    public func set<Element: Codable & Hashable & Sendable>(of element: Element.Type = Element.self) throws -> SetProxy<Element> {
        SetProxy(address: address, id: try create(.createSet))
    }

    /// A new shared namespace.
    public func namespace() throws -> NamespaceProxy {
        NamespaceProxy(address: address, id: try create(.createNamespace))
    }

    /// A new shared first-in first-out queue of at most `maxSize` items (0: no bound).
    /// Python's `Manager().Queue(maxsize)`.
    public func queue<Element: Codable & Sendable>(of element: Element.Type = Element.self, maxSize: Int = 0) throws -> QueueProxy<Element> {
        guard maxSize >= 0 else {
            throw QueueError(.invalidArgument, "maxSize must be 0 (no bound) or a positive count, not \(maxSize)")
        }
        return QueueProxy(address: address, id: try create(.createQueue) { $0.write(UInt64(maxSize)) })
    }

    /// A new shared queue whose items are marked done (`taskDone()`) and waited for (`join`).
    /// Python's `Manager().JoinableQueue()` (every manager queue can: as Python's `Queue()`).
    public func joinableQueue<Element: Codable & Sendable>(
        of element: Element.Type = Element.self, maxSize: Int = 0
    ) throws -> QueueProxy<Element> {
        try queue(of: element, maxSize: maxSize)
    }

    /// A new shared lock (not owned: any process may release it). Python's `Manager().Lock()`.
    public func lock() throws -> LockProxy {
        LockProxy(address: address, id: try create(.createLock))
    }

    /// A new shared semaphore starting at `value`. Python's `Manager().Semaphore(value)`.
    public func semaphore(value: Int = 1) throws -> SemaphoreProxy {
        try makeSemaphore(value: value, bounded: false)
    }

    /// A new shared semaphore starting at `value` that refuses a release past it. Python's
    /// `Manager().BoundedSemaphore(value)`.
    public func boundedSemaphore(value: Int = 1) throws -> SemaphoreProxy {
        try makeSemaphore(value: value, bounded: true)
    }

    private func makeSemaphore(value: Int, bounded: Bool) throws -> SemaphoreProxy {
        guard value >= 0, value < Int(UInt32.max) else {
            throw ManagerError(.invalidRequest, "a manager semaphore starts at a value from 0 to \(UInt32.max - 1), not \(value)")
        }
        let id = try create(.createSemaphore) {
            $0.write(UInt64(value))
            $0.write(UInt8(bounded ? 1 : 0))
        }
        return SemaphoreProxy(address: address, id: id, bounded: bounded)
    }

    /// A new shared reentrant lock, owned by the thread that acquires it (of any process).
    /// Python's `Manager().RLock()`.
    public func rlock() throws -> RLockProxy {
        RLockProxy(address: address, id: try create(.createRLock))
    }

    /// A new shared condition variable over a new manager `RLock`. Python's
    /// `Manager().Condition()`.
    public func condition() throws -> ConditionProxy {
        try condition(lock: try rlock())
    }

    /// A new shared condition variable over `lock`, a reentrant lock of this manager.
    /// Python's `Manager().Condition(lock)`.
    public func condition(lock: RLockProxy) throws -> ConditionProxy {
        try makeCondition(lockAddress: lock.address, lockID: lock.id, reentrant: true)
    }

    /// A new shared condition variable over `lock`, a lock of this manager. Python's
    /// `Manager().Condition(lock)`.
    public func condition(lock: LockProxy) throws -> ConditionProxy {
        try makeCondition(lockAddress: lock.address, lockID: lock.id, reentrant: false)
    }

    private func makeCondition(lockAddress: ManagerAddress, lockID: UInt64, reentrant: Bool) throws -> ConditionProxy {
        guard lockAddress == address else {
            throw ManagerError(.invalidRequest, "a manager Condition needs a lock of the same manager: make the lock with this manager's lock() or rlock()")
        }
        let id = try create(.createCondition) { $0.write(lockID) }
        return ConditionProxy(address: address, id: id, lockID: lockID, reentrant: reentrant)
    }

    /// A new shared barrier for `parties` parties (at least 1). Python's
    /// `Manager().Barrier(parties, action, timeout)`.
    ///
    /// - Parameters:
    ///   - parties: how many calls of `wait()` open each pass (at least 1).
    ///   - action: run by the last party to arrive at each pass, before any party leaves;
    ///     its type must be `internal` or `public` (another process finds it by name).
    ///   - timeout: the default for `wait()`, in seconds; nil waits for ever.
    public func barrier(parties: Int, action: (any BarrierAction)? = nil, timeout: Double? = nil) throws -> BarrierProxy {
        guard parties >= 1, parties < Int(UInt32.max) else {
            throw ManagerError(.invalidRequest, "a manager Barrier needs at least 1 party, not \(parties)")
        }
        try BarrierActionCoding.check(action, for: "manager Barrier")
        let id = try create(.createBarrier) {
            $0.write(UInt64(parties))
            $0.write(UInt8(action == nil ? 0 : 1))
        }
        return BarrierProxy(address: address, id: id, parties: parties, timeout: timeout, action: action)
    }

    /// A new shared array holding `elements`, of a length that never changes. Python's
    /// `Manager().Array(typecode, sequence)`.
    public func array<Element: Codable & Sendable>(_ elements: [Element]) throws -> ArrayProxy<Element> {
        let list = try list(of: Element.self)
        try list.extend(elements)
        return ArrayProxy(list: list)
    }

    /// A new shared event, not set. Python's `Manager().Event()`.
    public func event() throws -> EventProxy {
        EventProxy(address: address, id: try create(.createEvent))
    }

    /// A new shared value. Python's `Manager().Value(typecode, value)`.
    public func value<T: Codable & Sendable>(_ initial: T) throws -> ValueProxy<T> {
        ValueProxy(address: address, id: try create(.createValue) { try ProxyCall.writeEncoded(initial, &$0) })
    }

    /// The server's process id (under mpirun, rank 0's own: it serves the objects).
    public var serverPID: Int32 { pid }

    /// Stops the server (proxies fail with `ManagerError(.unavailable)` afterwards) and waits
    /// for it to exit.
    public func shutdown() {
        let done: Bool = stateLock.withLock {
            if exited { return true }
            exited = true
            return false
        }
        guard !done else { return }
        if let served {
            MPIServedManager.shutdown(served)
            return
        }
        _ = try? ManagerConnection.to(address).request(.shutdown, object: 0)
        ManagerConnection.forget(address)
        if !exitState.wait(seconds: 5) {
            kill(pid, SIGKILL)
            _ = exitState.wait(seconds: 5)
        }
        unlink(address.path)
        rmdir(directory)
    }

    deinit { shutdown() }
}

/// The authentication key as hex, for the server's start-up spec.
enum ManagerKey {
    static func hex(_ bytes: [UInt8]) -> String {
        bytes.map { String($0, radix: 16).count == 1 ? "0" + String($0, radix: 16) : String($0, radix: 16) }.joined()
    }

    static func decodeHex(_ text: String) -> [UInt8]? {
        let digits = Array(text.utf8)
        guard digits.count % 2 == 0 else { return nil }
        var bytes: [UInt8] = []
        for i in stride(from: 0, to: digits.count, by: 2) {
            guard let byte = UInt8(String(decoding: digits[i..<i + 2], as: UTF8.self), radix: 16) else { return nil }
            bytes.append(byte)
        }
        return bytes
    }
}
