/// What the manager's server does with an answer it could not deliver: the client's
/// connection was gone when the answer was sent (its process ended, or its call timed out and
/// dropped the connection — `ManagerConnection`). The request was carried out, but the client
/// never learnt it, so what the answer handed over goes back: a queue's item to the front of
/// the queue, a lock (or a reentrant lock's level, or a condition's lock a waiter took back)
/// is released, a semaphore's unit is given back, a popped entry or element is put back. A condition
/// waiter that never learnt it waits is deregistered, its lock given back to it. Changes
/// that hand nothing over stay made.
extension ManagerServer {
    /// `reply`: the answer without its frame header ([status][result]), as `handle` wrote it.
    static func undoUndelivered(request: [UInt8], reply: [UInt8], objects: inout [UInt64: Object]) {
        guard reply.first == ManagerStatus.ok.rawValue else { return }
        let result = Array(reply.dropFirst())
        request.withUnsafeBytes { raw in
            var reader = WireReader(raw)
            guard let code = try? reader.read(UInt8.self), let operation = ManagerOperation(rawValue: code),
                let id = try? reader.read(UInt64.self), let object = objects[id]
            else { return }
            func readBytes() -> [UInt8]? { (try? reader.readLengthPrefixed()).map { Array($0) } }
            func resultBytes() -> [UInt8]? {
                result.withUnsafeBytes { raw in
                    var reader = WireReader(raw)
                    return (try? reader.readLengthPrefixed()).map { Array($0) }
                }
            }
            switch (operation, object) {
            case (.queueGet, .queue(var queue)):
                guard let item = resultBytes() else { return }
                queue.pushFront(item)
                objects[id] = .queue(queue)
            case (.lockAcquire, .lock):
                objects[id] = .lock(false)
            case (.rlockAcquire, .rlock(let owner, let count)):
                guard let caller = try? reader.read(UInt64.self), caller == owner, count > 0 else { return }
                objects[id] = count > 1 ? .rlock(owner: owner, count: count - 1) : .rlock(owner: 0, count: 0)
            case (.semaphoreAcquire, .semaphore(let value, let bound)):
                objects[id] = .semaphore(value: value + 1, bound: bound)
            case (.dictPop, .dict(var dict)):
                guard let key = readBytes(), let value = resultBytes() else { return }
                // Unless it was set again since (an answer sent in parts, failing later).
                if dict[EncodedKey(bytes: key)] == nil { dict[EncodedKey(bytes: key)] = value }
                objects[id] = .dict(dict)
            case (.setPop, .set(var set)):
                guard let element = resultBytes() else { return }
                set.insert(EncodedKey(bytes: element))
                objects[id] = .set(set)
            case (.listRemove, .list(var list)):
                guard let raw = try? reader.read(Int64.self), let item = resultBytes() else { return }
                // The index it had (the list is as the removal left it).
                let index = raw < 0 ? Int(raw) + list.count + 1 : Int(raw)
                list.insert(item, at: min(max(0, index), list.count))
                objects[id] = .list(list)
            case (.conditionResume, .condition(let condition)):
                ManagerLocks.free(condition.lock, in: &objects)
            case (.conditionWait, .condition(var condition)):
                guard let caller = try? reader.read(UInt64.self),
                    let ticket = result.withUnsafeBytes({ raw -> UInt64? in
                        var reader = WireReader(raw)
                        return try? reader.read(UInt64.self)
                    })
                else { return }
                _ = condition.resume(caller, ticket: ticket, givingUp: true, objects: &objects)
                objects[id] = .condition(condition)
            default:
                return
            }
        }
    }
}
