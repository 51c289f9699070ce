/// A barrier held by a `Manager` — Python's `Manager().Barrier(parties, action, timeout)`,
/// with `Barrier`'s rules: `wait` returns the party's arrival index (the last, `parties - 1`,
/// runs the action before any party goes on); the barrier breaks — every waiter and every
/// later `wait` throws `BrokenBarrierError` until `reset()` — when a `wait` times out, on
/// `abort()`, on `reset()` while parties wait, or when the action throws. A waiting party asks
/// the manager again and again (from 50 µs apart up to 10 ms) until its pass opened or broke.
/// A party that dies waiting cannot be noticed: give `wait` (or the barrier) a timeout.
public struct BarrierProxy: Codable, Sendable {
    let address: ManagerAddress
    let id: UInt64
    /// The number of parties that must arrive for the barrier to open.
    public let parties: Int
    /// The timeout `wait()` uses when it is given none (nil: for ever).
    public let timeout: Double?
    /// Run by the last party to arrive, before the others are released.
    public let action: (any BarrierAction)?

    init(address: ManagerAddress, id: UInt64, parties: Int, timeout: Double?, action: (any BarrierAction)?) {
        self.address = address
        self.id = id
        self.parties = parties
        self.timeout = timeout
        self.action = action
    }

    private enum CodingKeys: String, CodingKey { case address, id, parties, timeout, actionType, action }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        // Wire reads keys in the order they were written: the same order as encode(to:).
        address = try container.decode(ManagerAddress.self, forKey: .address)
        id = try container.decode(UInt64.self, forKey: .id)
        parties = try container.decode(Int.self, forKey: .parties)
        timeout = try container.decodeIfPresent(Double.self, forKey: .timeout)
        action = try BarrierActionCoding.decode(from: container, typeKey: .actionType, valueKey: .action)
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(address, forKey: .address)
        try container.encode(id, forKey: .id)
        try container.encode(parties, forKey: .parties)
        try container.encodeIfPresent(timeout, forKey: .timeout)
        try BarrierActionCoding.encode(action, into: &container, typeKey: .actionType, valueKey: .action)
    }

    private func ask(
        _ operation: ManagerOperation, deadline: UInt64? = nil, _ arguments: (inout WireWriter) throws -> Void = { _ in }
    ) throws -> [UInt8] {
        try ProxyCall.perform(address, id, operation, deadline: deadline, arguments).1
    }

    /// Waits until `parties` parties have called `wait`; returns this party's arrival index.
    /// - Parameter timeout: the longest wait in seconds; nil uses the barrier's `timeout`.
    ///   Running out of time breaks the barrier for every party.
    /// - Throws: `BrokenBarrierError` if the barrier is or becomes broken.
    public func wait(timeout: Double? = nil) throws -> Int {
        let end = deadline(after: timeout ?? self.timeout)
        var backoff = ProxyCall.Backoff()
        // Arriving waits only while the last party of the pass before runs its action.
        var arrival: [UInt8] = []
        let arrived = try ProxyCall.retry(timeout: timeout ?? self.timeout) { deadline in
            let (status, reply) = try ProxyCall.perform(address, id, .barrierArrive, deadline: deadline) { _ in }
            arrival = reply
            return status == .ok
        }
        guard arrived else {
            try abort()
            throw BrokenBarrierError("manager Barrier.wait() timed out before it could arrive; the barrier is broken")
        }
        let (kind, pass, index) = try arrival.withUnsafeBytes { raw in
            var reader = WireReader(raw)
            let kind = try reader.read(UInt8.self)
            if kind == 2 { return (kind, UInt64(0), 0) }
            return (kind, try reader.read(UInt64.self), Int(try reader.read(UInt64.self)))
        }
        if kind == 2 { throw BrokenBarrierError("the manager Barrier is broken: call reset() before using it again") }
        var state: UInt8
        if kind == 1 {
            // The last party: the pass is open unless there is an action to run first.
            guard let action else { return index }
            var failure: (any Error)?
            do { try action() } catch { failure = error }
            state =
                try ask(.barrierActionEnded) { writer in
                    writer.write(pass)
                    writer.write(UInt8(failure == nil ? 1 : 0))
                }.first ?? 2
            if let failure { throw BrokenBarrierError("the manager Barrier's action threw \(failure); the barrier is broken") }
        } else {
            while true {
                state = try ask(.barrierLook, deadline: end) { $0.write(pass) }.first ?? 2
                if state != ManagerBarrier.PassState.waiting.rawValue { break }
                if let end, monotonicNanoseconds() >= end {
                    state = try ask(.barrierGiveUp, deadline: end) { $0.write(pass) }.first ?? 2
                    if state == ManagerBarrier.PassState.broke.rawValue {
                        throw BrokenBarrierError(
                            "manager Barrier.wait() timed out with \(index + 1) of \(parties) parties arrived; the barrier is broken")
                    }
                    break
                }
                backoff.pause(until: end)
            }
        }
        if state == ManagerBarrier.PassState.broke.rawValue {
            throw BrokenBarrierError("the manager Barrier was broken (abort(), reset(), a timeout or a failing action) while this party waited")
        }
        return index
    }

    /// Breaks the barrier: every waiter, and every `wait` until `reset()`, throws
    /// `BrokenBarrierError`.
    public func abort() throws { _ = try ask(.barrierAbort) }

    /// Returns the barrier to its empty state; parties waiting now get `BrokenBarrierError`.
    public func reset() throws { _ = try ask(.barrierReset) }

    /// Whether the barrier is broken: a snapshot.
    public func isBroken() throws -> Bool { try ask(.barrierState).last == 1 }

    /// The parties waiting in the current pass: a snapshot. Python's `n_waiting`.
    public func nWaiting() throws -> Int { try ProxyCall.readCount(try ask(.barrierState)) }
}
