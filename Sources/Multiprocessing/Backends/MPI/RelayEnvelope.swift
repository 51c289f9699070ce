#if MPI
import MPI
import Wire

/// The envelope of every pool-tag message between rank 0 and a worker rank (ARCHITECTURE.md §8):
/// a worker rank runs no task itself, it hosts local worker processes (`RankRelay`) and relays
/// the pool's messages between them and rank 0. Rank 0's pool sees one worker slot per local
/// worker of every rank.
///
/// The envelope fills the message's headroom (`MessageBuffer.headroom`, 8 bytes): byte 0 the
/// kind, bytes 2…3 the pool (`MPIService.Lease.pool`; a rank may host workers of several
/// pools), bytes 4…7 the local worker's index (little-endian `UInt32`). A forwarded message
/// keeps its headroom all the way, so the rank writes it into its local worker's ring in place
/// (the headroom becomes the frame header) and rank 0 decodes a relayed reply where it lies.
enum RelayEnvelope {
    static let size = MessageBuffer.headroom

    /// Rank 0 → worker rank.
    enum Down: UInt8 {
        /// A pool message (`MasterMessage`) for local worker `local`.
        case forward = 1
        /// A new pool: start `UInt32` local workers (the rank answers `started` for each);
        /// then `UInt8` 1 if their output is tagged (`Pool(tagOutput:)`), `UInt8` 1 if the rank
        /// schedules them itself (`RankScheduling.node`: it then answers bundles, reports its
        /// workers' ends only for the objects they held) and `UInt32` `maxTasksPerChild` (0: none).
        case open = 2
        /// End local worker `local` now (a time limit or a cancellation); its end is reported.
        case kill = 3
        /// Start a new local worker in slot `local` after its predecessor ended; the rank
        /// answers `started` or `notStarted`.
        case replace = 4
        /// The pool is over: the local workers get `UInt32` ms to exit, then are killed; the
        /// rank answers `closed`.
        case close = 5
        /// Cancel task `UInt64` (a bundle, `RankScheduling.node`): the rank's engine drops its
        /// inputs not started and kills a local worker running one; the bundle is still answered.
        case cancel = 7
    }

    /// Worker rank → rank 0. (6 is `RelayBatch.kind` in both directions.)
    enum Up: UInt8 {
        /// A local worker's message (`WorkerMessage`).
        case message = 1
        /// Local worker `local` started: its pid (`Int32`).
        case started = 2
        /// Local worker `local` ended: how (`UInt8` 0 exited / 1 signalled, `Int32` code or
        /// signal), then its progress words (`UInt32` chunks taken, `Int64` input position),
        /// then whether the rank killed it as wedged (`UInt8`, `RankRelay`).
        case ended = 3
        /// Every local worker of the pool has exited.
        case closed = 4
        /// The rank cannot host the pool's workers: why (`String`).
        case failed = 5
        /// Local worker `local`'s replacement (`Down.replace`) did not start: the `errno` it
        /// failed with (`Int32`, 0: not a system call's failure), then why (`String`).
        case notStarted = 8
    }

    /// The headroom's 8 bytes for `kind`, `pool` and `local`.
    static func word(_ kind: UInt8, pool: UInt16, local: Int) -> UInt64 {
        UInt64(kind) | UInt64(pool) << 16 | UInt64(UInt32(truncatingIfNeeded: local)) << 32
    }

    /// Reads a message's envelope, or nil if it is too short to have one.
    static func read(_ message: UnsafeRawBufferPointer) -> (kind: UInt8, pool: UInt16, local: Int)? {
        guard message.count >= size else { return nil }
        var reader = WireReader(message)
        guard let word = try? reader.read(UInt64.self) else { return nil }
        return (UInt8(truncatingIfNeeded: word), UInt16(truncatingIfNeeded: word >> 16), Int(UInt32(truncatingIfNeeded: word >> 32)))
    }

    /// A message of `kind` for `pool`'s `local` with `body` after the envelope.
    static func message(
        _ kind: UInt8, pool: UInt16, local: Int, into writer: inout WireWriter,
        _ body: (inout WireWriter) -> Void = { _ in }
    ) {
        writer.bytes.removeAll(keepingCapacity: true)
        writer.write(word(kind, pool: pool, local: local))
        body(&writer)
    }

    static func notStarted(pool: UInt16, local: Int, errno: Int32, why: String, into writer: inout WireWriter) {
        message(Up.notStarted.rawValue, pool: pool, local: local, into: &writer) {
            $0.write(errno)
            $0.write(why)
        }
    }

    /// What a `notStarted` message says (an unreadable one: a failure that will not pass).
    static func readRefusal(_ body: UnsafeRawBufferPointer) -> (errno: Int32, why: String) {
        var reader = WireReader(body)
        guard let code = try? reader.read(Int32.self), let why = try? reader.read(String.self) else {
            return (0, "(an unreadable refusal from the rank)")
        }
        return (code, why)
    }

    /// What a `ended` message says.
    struct Ending {
        var exit: ChildExit
        var taken: UInt32
        var input: Int
        /// The rank killed it: it held a chunk untaken, asleep (`WedgeWatch`).
        var wedged = false
        /// Its process's name at rank 0's object service (`RelayedObjectRequests`); 0: it never
        /// asked it anything.
        var requester: UInt32 = 0
        /// The kernel's out-of-memory killer most likely ended it (`WorkerDied.outOfMemory`).
        var outOfMemory = false
    }

    static func ended(pool: UInt16, local: Int, _ ending: Ending, into writer: inout WireWriter) {
        message(Up.ended.rawValue, pool: pool, local: local, into: &writer) {
            switch ending.exit {
            case .exited(let code):
                $0.write(UInt8(0))
                $0.write(Int32(code))
            case .signaled(let signal):
                $0.write(UInt8(1))
                $0.write(Int32(signal))
            }
            $0.write(ending.taken)
            $0.write(Int64(ending.input))
            $0.write(UInt8(ending.wedged ? 1 : 0))
            $0.write(ending.requester)
            $0.write(UInt8(ending.outOfMemory ? 1 : 0))
        }
    }

    static func readEnding(_ body: UnsafeRawBufferPointer) throws -> Ending {
        var reader = WireReader(body)
        let how = try reader.read(UInt8.self)
        let code = try reader.read(Int32.self)
        let taken = try reader.read(UInt32.self)
        let input = Int(try reader.read(Int64.self))
        let wedged = try reader.read(UInt8.self) == 1
        let requester = try reader.read(UInt32.self)
        return Ending(
            exit: how == 0 ? .exited(code) : .signaled(code), taken: taken, input: input, wedged: wedged,
            requester: requester, outOfMemory: try reader.read(UInt8.self) == 1)
    }
}

/// Who asked rank 0's object service: a worker rank and the local worker process on it, as
/// the one `Int` the object registry keeps per request (`rank | local << 24`; the rank's own
/// calls are just the rank). `local` is the rank's name for the process (its pool and a
/// number fresh for each process, `RelayedObjectRequests`), sent in front of its requests and
/// of their answers. Distinct processes are distinct owners (of a lock, a pipe end).
enum ObjectRequester {
    static func id(rank: Int, local: Int) -> Int { rank | local << 24 }

    /// The local worker's name in front of a request or an answer (nil if too short).
    static func readLocal(_ message: UnsafeRawBufferPointer) -> UInt32? {
        message.count >= 4 ? UInt32(littleEndian: message.loadUnaligned(as: UInt32.self)) : nil
    }
    static func rank(of id: Int) -> Int { id & 0xFF_FFFF }
    static func local(of id: Int) -> Int { id >> 24 }
}

extension MPIObjectProtocol {
    /// Sends an answer to `requester` (`ObjectRequester`): to its rank, on `replyTag`, after
    /// the local worker's index (`UInt32`) that the rank relays it to.
    static func sendRelayed(_ reply: [UInt8], to requester: Int, _ communicator: Communicator) throws -> MPI.Request {
        var local = UInt32(truncatingIfNeeded: ObjectRequester.local(of: requester)).littleEndian
        return try withUnsafeBytes(of: &local) { header in
            try reply.withUnsafeBytes { try communicator.isend(header, $0, to: ObjectRequester.rank(of: requester), tag: replyTag) }
        }
    }
}
#endif
