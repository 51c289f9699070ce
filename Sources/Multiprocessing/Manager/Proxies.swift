#if canImport(Glibc)
import Glibc
#endif

/// A dictionary held by a `Manager`'s server process (under mpirun, by rank 0): every process
/// that has the proxy (a pool function's property, a `Process` target's property) sees the
/// same contents.
/// Keys are compared by their encoding. Python's `Manager().dict()`.
public struct DictProxy<Key: Codable & Hashable & Sendable, Value: Codable & Sendable>: Codable, Sendable {
    let address: ManagerAddress
    let id: UInt64

    private func call(_ operation: ManagerOperation, _ arguments: (inout WireWriter) throws -> Void = { _ in }) throws -> (ManagerStatus, [UInt8]) {
        try ProxyCall.perform(address, id, operation, arguments)
    }

    /// The value for `key`, or nil.
    public func get(_ key: Key) throws -> Value? {
        let (status, reply) = try call(.dictGet) { try ProxyCall.writeEncoded(key, &$0) }
        return status == .missing ? nil : try ProxyCall.readEncoded(Value.self, reply)
    }

    /// Stores `value` for `key`.
    public func set(_ key: Key, _ value: Value) throws {
        _ = try call(.dictSet) { writer in
            try ProxyCall.writeEncoded(key, &writer)
            try ProxyCall.writeEncoded(value, &writer)
        }
    }

    /// Removes `key`; returns whether it was there.
    @discardableResult
    public func removeValue(forKey key: Key) throws -> Bool {
        try call(.dictDelete) { try ProxyCall.writeEncoded(key, &$0) }.0 == .ok
    }

    /// The number of entries.
    public func count() throws -> Int { try ProxyCall.readCount(try call(.dictCount).1) }

    /// A snapshot of the whole dictionary.
    public func snapshot() throws -> [Key: Value] {
        let (_, reply) = try call(.dictItems)
        return try ProxyCall.readPairs(reply).reduce(into: [:]) { result, pair in
            result[try Wire.decode(Key.self, from: pair.0)] = try Wire.decode(Value.self, from: pair.1)
        }
    }

    public func removeAll() throws { _ = try call(.dictClear) }

    /// Removes `key` and returns its value, or nil if it was not there. Python's `pop`.
    @discardableResult
    public func pop(_ key: Key) throws -> Value? {
        let (status, reply) = try call(.dictPop) { try ProxyCall.writeEncoded(key, &$0) }
        return status == .missing ? nil : try ProxyCall.readEncoded(Value.self, reply)
    }

    /// The value for `key`, storing `defaultValue` first if there is none (in one step, so
    /// two processes cannot both store theirs). Python's `setdefault`.
    @discardableResult
    public func setDefault(_ key: Key, _ defaultValue: Value) throws -> Value {
        let (_, reply) = try call(.dictSetDefault) { writer in
            try ProxyCall.writeEncoded(key, &writer)
            try ProxyCall.writeEncoded(defaultValue, &writer)
        }
        return try ProxyCall.readEncoded(Value.self, reply)
    }

    /// Stores every pair of `entries` (in one step). Python's `update`.
    public func update(_ entries: [Key: Value]) throws {
        _ = try call(.dictUpdate) { writer in
            writer.write(UInt64(entries.count))
            for (key, value) in entries {
                try ProxyCall.writeEncoded(key, &writer)
                try ProxyCall.writeEncoded(value, &writer)
            }
        }
    }
}

/// A list held by a `Manager`'s server process. Negative indices count from the end, as in
/// Python. Python's `Manager().list()`.
public struct ListProxy<Element: Codable & Sendable>: Codable, Sendable {
    let address: ManagerAddress
    let id: UInt64

    private func call(_ operation: ManagerOperation, _ arguments: (inout WireWriter) throws -> Void = { _ in }) throws -> (ManagerStatus, [UInt8]) {
        try ProxyCall.perform(address, id, operation, arguments)
    }

    public func append(_ element: Element) throws {
        _ = try call(.listAppend) { try ProxyCall.writeEncoded(element, &$0) }
    }

    /// The element at `index`; throws `ManagerError(.invalidRequest)` when out of range.
    public func get(_ index: Int) throws -> Element {
        let (status, reply) = try call(.listGet) { $0.write(Int64(index)) }
        guard status == .ok else { throw ManagerError(.invalidRequest, "list index \(index) out of range") }
        return try ProxyCall.readEncoded(Element.self, reply)
    }

    public func set(_ index: Int, _ element: Element) throws {
        let (status, _) = try call(.listSet) { writer in
            writer.write(Int64(index))
            try ProxyCall.writeEncoded(element, &writer)
        }
        guard status == .ok else { throw ManagerError(.invalidRequest, "list index \(index) out of range") }
    }

    @discardableResult
    public func remove(at index: Int) throws -> Element {
        let (status, reply) = try call(.listRemove) { $0.write(Int64(index)) }
        guard status == .ok else { throw ManagerError(.invalidRequest, "list index \(index) out of range") }
        return try ProxyCall.readEncoded(Element.self, reply)
    }

    public func count() throws -> Int { try ProxyCall.readCount(try call(.listCount).1) }

    /// A snapshot of the whole list.
    public func snapshot() throws -> [Element] {
        let (_, reply) = try call(.listItems)
        return try reply.withUnsafeBytes { raw in
            var reader = WireReader(raw)
            let count = try reader.read(UInt64.self)
            guard count <= UInt64(raw.count) else { throw WireError.corrupt("list of \(count) items") }
            return try (0..<Int(count)).map { _ in try Wire.decode(Element.self, from: Array(try reader.readLengthPrefixed())) }
        }
    }

    public func removeAll() throws { _ = try call(.listClear) }

    /// Inserts `element` before `index` (negative: from the end; past either end: at that
    /// end, as Python's `insert`).
    public func insert(_ element: Element, at index: Int) throws {
        _ = try call(.listInsert) { writer in
            writer.write(Int64(index))
            try ProxyCall.writeEncoded(element, &writer)
        }
    }

    /// Appends every element of `elements` (in one step). Python's `extend`.
    public func extend<S: Sequence>(_ elements: S) throws where S.Element == Element {
        let items = Array(elements)
        _ = try call(.listExtend) { writer in
            writer.write(UInt64(items.count))
            for item in items { try ProxyCall.writeEncoded(item, &writer) }
        }
    }

    /// The elements, to iterate over (`for x in try list.items()`): one request, a
    /// snapshot. Python's `for x in proxy`.
    public func items() throws -> [Element] { try snapshot() }
}

/// Named values held by a `Manager` — Python's `Manager().Namespace()`.
public struct NamespaceProxy: Codable, Sendable {
    let address: ManagerAddress
    let id: UInt64

    /// The value stored under `name`, or nil.
    public func get<T: Codable>(_ name: String, as type: T.Type = T.self) throws -> T? {
        let (status, reply) = try ProxyCall.perform(address, id, .namespaceGet) { $0.write(name) }
        return status == .missing ? nil : try ProxyCall.readEncoded(T.self, reply)
    }

    public func set<T: Codable>(_ name: String, _ value: T) throws {
        _ = try ProxyCall.perform(address, id, .namespaceSet) { writer in
            writer.write(name)
            try ProxyCall.writeEncoded(value, &writer)
        }
    }

    /// Removes `name` (Python's `del namespace.name`); returns whether it was there.
    @discardableResult
    public func remove(_ name: String) throws -> Bool {
        try ProxyCall.perform(address, id, .namespaceDelete) { $0.write(name) }.0 == .ok
    }
}

/// A first-in first-out queue held by a `Manager` — Python's `Manager().Queue()`. Any
/// process with the proxy puts and gets; `put` into a full queue (with `maxSize`) and `get`
/// from an empty one wait, retrying the request, at most `timeout` seconds (nil: for ever),
/// then throw `Full` / `Empty` as `Queue` does. Items are encoded on the client, so the
/// server never decodes them.
public struct QueueProxy<Element: Codable & Sendable>: Codable, Sendable {
    let address: ManagerAddress
    let id: UInt64

    public func put(_ item: Element, timeout: Double? = nil) throws {
        let bytes = try AttachmentContext.plainValuesOnly(for: "a manager") { try Wire.encode(item) }
        let placed = try ProxyCall.retry(timeout: timeout) { deadline in
            try ProxyCall.perform(address, id, .queuePut, deadline: deadline) { writer in
                bytes.withUnsafeBytes { writer.writeLengthPrefixed($0) }
            }.0 == .ok
        }
        if !placed { throw Full() }
    }

    public func putNowait(_ item: Element) throws { try put(item, timeout: 0) }

    public func get(timeout: Double? = nil) throws -> Element {
        var reply: [UInt8] = []
        let got = try ProxyCall.retry(timeout: timeout) { deadline in
            let (status, bytes) = try ProxyCall.perform(address, id, .queueGet, deadline: deadline) { _ in }
            reply = bytes
            return status == .ok
        }
        guard got else { throw Empty() }
        return try ProxyCall.readEncoded(Element.self, reply)
    }

    public func getNowait() throws -> Element { try get(timeout: 0) }

    /// Items in the queue now. Python's `qsize()`.
    public func count() throws -> Int { try ProxyCall.readCount(try ProxyCall.perform(address, id, .queueCount) { _ in }.1) }

    /// Marks one item got from the queue as processed (Python's `task_done()`, which a
    /// manager's queue has as `queue.Queue` does). More calls than items put throw
    /// `ManagerError(.invalidRequest)`.
    public func taskDone() throws {
        try ProxyCall.release(address, id, .queueTaskDone, refusal: "taskDone() called more times than there were items put")
    }

    /// Waits until every item put has been marked done (`taskDone()`), at most `timeout`
    /// seconds (nil: for ever); returns false on time-out. Python's `join()`.
    @discardableResult
    public func join(timeout: Double? = nil) throws -> Bool {
        try ProxyCall.acquire(address, id, .queueJoin, blocking: true, timeout: timeout)
    }

    public func isEmpty() throws -> Bool { try count() == 0 }
}

/// A lock held by a `Manager` — Python's `Manager().Lock()`: not owned (any process may
/// release it, as Python's), and not released if its holder dies. `acquire` retries the
/// request while the lock is held, at most `timeout` seconds (nil: for ever).
public struct LockProxy: Codable, Sendable {
    let address: ManagerAddress
    let id: UInt64

    /// Acquires the lock; false if it stayed held for `timeout` seconds (or, not blocking, was held).
    @discardableResult
    public func acquire(blocking: Bool = true, timeout: Double? = nil) throws -> Bool {
        try ProxyCall.acquire(address, id, .lockAcquire, blocking: blocking, timeout: timeout)
    }

    /// Releases the lock; throws `ManagerError(.invalidRequest)` if it is not held.
    public func release() throws {
        try ProxyCall.release(address, id, .lockRelease, refusal: "release() of a manager Lock that is not held")
    }

    /// Runs `body` holding the lock (Python's `with lock:`).
    public func withLock<R>(_ body: () throws -> R) throws -> R {
        try acquire()
        defer { try? release() }
        return try body()
    }

    /// Whether some process holds the lock now: a snapshot.
    public func isLocked() throws -> Bool {
        try ProxyCall.perform(address, id, .lockIsLocked) { _ in }.1.first == 1
    }
}

/// An event held by a `Manager` — Python's `Manager().Event()`. `wait` retries the request
/// until the event is set, at most `timeout` seconds (nil: for ever).
public struct EventProxy: Codable, Sendable {
    let address: ManagerAddress
    let id: UInt64

    public func set() throws { _ = try ProxyCall.perform(address, id, .eventSet) { _ in } }
    public func clear() throws { _ = try ProxyCall.perform(address, id, .eventClear) { _ in } }
    public func isSet() throws -> Bool { try ProxyCall.perform(address, id, .eventIsSet) { _ in }.1.first == 1 }

    /// Waits until the event is set; false if `timeout` seconds passed first.
    public func wait(timeout: Double? = nil) throws -> Bool {
        // Each step says whether the event is set, or was set since the first step (a `set()`
        // followed at once by `clear()` wakes every waiter, as Python's `Event` does).
        var seen = UInt64.max
        return try ProxyCall.retry(timeout: timeout) { deadline in
            let answer = try ProxyCall.perform(address, id, .eventWaitStep, deadline: deadline) { $0.write(seen) }.1
            guard answer.count == 9 else { throw ManagerError(.unavailable, "the manager sent an unreadable event answer") }
            if answer[0] == 1 { return true }
            if seen == .max { seen = answer[1...].withUnsafeBytes { UInt64(littleEndian: $0.loadUnaligned(as: UInt64.self)) } }
            return false
        }
    }
}

/// A value held by a `Manager` — Python's `Manager().Value(typecode, value)`.
public struct ValueProxy<T: Codable & Sendable>: Codable, Sendable {
    let address: ManagerAddress
    let id: UInt64

    public func get() throws -> T { try ProxyCall.readEncoded(T.self, try ProxyCall.perform(address, id, .valueGet) { _ in }.1) }

    public func set(_ value: T) throws {
        _ = try ProxyCall.perform(address, id, .valueSet) { try ProxyCall.writeEncoded(value, &$0) }
    }
}

/// The request/reply plumbing the proxies share: to a manager server process over its
/// socket, or (`address.served` ≠ 0) to the manager rank 0 of an mpirun job serves itself.
enum ProxyCall {
    /// One request. With a `deadline` (monotonic nanoseconds; a call with a timeout), the
    /// answer is waited for until then, at least `ManagerConnection.answerFloor`: see
    /// `ManagerConnection`.
    static func perform(
        _ address: ManagerAddress, _ id: UInt64, _ operation: ManagerOperation, deadline: UInt64? = nil,
        _ arguments: (inout WireWriter) throws -> Void
    ) throws -> (ManagerStatus, [UInt8]) {
        var encoded = WireWriter()
        try arguments(&encoded)
        // The server refuses a frame above `ManagerFrame.maximum` (the operation and the
        // object id, 9 bytes, then the arguments) by dropping the connection, which looks like
        // its end; and a frame's length must fit its 32-bit header.
        if address.served == 0 && encoded.count > ManagerFrame.maximum - 9 {
            throw ManagerError(
                .invalidRequest,
                """
                a manager request of \(encoded.count) bytes is too large: a manager takes at most \
                \(ManagerFrame.maximum - 9) bytes per call; split the value (or use a Queue, a SharedArray or \
                pool.broadcast for bulk data)
                """)
        }
        let (status, reply) =
            address.served == 0
            ? try requestOverSocket(address, id, operation, deadline: deadline, encoded.bytes)
            : try MPIServedManager.request(address.served, operation, object: id, encoded.bytes)
        if status == .invalid {
            throw ManagerError(.invalidRequest, "the manager rejected the request (was the object released or the manager shut down?)")
        }
        return (status, reply)
    }

    /// A request on this process's connection to the manager; on a new one when another
    /// call dropped it meanwhile (its answer did not come in time).
    private static func requestOverSocket(
        _ address: ManagerAddress, _ id: UInt64, _ operation: ManagerOperation, deadline: UInt64?, _ arguments: [UInt8]
    ) throws -> (ManagerStatus, [UInt8]) {
        while true {
            do {
                return try ManagerConnection.to(address, deadline: deadline).request(operation, object: id, deadline: deadline) { writer in
                    arguments.withUnsafeBytes { writer.writeRaw($0) }
                }
            } catch is ManagerConnection.Dropped {
                continue
            }
        }
    }

    /// Takes a lock, reentrant lock or semaphore: `operation` retried while the server says
    /// it would wait (`missing`), at most `timeout` seconds (not blocking: once).
    static func acquire(
        _ address: ManagerAddress, _ id: UInt64, _ operation: ManagerOperation, blocking: Bool, timeout: Double?,
        _ arguments: (inout WireWriter) throws -> Void = { _ in }
    ) throws -> Bool {
        try retry(timeout: blocking ? timeout : 0) { try perform(address, id, operation, deadline: $0, arguments).0 == .ok }
    }

    /// Gives a lock, reentrant lock or semaphore back; throws `ManagerError(.invalidRequest)`
    /// with `refusal` when the server refuses.
    static func release(
        _ address: ManagerAddress, _ id: UInt64, _ operation: ManagerOperation, refusal: String,
        _ arguments: (inout WireWriter) throws -> Void = { _ in }
    ) throws {
        guard try perform(address, id, operation, arguments).0 == .ok else { throw ManagerError(.invalidRequest, refusal) }
    }

    /// Repeats `attempt` (a request the server answers at once, `missing` while it would
    /// wait) until it succeeds or `timeout` seconds pass (nil: for ever; 0: once), sleeping
    /// between tries from 50 µs up to 10 ms. False on time-out.
    /// `attempt` gets the call's deadline, for its request (nil without a timeout).
    static func retry(timeout: Double?, _ attempt: (_ deadline: UInt64?) throws -> Bool) throws -> Bool {
        let end = deadline(after: timeout)
        var backoff = Backoff()
        while true {
            if try attempt(end) { return true }
            if let end, monotonicNanoseconds() >= end { return false }
            backoff.pause(until: end)
        }
    }

    /// The pause between a proxy's tries of a request the server answered "would wait": from
    /// 50 µs, doubling up to 10 ms, never past `end`.
    struct Backoff {
        private var pause: UInt64 = 50_000

        mutating func pause(until end: UInt64?) {
            var sleep = pause
            if let end {
                let now = monotonicNanoseconds()
                if now >= end { return }
                sleep = min(sleep, end - now)
            }
            var time = timespec(tv_sec: Int(sleep / 1_000_000_000), tv_nsec: Int(sleep % 1_000_000_000))
            var left = timespec()
            while nanosleep(&time, &left) != 0 && errno == EINTR { time = left }
            pause = min(pause * 2, 10_000_000)
        }
    }

    static func writeEncoded<T: Encodable>(_ value: T, _ writer: inout WireWriter) throws {
        let bytes = try AttachmentContext.plainValuesOnly(for: "a manager") { try Wire.encode(value) }
        bytes.withUnsafeBytes { writer.writeLengthPrefixed($0) }
    }

    static func readEncoded<T: Decodable>(_ type: T.Type, _ reply: [UInt8]) throws -> T {
        try reply.withUnsafeBytes { raw in
            var reader = WireReader(raw)
            return try Wire.decode(T.self, from: Array(try reader.readLengthPrefixed()))
        }
    }

    static func readCount(_ reply: [UInt8]) throws -> Int {
        try reply.withUnsafeBytes { raw in
            var reader = WireReader(raw)
            return Int(try reader.read(UInt64.self))
        }
    }

    static func readPairs(_ reply: [UInt8]) throws -> [([UInt8], [UInt8])] {
        try reply.withUnsafeBytes { raw in
            var reader = WireReader(raw)
            let count = try reader.read(UInt64.self)
            guard count <= UInt64(raw.count) else { throw WireError.corrupt("dictionary of \(count) entries") }
            return try (0..<Int(count)).map { _ in
                (Array(try reader.readLengthPrefixed()), Array(try reader.readLengthPrefixed()))
            }
        }
    }
}
