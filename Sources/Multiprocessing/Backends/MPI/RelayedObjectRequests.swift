/// A worker rank's account of the object requests it relays for its local workers
/// (ARCHITECTURE.md §8), so that an answer handing something over — a queue's item, a
/// semaphore's unit, a manager's item — is never lost with a local worker that died before
/// it read it: such an answer goes back to rank 0, which gives back what it handed over
/// (`MPIObjectProtocol.undeliveredTag`, `ServedState.undo`).
///
/// - Every process of a local worker slot gets its own name at rank 0 (`local`: the pool and
///   a number, fresh for each process), so that an answer to a dead process is never taken for
///   its replacement's, and rank 0 drops what exactly that process held when its end is
///   reported (the number travels in the `ended` report).
/// - A request on its way to rank 0 is kept (up to `keptRequestLimit` bytes: puts of large
///   items are never undone, nor need to be) until its one answer comes back; rank 0 answers
///   every request once, also one it drops because its process ended.
/// - An answer written into a worker's task ring is kept until the worker read past its end
///   (`confirmRead`, each pass): a worker that ended before that never received it.
///
/// Pure bookkeeping (no MPI, no process): `RelayedObjectRequestsTests` drives it directly.
struct RelayedObjectRequests {
    /// What to do with an answer from rank 0.
    enum Answer: Equatable {
        /// To this local worker's task ring; `request`: the request, if kept (`delivered`).
        case deliver(index: Int, request: [UInt8]?)
        /// Back to rank 0: its process ended before the answer came.
        case giveBack(request: [UInt8])
        /// Nobody waits for it (a pool that closed, an answer that handed nothing over).
        case drop
    }

    /// Requests larger than this are not kept for an undo.
    static let keptRequestLimit = 64 << 10

    private struct Asked {
        /// The local worker that asked; nil once its process ended.
        var index: Int?
        var request: [UInt8]?
    }

    private struct Unread {
        var index: Int
        /// The task ring's position after the answer's frame.
        var end: UInt64
        var request: [UInt8]
        var answer: [UInt8]
    }

    /// Per pool and local worker slot, the number of its current process (once it asked).
    private var numbers: [UInt16: [Int: UInt16]] = [:]
    private var lastNumber: [UInt16: UInt16] = [:]
    /// Requests sent to rank 0 and not answered, by their process's name.
    private var asked: [UInt32: Asked] = [:]
    /// Answers written to a worker and not read yet, by its process's name.
    private var unread: [UInt32: Unread] = [:]

    /// Whether answers wait to be read (`confirmRead` has work).
    var hasUnread: Bool { !unread.isEmpty }

    static func local(pool: UInt16, number: UInt16) -> UInt32 { UInt32(pool) << 16 | UInt32(number) }
    static func pool(of local: UInt32) -> UInt16 { UInt16(local >> 16) }

    /// The name at rank 0 of the process in `index` that sends `request` now, and notes the
    /// request. A worker asks again only after it read its last answer: that one was received.
    mutating func send(pool: UInt16, index: Int, request: UnsafeRawBufferPointer) -> UInt32 {
        let local = Self.local(pool: pool, number: number(pool: pool, index: index))
        unread[local] = nil
        asked[local] = Asked(index: index, request: request.count <= Self.keptRequestLimit ? Array(request) : nil)
        return local
    }

    /// An answer for `local` came from rank 0 (`ok`: it may have handed something over).
    mutating func answered(_ local: UInt32, ok: Bool) -> Answer {
        guard let asking = asked.removeValue(forKey: local) else { return .drop }
        if let index = asking.index { return .deliver(index: index, request: asking.request) }
        guard ok, let request = asking.request else { return .drop }
        return .giveBack(request: request)
    }

    /// An `.ok` answer to `request` was written to its worker's task ring, ending at ring
    /// position `end` (answers that were not `.ok` handed nothing over: not kept).
    mutating func delivered(_ local: UInt32, index: Int, end: UInt64, request: [UInt8], answer: [UInt8]) {
        unread[local] = Unread(index: index, end: end, request: request, answer: answer)
    }

    /// Forgets the answers of `pool` its workers read (`readPosition` of a worker's task ring).
    mutating func confirmRead(pool: UInt16, readPosition: (Int) -> UInt64) {
        for (local, answer) in unread where Self.pool(of: local) == pool && readPosition(answer.index) >= answer.end {
            unread[local] = nil
        }
    }

    /// The process in `index` ended, its task ring read up to `readPosition`. Returns its name
    /// at rank 0 (nil if it never asked: rank 0 knows nothing of it) and the answer it never
    /// read, to give back. Its request still on its way is answered to nobody; the slot's next
    /// process gets a new number.
    mutating func ended(pool: UInt16, index: Int, readPosition: UInt64)
        -> (local: UInt32?, unread: (request: [UInt8], answer: [UInt8])?)
    {
        guard let number = numbers[pool]?.removeValue(forKey: index) else { return (nil, nil) }
        let local = Self.local(pool: pool, number: number)
        asked[local]?.index = nil
        guard let answer = unread.removeValue(forKey: local), readPosition < answer.end else { return (local, nil) }
        return (local, (answer.request, answer.answer))
    }

    /// The pool's local workers are gone: its answers still to come are dropped.
    mutating func closed(pool: UInt16) {
        numbers[pool] = nil
        lastNumber[pool] = nil
        asked = asked.filter { Self.pool(of: $0.key) != pool }
        unread = unread.filter { Self.pool(of: $0.key) != pool }
    }

    /// The slot's process's number: its own, or the next free one (1…65535, never one whose
    /// request or answer is still accounted for).
    private mutating func number(pool: UInt16, index: Int) -> UInt16 {
        if let number = numbers[pool]?[index] { return number }
        var number = lastNumber[pool] ?? 0
        var tries = 0
        repeat {
            number = number == .max ? 1 : number + 1
            tries += 1
        } while tries < Int(UInt16.max) && isInUse(Self.local(pool: pool, number: number))
        lastNumber[pool] = number
        numbers[pool, default: [:]][index] = number
        return number
    }

    private func isInUse(_ local: UInt32) -> Bool {
        asked[local] != nil || unread[local] != nil
            || numbers[Self.pool(of: local)]?.values.contains(UInt16(truncatingIfNeeded: local)) == true
    }
}
