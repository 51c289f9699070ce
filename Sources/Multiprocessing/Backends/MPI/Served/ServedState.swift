import Wire

#if canImport(Glibc)
import Glibc
#endif

/// Who asks rank 0's object service for something: a rank, and within it a local process
/// (0: the rank itself; the worker processes a rank hosts get their own ids). Ownership is per
/// requester: a lock, an `RLock`'s depth, a condition's waiter, a pipe end's handle belong to
/// one. On rank 0 each thread is its own requester (`currentThread`).
struct Requester: Hashable, Sendable, CustomStringConvertible {
    var rank: Int
    var local: UInt64

    init(rank: Int, local: UInt64 = 0) {
        self.rank = rank
        self.local = local
    }

    /// Marks a rank-0 thread's local id (thread ids are pointers, below 2^63).
    static let threadBit: UInt64 = 1 << 63

    /// The calling thread of rank 0.
    static var currentThread: Requester {
        Requester(rank: 0, local: UInt64(UInt(pthread_self())) | threadBit)
    }

    var isThread: Bool { local & Self.threadBit != 0 }

    var description: String {
        if isThread { return "this thread" }
        return local == 0 ? "worker rank \(rank)" : "local worker \(local) of rank \(rank)"
    }
}

/// What a served object's `attempt` decides about a request.
enum ServedOutcome<Reply> {
    /// Answered now.
    case reply(Reply)
    /// Cannot be answered yet: the request waits in rank 0 (its `attempt` runs again after
    /// every change, `expire` answers it when its deadline, if any, passes).
    case park
}

/// One kind of served object (`ServedQueue`, `ServedLock`…): its state, its requests and
/// replies with their wire form, and the one `attempt` that rank 0's own threads and worker
/// ranks' requests both go through (ARCHITECTURE.md §8). Called only under the registry's
/// lock; never blocks, never calls user code.
protocol ServedState: AnyObject {
    associatedtype Request
    associatedtype Reply

    static var kind: ServedKind { get }

    /// Answers `request` now or parks it. A request that parks may be rewritten into what it
    /// waits for (a barrier arrival becomes a wait for its pass).
    func attempt(_ request: inout Request, from requester: Requester) -> ServedOutcome<Reply>

    /// The reply to a parked request whose deadline passed (the state may change: a barrier
    /// wait that times out breaks the barrier).
    func expire(_ request: Request, from requester: Requester) -> Reply

    /// Whether the object must live although no handle counts it (a pipe with an open end:
    /// its ends count their own handles).
    var keepsAlive: Bool { get }

    /// Processes of worker ranks ended (`gone` on their `ObjectRequester.id`, the requesters'
    /// `rank`): forgets what they owned (a lock they held). Returns whether the state changed
    /// (parked requests may be answerable now).
    func processesEnded(_ gone: (Int) -> Bool) -> Bool

    /// `reply` to `request` was never read: the local worker of a worker rank that asked died
    /// before it read it (`RelayedObjectRequests`). Gives back what the reply handed over — a
    /// queue's item, a pipe's message, a semaphore's unit, what a manager's answer handed
    /// over — so that another process gets it. What a process owns (a lock, a condition's
    /// lock) is let go when its end is reported (`processesEnded`).
    func undo(_ request: Request, _ reply: Reply, from requester: Requester)

    /// A request parked by a process that ended (`MPIObjectRegistry.dropProcesses`): nobody
    /// waits for its answer any more. The state forgets what the request holds in it (a
    /// condition's waiter leaves the line, so that a notify goes to a live one).
    func abandon(_ request: Request, from requester: Requester)

    static func encode(_ request: Request, into writer: inout WireWriter)
    static func decodeRequest(_ reader: inout WireReader) throws(WireError) -> Request
    static func encode(_ reply: Reply, into writer: inout WireWriter)
    static func decodeReply(_ reader: inout WireReader) throws(WireError) -> Reply
}

extension ServedState {
    var keepsAlive: Bool { false }
    func processesEnded(_: (Int) -> Bool) -> Bool { false }
    func undo(_: Request, _: Reply, from _: Requester) {}
    func abandon(_: Request, from _: Requester) {}
}

/// The kinds on the wire (a request names its object's kind; a mismatch is another build).
enum ServedKind: UInt8, Sendable {
    /// No object: a request that only carries handle counts.
    case none = 0
    case queue = 1
    case lock = 2
    case semaphore = 3
    case condition = 4
    case event = 5
    case barrier = 6
    case value = 7
    case pipe = 8
    case manager = 9
    case broadcast = 10
}

extension WireWriter {
    mutating func writeBytes(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { writeLengthPrefixed($0) }
    }
}

extension WireReader {
    mutating func readBytes() throws(WireError) -> [UInt8] {
        Array(try readLengthPrefixed())
    }

    /// The rest of the buffer.
    mutating func readRest() throws(WireError) -> [UInt8] {
        Array(try readRaw(count: remaining))
    }
}
