/// Rank 0's served queues (`Queue`, `SimpleQueue`, `JoinableQueue`): items are their `Wire`
/// bytes in a first-in first-out buffer.
extension MPIObjectRegistry {
    /// Items in arrival order; removing the oldest is O(1) amortised.
    struct ByteFIFO {
        private var items: [[UInt8]] = []
        private var head = 0

        var count: Int { items.count - head }
        var isEmpty: Bool { head >= items.count }

        mutating func append(_ item: [UInt8]) {
            items.append(item)
        }

        mutating func removeFirst() -> [UInt8]? {
            guard head < items.count else { return nil }
            let item = items[head]
            items[head] = []
            head += 1
            if head >= 64 && head * 2 >= items.count {
                items.removeFirst(head)
                head = 0
            }
            return item
        }
    }

    final class QueueState {
        let maxSize: Int
        /// Items put and not yet `taskDone` (`JoinableQueue`).
        var unfinished = 0
        private var items = ByteFIFO()
        init(maxSize: Int) { self.maxSize = maxSize }
        var count: Int { items.count }
        var isFull: Bool { maxSize > 0 && count >= maxSize }
        func append(_ item: [UInt8]) {
            items.append(item)
            unfinished += 1
        }
        func removeFirst() -> [UInt8]? { items.removeFirst() }
    }

    func makeQueue(maxSize: Int) -> UInt64 {
        lock.withLock { () -> UInt64 in
            let id = newID()
            queues[id] = QueueState(maxSize: maxSize)
            return id
        }
    }

    // MARK: rank 0's own operations

    /// Puts `item`; false if the queue stayed full until `deadline`.
    func queuePut(_ id: UInt64, _ item: [UInt8], deadline: UInt64?) throws(MPIObjectError) -> Bool {
        lock.lock()
        defer { lock.unlock() }
        guard let queue = queues[id] else { throw unknown("queue", id) }
        while queue.isFull {
            if !lock.wait(until: deadline), queue.isFull { return false }
        }
        queue.append(item)
        settle()
        return true
    }

    /// The oldest item, or nil if the queue stayed empty until `deadline`.
    func queueGet(_ id: UInt64, deadline: UInt64?) throws(MPIObjectError) -> [UInt8]? {
        lock.lock()
        defer { lock.unlock() }
        guard let queue = queues[id] else { throw unknown("queue", id) }
        while true {
            if let item = queue.removeFirst() {
                settle()
                return item
            }
            if !lock.wait(until: deadline), queue.count == 0 { return nil }
        }
    }

    func queueCount(_ id: UInt64) throws(MPIObjectError) -> Int {
        lock.lock()
        defer { lock.unlock() }
        guard let queue = queues[id] else { throw unknown("queue", id) }
        return queue.count
    }

    /// `JoinableQueue.taskDone()`; false if called more times than items were put.
    func queueTaskDone(_ id: UInt64) throws(MPIObjectError) -> Bool {
        lock.lock()
        defer { lock.unlock() }
        guard let queue = queues[id] else { throw unknown("queue", id) }
        guard queue.unfinished > 0 else { return false }
        queue.unfinished -= 1
        settle()
        return true
    }

    /// `JoinableQueue.join()`: whether every item put was marked done before `deadline`.
    func queueJoin(_ id: UInt64, deadline: UInt64?) throws(MPIObjectError) -> Bool {
        lock.lock()
        defer { lock.unlock() }
        guard let queue = queues[id] else { throw unknown("queue", id) }
        while queue.unfinished > 0 {
            if !lock.wait(until: deadline), queue.unfinished > 0 { return false }
        }
        return true
    }

    func queueUnfinished(_ id: UInt64) throws(MPIObjectError) -> Int {
        lock.lock()
        defer { lock.unlock() }
        guard let queue = queues[id] else { throw unknown("queue", id) }
        return queue.unfinished
    }

    // MARK: worker requests

    /// Under `lock`: the reply to a worker's queue request, nil if it must wait.
    func attemptQueue(_ entry: Parked) -> [UInt8]? {
        guard let queue = queues[entry.id] else { return unknownReply("queue", entry.id) }
        switch entry.op {
        case .queuePut:
            if queue.isFull { return nil }
            queue.append(entry.payload)
            return MPIObjectProtocol.reply(.ok)
        case .queueGet:
            guard let item = queue.removeFirst() else { return nil }
            return MPIObjectProtocol.reply(.ok, item)
        case .queueTaskDone:
            guard queue.unfinished > 0 else {
                return MPIObjectProtocol.failure(.refused, "taskDone() called more times than items were put in the queue")
            }
            queue.unfinished -= 1
            return MPIObjectProtocol.reply(.ok)
        case .queueJoin:
            return queue.unfinished == 0 ? MPIObjectProtocol.reply(.ok) : nil
        case .queueUnfinished:
            return MPIObjectProtocol.reply(.ok, Self.encode(Int64(queue.unfinished)))
        default:
            return MPIObjectProtocol.reply(.ok, Self.encode(Int64(queue.count)))
        }
    }
}
