import Wire

/// The messages of the MPI object service (ARCHITECTURE.md §8: shared objects across ranks are
/// served by messages from rank 0, not one-sided windows).
///
/// A worker rank's task sends one request to rank 0 on `requestTag` and waits for the one
/// answer on `replyTag` (both on the job's duplicated world communicator, so they never mix
/// with the pool's messages on `MPIProtocol.poolTag`). Rank 0's MPI thread (a live MPI
/// pool's engine thread) answers; a request that cannot be satisfied yet (an empty queue, a
/// held lock, an unset event) is parked there and answered when it can be, or when its
/// timeout passes — the worker never polls rank 0.
///
/// Request: op (UInt8), object id (UInt64), timeout in seconds (Double; negative: none,
/// 0: do not wait), payload (length-prefixed bytes). Reply: `Status` (UInt8), then for
/// `.ok` the op's result (length-prefixed bytes), for `.failed` a message (String).
enum MPIObjectProtocol {
    static let requestTag = 3
    static let replyTag = 4

    enum Op: UInt8 {
        case queuePut = 1
        case queueGet = 2
        case queueCount = 3
        case lockAcquire = 4
        case lockRelease = 5
        case lockState = 6
        case eventSet = 7
        case eventClear = 8
        case eventIsSet = 9
        case eventWait = 10
        case valueRead = 11
        case valueWrite = 12
        case queueTaskDone = 13
        case queueJoin = 14
        case queueUnfinished = 15
        case barrierWait = 16
        case barrierAbort = 17
        case barrierReset = 18
        case barrierState = 19
        case semaphoreAcquire = 20
        case semaphoreRelease = 21
        case semaphoreValue = 22
        /// Pipes: the payload starts with the end (UInt8, 0 or 1).
        case pipeSend = 23
        case pipeReceive = 24
        case pipePoll = 25
        /// A handle of an end leaves in a message: a token the copy adopts.
        case pipeShare = 26
        /// Payload: the token (UInt64) instead of the end.
        case pipeAdopt = 27
        case pipeRelease = 28
        /// Part of a value (a `SharedArray`'s elements): payload offset (Int64), then the
        /// length (Int64) to read, or the bytes to write.
        case valueReadRange = 29
        case valueWriteRange = 30
        /// Conditions: the caller must hold the condition's lock. `conditionWait` releases
        /// it and waits for a notify (the caller acquires the lock again afterwards);
        /// `conditionNotify`'s payload: how many waiters to wake (Int64).
        case conditionWait = 31
        case conditionNotify = 32
        /// A `Manager` proxy's request: the id is the manager's, the payload the request a
        /// manager server takes ([op][object id][arguments]); an `.ok` answer carries the
        /// server's reply ([status][result]), a `.refused` one why the manager cannot answer
        /// (it shut down).
        case managerRequest = 33
        /// The last party of a barrier with an action ran it: payload the pass (UInt64)
        /// and whether the action succeeded (UInt8); `.ok` when the pass opened.
        case barrierActionDone = 34
    }

    enum Status: UInt8 {
        case ok = 0
        /// The timeout passed (queue full or empty, lock held, event not set).
        case timedOut = 1
        /// The operation is not allowed (release of a lock the caller does not hold, …).
        case refused = 2
        /// The service cannot answer (unknown object, the MPI pool ended).
        case failed = 3
    }

    static func request(_ op: Op, id: UInt64, timeout: Double?, payload: UnsafeRawBufferPointer) -> [UInt8] {
        var writer = WireWriter(capacity: 32 + payload.count)
        writer.write(op.rawValue)
        writer.write(id)
        writer.write(timeout ?? -1)
        writer.writeLengthPrefixed(payload)
        return writer.bytes
    }

    static func reply(_ status: Status, _ payload: [UInt8] = []) -> [UInt8] {
        var writer = WireWriter(capacity: 16 + payload.count)
        writer.write(status.rawValue)
        payload.withUnsafeBytes { writer.writeLengthPrefixed($0) }
        return writer.bytes
    }

    static func failure(_ status: Status, _ message: String) -> [UInt8] {
        reply(status, Array(message.utf8))
    }
}
