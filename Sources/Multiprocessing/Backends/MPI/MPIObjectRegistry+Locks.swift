import Wire
#if canImport(Glibc)
import Glibc
#endif

/// Rank 0's served locks (`Lock`, `RLock`) and semaphores (`Semaphore`, `BoundedSemaphore`).
extension MPIObjectRegistry {
    /// Who holds a served lock: a worker rank's task, or a thread of rank 0.
    enum Owner: Equatable {
        case rank(Int)
        case thread(UInt)

        static var currentThread: Owner { .thread(UInt(pthread_self())) }
    }

    enum Acquisition { case acquired, timedOut, alreadyHeld }

    struct SemaphoreState {
        var value: Int
        /// `BoundedSemaphore`: the initial value, which `release` may not exceed.
        let bound: Int?
    }

    // MARK: locks

    /// A lock; `recursive`: an `RLock`, which its owner may take again (and must release as
    /// many times).
    func makeLock(recursive: Bool = false) -> UInt64 {
        lock.withLock { () -> UInt64 in
            let id = newID()
            locks[id] = .some(nil)
            if recursive { depths[id] = 0 }
            return id
        }
    }

    /// Under `lock`: `owner` takes the lock if free, or again if it holds an `RLock`.
    func take(_ id: UInt64, by owner: Owner) -> Acquisition? {
        let current = locks[id]!
        if current == owner {
            guard let depth = depths[id] else { return .alreadyHeld }
            depths[id] = depth + 1
            return .acquired
        }
        guard current == nil else { return nil }
        locks[id] = .some(owner)
        if depths[id] != nil { depths[id] = 1 }
        return .acquired
    }

    /// Under `lock`: `owner` releases once; false if it does not hold the lock.
    func give(_ id: UInt64, by owner: Owner) -> Bool {
        guard locks[id]! == owner else { return false }
        if let depth = depths[id], depth > 1 {
            depths[id] = depth - 1
            return true
        }
        locks[id] = .some(nil)
        if depths[id] != nil { depths[id] = 0 }
        return true
    }

    func lockAcquire(_ id: UInt64, by owner: Owner, deadline: UInt64?) throws(MPIObjectError) -> Acquisition {
        lock.lock()
        defer { lock.unlock() }
        guard locks[id] != nil else { throw unknown("lock", id) }
        while true {
            if let outcome = take(id, by: owner) { return outcome }
            if !lock.wait(until: deadline), locks[id]! != nil { return .timedOut }
        }
    }

    /// Releases; false if `owner` does not hold the lock.
    func lockRelease(_ id: UInt64, by owner: Owner) throws(MPIObjectError) -> Bool {
        lock.lock()
        defer { lock.unlock() }
        guard locks[id] != nil else { throw unknown("lock", id) }
        guard give(id, by: owner) else { return false }
        settle()
        return true
    }

    func lockState(_ id: UInt64, for owner: Owner) throws(MPIObjectError) -> (locked: Bool, mine: Bool) {
        lock.lock()
        defer { lock.unlock() }
        guard let current = locks[id] else { throw unknown("lock", id) }
        return (current != nil, current == owner)
    }

    /// Under `lock`: the reply to a worker's lock request, nil if it must wait.
    func attemptLock(_ entry: Parked) -> [UInt8]? {
        let owner = Owner.rank(entry.rank)
        guard let current = locks[entry.id] else { return unknownReply("lock", entry.id) }
        switch entry.op {
        case .lockAcquire:
            switch take(entry.id, by: owner) {
            case nil:
                return nil
            case .alreadyHeld:
                return MPIObjectProtocol.failure(.refused, "worker rank \(entry.rank) already holds the Lock: acquiring it again "
                    + "would wait for ever; release it first, or use an RLock for re-entrant locking")
            default:
                return MPIObjectProtocol.reply(.ok)
            }
        case .lockRelease:
            guard give(entry.id, by: owner) else {
                return MPIObjectProtocol.failure(.refused, "release() of a lock worker rank \(entry.rank) does not hold: only "
                    + "the task that acquired it may release it")
            }
            return MPIObjectProtocol.reply(.ok)
        default:
            return MPIObjectProtocol.reply(.ok, [current != nil ? 1 : 0, current == owner ? 1 : 0])
        }
    }

    // MARK: semaphores

    func makeSemaphore(value: Int, bounded: Bool) -> UInt64 {
        lock.withLock { () -> UInt64 in
            let id = newID()
            semaphores[id] = SemaphoreState(value: value, bound: bounded ? value : nil)
            return id
        }
    }

    /// Takes one unit; false if none came before `deadline`.
    func semaphoreAcquire(_ id: UInt64, deadline: UInt64?) throws(MPIObjectError) -> Bool {
        lock.lock()
        defer { lock.unlock() }
        guard semaphores[id] != nil else { throw unknown("semaphore", id) }
        while semaphores[id]!.value == 0 {
            if !lock.wait(until: deadline), semaphores[id]!.value == 0 { return false }
        }
        semaphores[id]!.value -= 1
        return true
    }

    /// Gives `count` units back; the refusal's message if a bounded semaphore would exceed
    /// its initial value.
    func semaphoreRelease(_ id: UInt64, count: Int) throws(MPIObjectError) -> String? {
        lock.lock()
        defer { lock.unlock() }
        guard let semaphore = semaphores[id] else { throw unknown("semaphore", id) }
        if let refusal = release(&semaphores[id]!, count: count, current: semaphore) { return refusal }
        settle()
        return nil
    }

    private func release(_ semaphore: inout SemaphoreState, count: Int, current: SemaphoreState) -> String? {
        if let bound = current.bound, current.value + count > bound {
            return "a BoundedSemaphore was released more times than it was acquired (its value would exceed \(bound))"
        }
        semaphore.value += count
        return nil
    }

    func semaphoreValue(_ id: UInt64) throws(MPIObjectError) -> Int {
        lock.lock()
        defer { lock.unlock() }
        guard let semaphore = semaphores[id] else { throw unknown("semaphore", id) }
        return semaphore.value
    }

    /// Under `lock`: the reply to a worker's semaphore request, nil if it must wait.
    func attemptSemaphore(_ entry: Parked) -> [UInt8]? {
        guard let semaphore = semaphores[entry.id] else { return unknownReply("semaphore", entry.id) }
        switch entry.op {
        case .semaphoreAcquire:
            if semaphore.value == 0 { return nil }
            semaphores[entry.id]!.value -= 1
            return MPIObjectProtocol.reply(.ok)
        case .semaphoreRelease:
            let count = entry.payload.withUnsafeBytes { raw -> Int in
                var reader = WireReader(raw)
                return Int((try? reader.read(Int64.self)) ?? 1)
            }
            if let refusal = release(&semaphores[entry.id]!, count: count, current: semaphore) {
                return MPIObjectProtocol.failure(.refused, refusal)
            }
            return MPIObjectProtocol.reply(.ok)
        default:
            return MPIObjectProtocol.reply(.ok, Self.encode(Int64(semaphore.value)))
        }
    }
}
