import CSystemShims

#if canImport(Glibc)
import Glibc
#endif

/// The manager's server process: holds the dicts, lists and namespaces and answers
/// requests. Single-threaded; serves every client from one poll loop. Accepts only
/// connections from the same user (`SO_PEERCRED`) that present the authentication key.
///
/// Nothing a client does can stall the others or make the server allocate for it before it
/// authenticated: every read and write is non-blocking, into a buffer per connection (a
/// client sending half a frame just leaves it buffered; replies a client does not read wait
/// in its buffer, and its further requests wait until it reads them); before the key, a
/// frame may announce at most `preAuthenticationLimit` bytes (a larger announcement drops
/// the connection before any buffer is sized for it), and a connection that has not
/// presented the key within `authenticationTimeout` seconds is dropped.
///
/// `handle(_:objects:nextID:into:)` is the one implementation of the objects' semantics: the
/// server process runs it for its socket clients, and rank 0 of an mpirun job runs it in
/// process for its served managers (`Backends/MPI/Served/ServedManager.swift`).
enum ManagerServer {
    enum Object {
        case dict([EncodedKey: [UInt8]])
        case list([[UInt8]])
        case namespace([String: [UInt8]])
        case queue(ManagerQueue)
        /// A lock: whether it is held (by anyone: as Python's manager locks, not owned).
        case lock(Bool)
        /// An event: whether it is set, and how many times `set()` was called (a waiter that saw the
        /// count change was woken, also by a `set()` that a `clear()` followed at once).
        case event(isSet: Bool, sets: UInt64)
        case value([UInt8])
        /// A semaphore's value, and its bound for a bounded one (the value it started at).
        case semaphore(value: Int, bound: Int?)
        /// A reentrant lock: its holder (a thread's `ManagerOwner` token; 0 free) and how many
        /// times it holds it.
        case rlock(owner: UInt64, count: Int)
        case condition(ManagerCondition)
        case barrier(ManagerBarrier)
        /// A set of encoded elements (compared by their encoding, as a dictionary's keys).
        case set(Set<EncodedKey>)
    }

    /// A first-in first-out queue of encoded items, at most `maxSize` of them (0: no bound).
    struct ManagerQueue {
        var items = ByteFIFO()
        var maxSize: Int
        /// Items put and not yet marked done (`taskDone`): `join` waits for 0.
        var unfinished = 0
        var count: Int { items.count }
        mutating func push(_ item: [UInt8]) { items.append(item) }
        /// Puts an item back at the front (one taken whose answer was not delivered).
        mutating func pushFront(_ item: [UInt8]) { items.pushFront(item) }
        mutating func pop() -> [UInt8]? { items.removeFirst() }
    }

    /// Seconds a new connection has to present the key.
    static let authenticationTimeout: Double = 5
    /// The largest frame accepted before the key (the key is 32 bytes).
    static let preAuthenticationLimit = 64

    /// An accepted connection: its frames, and whether it presented the key (or until when
    /// it may).
    private final class Client {
        let socket: FrameSocket
        var authenticated = false
        /// The request whose answer is not all sent yet, and the answer: given back
        /// (`undoUndelivered`) if the connection fails before it is.
        var unsent: (request: [UInt8], answer: [UInt8])?
        let authenticationDeadline: UInt64
        init(socket: FrameSocket) {
            self.socket = socket
            socket.frameLimit = ManagerServer.preAuthenticationLimit
            authenticationDeadline = monotonicNanoseconds() &+ UInt64(ManagerServer.authenticationTimeout * 1e9)
        }
    }

    /// Serves on the listening socket `listener` until told to shut down or the parent dies.
    static func serve(listener: Int32, authkey: [UInt8], directory: String, parent: pid_t) -> Int32 {
        var objects: [UInt64: Object] = [:]
        var nextID: UInt64 = 1
        var clients: [Int32: Client] = [:]
        let uid = getuid()
        defer {
            unlink(directory + "/socket")
            rmdir(directory)
        }
        func drop(_ fd: Int32) {
            clients.removeValue(forKey: fd)
            systemClose(fd)
        }
        var lastRequest: UInt64 = 0
        var descriptors: [pollfd] = []
        while true {
            // A client with replies still to send is watched for room to send them, and its
            // further requests wait (it cannot make the server queue without bound).
            descriptors.removeAll(keepingCapacity: true)
            descriptors.append(pollfd(fd: listener, events: Int16(POLLIN), revents: 0))
            for (fd, client) in clients {
                descriptors.append(pollfd(fd: fd, events: Int16(client.socket.hasPendingOutput ? POLLOUT : POLLIN), revents: 0))
            }
            // Right after a request the client's next one usually follows within
            // microseconds: look without sleeping for a while (ReadinessWait's phases),
            // so neither side pays a sleeping wake-up per operation.
            let now = monotonicNanoseconds()
            let idle = now &- lastRequest
            // Only with a CPU free for the client (`SpinGate`).
            let hot =
                idle < ReadinessWait.spinNanoseconds &+ ReadinessWait.yieldNanoseconds
                && SpinGate.spinningPays(now: now)
            let ready = pollDescriptors(&descriptors, timeoutMilliseconds: hot ? 0 : 1000)
            if ready < 0 && errno != EINTR { return 70 }
            if ready == 0 && hot {
                if idle < ReadinessWait.spinNanoseconds { CSystemShims_cpu_relax() } else { sched_yield() }
                continue
            }
            if getppid() != parent { return 0 }
            // Connections that did not present the key in time.
            let expired = monotonicNanoseconds()
            for (fd, client) in clients where !client.authenticated && expired >= client.authenticationDeadline { drop(fd) }
            if ready <= 0 { continue }
            lastRequest = monotonicNanoseconds()
            if descriptors[0].revents != 0 {
                let client = CSystemShims_accept_cloexec(listener)
                if client >= 0 {
                    if CSystemShims_peer_uid(client) == Int64(uid) {
                        clients[client] = Client(socket: FrameSocket(fd: client))
                    } else {
                        systemClose(client)
                    }
                }
            }
            for entry in descriptors.dropFirst() where entry.revents != 0 {
                guard let client = clients[entry.fd] else { continue }
                let socket = client.socket
                do {
                    if socket.hasPendingOutput {
                        try socket.flush()
                        if socket.hasPendingOutput { continue }
                        client.unsent = nil
                    } else {
                        try socket.readAvailable()
                    }
                    // Every whole request buffered, as long as the replies go out.
                    while !socket.hasPendingOutput, let request = socket.takeFrame() {
                        if !client.authenticated {
                            let accepted = constantTimeEqual(request, authkey)
                            try socket.queue(ManagerFrame.make { $0.write((accepted ? ManagerStatus.ok : .refused).rawValue) })
                            guard accepted else { throw SystemError("authenticate (wrong key)", errno: EACCES) }
                            client.authenticated = true
                            socket.frameLimit = ManagerFrame.maximum
                            continue
                        }
                        var stop = false
                        let reply = ManagerFrame.make { writer in
                            stop = handle(request, objects: &objects, nextID: &nextID, into: &writer)
                        }
                        client.unsent = (request, reply)
                        try socket.queue(reply)
                        if !socket.hasPendingOutput { client.unsent = nil }
                        if stop {
                            // Let the requester read its answer (it waits for it), then go.
                            var wait = pollfd(fd: entry.fd, events: Int16(POLLOUT), revents: 0)
                            while socket.hasPendingOutput, poll(&wait, 1, 1000) > 0, (try? socket.flush()) != nil {}
                            for fd in clients.keys { systemClose(fd) }
                            return 0
                        }
                    }
                } catch {
                    if let unsent = client.unsent {
                        undoUndelivered(
                            request: unsent.request, reply: Array(unsent.answer.dropFirst(ManagerFrame.headerSize)),
                            objects: &objects)
                    }
                    drop(entry.fd)
                }
            }
        }
    }

    private static func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        guard a.count == b.count else { return false }
        var difference: UInt8 = 0
        for i in a.indices { difference |= a[i] ^ b[i] }
        return difference == 0
    }

    /// Handles one request ([op][object id][arguments]), appending the reply ([status][result])
    /// to `writer`; returns true for shutdown.
    static func handle(
        _ request: [UInt8], objects: inout [UInt64: Object], nextID: inout UInt64,
        into writer: inout WireWriter
    ) -> Bool {
        let replyStart = writer.count
        return request.withUnsafeBytes { raw in
            var reader = WireReader(raw)
            func fail(_ status: ManagerStatus) { writer.write(status.rawValue) }
            guard let code = try? reader.read(UInt8.self), let operation = ManagerOperation(rawValue: code),
                let id = try? reader.read(UInt64.self)
            else {
                fail(.invalid)
                return false
            }
            func bytes() throws -> [UInt8] { Array(try reader.readLengthPrefixed()) }
            do {
                switch operation {
                case .shutdown:
                    writer.write(ManagerStatus.ok.rawValue)
                    return true
                case .createDict, .createList, .createNamespace, .createQueue, .createLock, .createEvent, .createValue,
                    .createSemaphore, .createRLock, .createCondition, .createBarrier, .createSet:
                    switch operation {
                    case .createDict: objects[nextID] = .dict([:])
                    case .createList: objects[nextID] = .list([])
                    case .createNamespace: objects[nextID] = .namespace([:])
                    case .createQueue:
                        let maxSize = try reader.read(UInt64.self)
                        guard maxSize < UInt64(Int.max) else { fail(.invalid); return false }
                        objects[nextID] = .queue(ManagerQueue(maxSize: Int(maxSize)))
                    case .createLock: objects[nextID] = .lock(false)
                    case .createSet: objects[nextID] = .set([])
                    case .createEvent: objects[nextID] = .event(isSet: false, sets: 0)
                    case .createRLock: objects[nextID] = .rlock(owner: 0, count: 0)
                    case .createSemaphore:
                        let value = try reader.read(UInt64.self)
                        let bounded = try reader.read(UInt8.self) == 1
                        guard value < UInt64(UInt32.max) else { fail(.invalid); return false }
                        objects[nextID] = .semaphore(value: Int(value), bound: bounded ? Int(value) : nil)
                    case .createCondition:
                        let lock = try reader.read(UInt64.self)
                        guard ManagerLocks.levels(held: lock, by: 0, in: objects) != nil else { fail(.invalid); return false }
                        objects[nextID] = .condition(ManagerCondition(lock: lock))
                    case .createBarrier:
                        let parties = try reader.read(UInt64.self)
                        let hasAction = try reader.read(UInt8.self) == 1
                        guard parties >= 1, parties < UInt64(UInt32.max) else { fail(.invalid); return false }
                        objects[nextID] = .barrier(ManagerBarrier(parties: Int(parties), hasAction: hasAction))
                    default: objects[nextID] = .value(try bytes())
                    }
                    writer.write(ManagerStatus.ok.rawValue)
                    writer.write(nextID)
                    nextID += 1
                case .release:
                    objects.removeValue(forKey: id)
                    writer.write(ManagerStatus.ok.rawValue)
                case .dictGet, .dictSet, .dictDelete, .dictCount, .dictItems, .dictClear, .dictPop, .dictSetDefault, .dictUpdate:
                    guard case .dict(var dict)? = objects[id] else { fail(.invalid); return false }
                    objects[id] = nil // keep the dictionary uniquely referenced while mutating
                    defer { objects[id] = .dict(dict) }
                    switch operation {
                    case .dictGet:
                        guard let value = dict[EncodedKey(bytes: try bytes())] else { fail(.missing); return false }
                        writer.write(ManagerStatus.ok.rawValue)
                        value.withUnsafeBytes { writer.writeLengthPrefixed($0) }
                    case .dictSet:
                        let key = EncodedKey(bytes: try bytes())
                        dict[key] = try bytes()
                        writer.write(ManagerStatus.ok.rawValue)
                    case .dictDelete:
                        guard dict.removeValue(forKey: EncodedKey(bytes: try bytes())) != nil else { fail(.missing); return false }
                        writer.write(ManagerStatus.ok.rawValue)
                    case .dictPop:
                        guard let value = dict.removeValue(forKey: EncodedKey(bytes: try bytes())) else { fail(.missing); return false }
                        writer.write(ManagerStatus.ok.rawValue)
                        value.withUnsafeBytes { writer.writeLengthPrefixed($0) }
                    case .dictSetDefault:
                        let key = EncodedKey(bytes: try bytes())
                        let fallback = try bytes()
                        let value = dict[key] ?? fallback
                        dict[key] = value
                        writer.write(ManagerStatus.ok.rawValue)
                        value.withUnsafeBytes { writer.writeLengthPrefixed($0) }
                    case .dictUpdate:
                        let count = try reader.read(UInt64.self)
                        var pairs: [(EncodedKey, [UInt8])] = []
                        for _ in 0..<count { pairs.append((EncodedKey(bytes: try bytes()), try bytes())) } // all or nothing
                        for (key, value) in pairs { dict[key] = value }
                        writer.write(ManagerStatus.ok.rawValue)
                    case .dictCount:
                        writer.write(ManagerStatus.ok.rawValue)
                        writer.write(UInt64(dict.count))
                    case .dictItems:
                        writer.write(ManagerStatus.ok.rawValue)
                        writer.write(UInt64(dict.count))
                        for (key, value) in dict {
                            key.bytes.withUnsafeBytes { writer.writeLengthPrefixed($0) }
                            value.withUnsafeBytes { writer.writeLengthPrefixed($0) }
                        }
                    default:
                        dict.removeAll()
                        writer.write(ManagerStatus.ok.rawValue)
                    }
                case .listAppend, .listGet, .listSet, .listCount, .listRemove, .listItems, .listClear, .listInsert, .listExtend:
                    guard case .list(var list)? = objects[id] else { fail(.invalid); return false }
                    objects[id] = nil
                    defer { objects[id] = .list(list) }
                    func index() throws -> Int? {
                        let raw = try reader.read(Int64.self)
                        let i = raw < 0 ? Int(raw) + list.count : Int(raw)
                        return list.indices.contains(i) ? i : nil
                    }
                    switch operation {
                    case .listAppend:
                        list.append(try bytes())
                        writer.write(ManagerStatus.ok.rawValue)
                    case .listGet:
                        guard let i = try index() else { fail(.missing); return false }
                        writer.write(ManagerStatus.ok.rawValue)
                        list[i].withUnsafeBytes { writer.writeLengthPrefixed($0) }
                    case .listSet:
                        guard let i = try index() else { fail(.missing); return false }
                        list[i] = try bytes()
                        writer.write(ManagerStatus.ok.rawValue)
                    case .listRemove:
                        guard let i = try index() else { fail(.missing); return false }
                        let removed = list.remove(at: i)
                        writer.write(ManagerStatus.ok.rawValue)
                        removed.withUnsafeBytes { writer.writeLengthPrefixed($0) }
                    case .listInsert:
                        // Python's insert: an index past either end inserts at that end.
                        let raw = try reader.read(Int64.self)
                        let i = raw < 0 ? max(0, Int(raw) + list.count) : min(Int(clamping: raw), list.count)
                        list.insert(try bytes(), at: i)
                        writer.write(ManagerStatus.ok.rawValue)
                    case .listExtend:
                        let count = try reader.read(UInt64.self)
                        var items: [[UInt8]] = []
                        for _ in 0..<count { items.append(try bytes()) } // all or nothing
                        list += items
                        writer.write(ManagerStatus.ok.rawValue)
                    case .listCount:
                        writer.write(ManagerStatus.ok.rawValue)
                        writer.write(UInt64(list.count))
                    case .listItems:
                        writer.write(ManagerStatus.ok.rawValue)
                        writer.write(UInt64(list.count))
                        for item in list { item.withUnsafeBytes { writer.writeLengthPrefixed($0) } }
                    default:
                        list.removeAll()
                        writer.write(ManagerStatus.ok.rawValue)
                    }
                case .queuePut, .queueGet, .queueCount, .queueTaskDone, .queueJoin:
                    guard case .queue(var queue)? = objects[id] else { fail(.invalid); return false }
                    objects[id] = nil
                    defer { objects[id] = .queue(queue) }
                    switch operation {
                    case .queuePut:
                        let item = try bytes()
                        guard queue.maxSize == 0 || queue.count < queue.maxSize else { fail(.missing); return false }
                        queue.push(item)
                        queue.unfinished += 1
                        writer.write(ManagerStatus.ok.rawValue)
                    case .queueTaskDone:
                        // More taskDone() calls than items put: refused (Python's ValueError).
                        guard queue.unfinished > 0 else { fail(.missing); return false }
                        queue.unfinished -= 1
                        writer.write(ManagerStatus.ok.rawValue)
                    case .queueJoin:
                        guard queue.unfinished == 0 else { fail(.missing); return false }
                        writer.write(ManagerStatus.ok.rawValue)
                    case .queueGet:
                        guard let item = queue.pop() else { fail(.missing); return false }
                        writer.write(ManagerStatus.ok.rawValue)
                        item.withUnsafeBytes { writer.writeLengthPrefixed($0) }
                    default:
                        writer.write(ManagerStatus.ok.rawValue)
                        writer.write(UInt64(queue.count))
                    }
                case .lockAcquire, .lockRelease, .lockIsLocked:
                    guard case .lock(let held)? = objects[id] else { fail(.invalid); return false }
                    switch operation {
                    case .lockAcquire:
                        guard !held else { fail(.missing); return false }
                        objects[id] = .lock(true)
                    case .lockRelease:
                        guard held else { fail(.missing); return false }
                        objects[id] = .lock(false)
                    default:
                        writer.write(ManagerStatus.ok.rawValue)
                        writer.write(held ? UInt8(1) : 0)
                        return false
                    }
                    writer.write(ManagerStatus.ok.rawValue)
                case .semaphoreAcquire, .semaphoreRelease, .semaphoreValue:
                    guard case .semaphore(let value, let bound)? = objects[id] else { fail(.invalid); return false }
                    switch operation {
                    case .semaphoreAcquire:
                        guard value > 0 else { fail(.missing); return false }
                        objects[id] = .semaphore(value: value - 1, bound: bound)
                        writer.write(ManagerStatus.ok.rawValue)
                    case .semaphoreRelease:
                        // A bounded one released past its bound: refused, unchanged.
                        if let bound, value >= bound { fail(.missing); return false }
                        guard value < Int(UInt32.max) - 1 else { fail(.invalid); return false }
                        objects[id] = .semaphore(value: value + 1, bound: bound)
                        writer.write(ManagerStatus.ok.rawValue)
                    default:
                        writer.write(ManagerStatus.ok.rawValue)
                        writer.write(UInt64(value))
                    }
                case .rlockAcquire, .rlockRelease, .rlockState:
                    guard case .rlock(let owner, let count)? = objects[id] else { fail(.invalid); return false }
                    let caller = try reader.read(UInt64.self)
                    switch operation {
                    case .rlockAcquire:
                        guard caller != 0, owner == 0 || owner == caller else { fail(.missing); return false }
                        objects[id] = .rlock(owner: caller, count: count + 1)
                        writer.write(ManagerStatus.ok.rawValue)
                    case .rlockRelease:
                        // Only its holder releases it (Python: "cannot release un-acquired lock").
                        guard caller != 0, owner == caller else { fail(.missing); return false }
                        objects[id] = count > 1 ? .rlock(owner: owner, count: count - 1) : .rlock(owner: 0, count: 0)
                        writer.write(ManagerStatus.ok.rawValue)
                    default:
                        writer.write(ManagerStatus.ok.rawValue)
                        writer.write(UInt8(owner == 0 ? 0 : owner == caller ? 2 : 1))
                        writer.write(UInt64(count))
                    }
                case .setInsert, .setRemove, .setContains, .setCount, .setItems, .setClear, .setPop, .setUpdate:
                    guard case .set(var set)? = objects[id] else { fail(.invalid); return false }
                    objects[id] = nil // keep the set uniquely referenced while changing it
                    defer { objects[id] = .set(set) }
                    switch operation {
                    case .setInsert, .setRemove, .setContains:
                        let element = EncodedKey(bytes: try bytes())
                        let found: Bool
                        switch operation {
                        case .setInsert: found = !set.insert(element).inserted
                        case .setRemove: found = set.remove(element) != nil
                        default: found = set.contains(element)
                        }
                        writer.write(ManagerStatus.ok.rawValue)
                        writer.write(UInt8(found ? 1 : 0))
                    case .setUpdate:
                        let count = try reader.read(UInt64.self)
                        var elements: [EncodedKey] = []
                        for _ in 0..<count { elements.append(EncodedKey(bytes: try bytes())) } // all or nothing
                        set.formUnion(elements)
                        writer.write(ManagerStatus.ok.rawValue)
                    case .setPop:
                        guard let element = set.popFirst() else { fail(.missing); return false }
                        writer.write(ManagerStatus.ok.rawValue)
                        element.bytes.withUnsafeBytes { writer.writeLengthPrefixed($0) }
                    case .setCount:
                        writer.write(ManagerStatus.ok.rawValue)
                        writer.write(UInt64(set.count))
                    case .setItems:
                        writer.write(ManagerStatus.ok.rawValue)
                        writer.write(UInt64(set.count))
                        for element in set { element.bytes.withUnsafeBytes { writer.writeLengthPrefixed($0) } }
                    default:
                        set.removeAll()
                        writer.write(ManagerStatus.ok.rawValue)
                    }
                case .conditionWait, .conditionResume, .conditionNotify, .conditionWaiters:
                    guard case .condition(var condition)? = objects[id] else { fail(.invalid); return false }
                    objects[id] = nil // keep its waiters uniquely referenced while changing them
                    defer { objects[id] = .condition(condition) }
                    let outcome: ManagerCondition.Outcome
                    switch operation {
                    case .conditionWaiters:
                        writer.write(ManagerStatus.ok.rawValue)
                        writer.write(UInt64(condition.waiting.count))
                        return false
                    case .conditionWait:
                        outcome = condition.beginWait(try reader.read(UInt64.self), objects: &objects)
                    case .conditionResume:
                        let caller = try reader.read(UInt64.self)
                        let ticket = try reader.read(UInt64.self)
                        let givingUp = try reader.read(UInt8.self) == 1
                        outcome = condition.resume(caller, ticket: ticket, givingUp: givingUp, objects: &objects)
                    default:
                        let caller = try reader.read(UInt64.self)
                        outcome = condition.notify(caller, Int(clamping: try reader.read(UInt64.self)), objects: objects)
                    }
                    switch outcome {
                    case .ticket(let ticket):
                        writer.write(ManagerStatus.ok.rawValue)
                        writer.write(ticket)
                    case .resumed(let notified):
                        writer.write(ManagerStatus.ok.rawValue)
                        writer.write(UInt8(notified ? 1 : 0))
                    case .woke(let count):
                        writer.write(ManagerStatus.ok.rawValue)
                        writer.write(UInt64(count))
                    case .refused: fail(.missing)
                    case .invalid: fail(.invalid)
                    }
                case .barrierArrive, .barrierLook, .barrierActionEnded, .barrierGiveUp, .barrierAbort, .barrierReset,
                    .barrierState:
                    guard case .barrier(var barrier)? = objects[id] else { fail(.invalid); return false }
                    objects[id] = nil
                    defer { objects[id] = .barrier(barrier) }
                    switch operation {
                    case .barrierArrive:
                        switch barrier.arrive() {
                        case .arrived(let pass, let index, let last):
                            writer.write(ManagerStatus.ok.rawValue)
                            writer.write(UInt8(last ? 1 : 0))
                            writer.write(pass)
                            writer.write(UInt64(index))
                        case .broken:
                            writer.write(ManagerStatus.ok.rawValue)
                            writer.write(UInt8(2))
                        case .busy: fail(.missing)
                        }
                    case .barrierLook, .barrierActionEnded, .barrierGiveUp:
                        let pass = try reader.read(UInt64.self)
                        let state: ManagerBarrier.PassState
                        switch operation {
                        case .barrierLook: state = barrier.look(pass)
                        case .barrierActionEnded: state = barrier.actionEnded(pass, succeeded: try reader.read(UInt8.self) == 1)
                        default: state = barrier.giveUp(pass)
                        }
                        writer.write(ManagerStatus.ok.rawValue)
                        writer.write(state.rawValue)
                    case .barrierAbort, .barrierReset:
                        if operation == .barrierAbort { barrier.abort() } else { barrier.reset() }
                        writer.write(ManagerStatus.ok.rawValue)
                    default:
                        writer.write(ManagerStatus.ok.rawValue)
                        writer.write(UInt64(barrier.waiting))
                        writer.write(UInt8(barrier.broken ? 1 : 0))
                    }
                case .eventSet, .eventClear, .eventIsSet, .eventWaitStep:
                    guard case .event(let isSet, let sets)? = objects[id] else { fail(.invalid); return false }
                    switch operation {
                    case .eventSet: objects[id] = .event(isSet: true, sets: sets &+ 1)
                    case .eventClear: objects[id] = .event(isSet: false, sets: sets)
                    default: break
                    }
                    writer.write(ManagerStatus.ok.rawValue)
                    if operation == .eventIsSet { writer.write(isSet ? UInt8(1) : 0) }
                    if operation == .eventWaitStep {
                        // [UInt64 sets seen, or UInt64.max at the first step] → woken, sets now.
                        let seen = try reader.read(UInt64.self)
                        writer.write(isSet || (seen != .max && seen != sets) ? UInt8(1) : 0)
                        writer.write(sets)
                    }
                case .valueGet, .valueSet:
                    guard case .value(let value)? = objects[id] else { fail(.invalid); return false }
                    if operation == .valueSet {
                        objects[id] = .value(try bytes())
                        writer.write(ManagerStatus.ok.rawValue)
                    } else {
                        writer.write(ManagerStatus.ok.rawValue)
                        value.withUnsafeBytes { writer.writeLengthPrefixed($0) }
                    }
                case .namespaceGet, .namespaceSet, .namespaceDelete:
                    guard case .namespace(var names)? = objects[id] else { fail(.invalid); return false }
                    objects[id] = nil
                    defer { objects[id] = .namespace(names) }
                    let name = try reader.read(String.self)
                    if operation == .namespaceGet {
                        guard let value = names[name] else { fail(.missing); return false }
                        writer.write(ManagerStatus.ok.rawValue)
                        value.withUnsafeBytes { writer.writeLengthPrefixed($0) }
                    } else if operation == .namespaceDelete {
                        guard names.removeValue(forKey: name) != nil else { fail(.missing); return false }
                        writer.write(ManagerStatus.ok.rawValue)
                    } else {
                        names[name] = try bytes()
                        writer.write(ManagerStatus.ok.rawValue)
                    }
                }
            } catch {
                writer.bytes.removeSubrange(replyStart...)
                fail(.invalid)
            }
            return false
        }
    }
}
