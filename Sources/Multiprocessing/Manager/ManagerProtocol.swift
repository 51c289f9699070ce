/// The messages between manager clients and the manager server. Each is a frame
/// ([UInt32 length][payload]) on a Unix stream socket. The first frame a client sends is the
/// authentication key; the server answers `ok` or refuses and hangs up.
///
/// Request payload: [op][object id UInt64][arguments]. Reply: [status][result].
///
/// Operations that would wait (a get from an empty queue, a put into a full one, acquiring a
/// held lock) answer `missing` at once: the server never blocks, and the proxy retries until
/// its timeout (`ProxyCall.retry`).
enum ManagerOperation: UInt8 {
    case createDict = 1, createList, createNamespace, release, createQueue, createLock, createEvent, createValue
    case createSemaphore = 9
    case createRLock = 110
    case createCondition = 111, createBarrier, createSet
    case dictGet = 10, dictSet, dictDelete, dictCount, dictItems, dictClear, dictPop, dictSetDefault, dictUpdate
    case listAppend = 20, listGet, listSet, listCount, listRemove, listItems, listClear, listInsert, listExtend
    case namespaceGet = 30, namespaceSet, namespaceDelete
    case shutdown = 40
    case queuePut = 50, queueGet, queueCount, queueTaskDone, queueJoin
    case lockAcquire = 60, lockRelease, lockIsLocked
    case eventSet = 70, eventClear, eventIsSet, eventWaitStep
    case valueGet = 80, valueSet
    case semaphoreAcquire = 90, semaphoreRelease, semaphoreValue
    case rlockAcquire = 100, rlockRelease, rlockState
    case conditionWait = 120, conditionResume, conditionNotify, conditionWaiters
    case barrierArrive = 130, barrierLook, barrierActionEnded, barrierGiveUp, barrierAbort, barrierReset, barrierState
    case setInsert = 140, setRemove, setContains, setCount, setItems, setClear, setPop, setUpdate
}

enum ManagerStatus: UInt8 {
    case ok = 0
    /// The key, index or attribute does not exist; or the operation would wait (an empty or
    /// full queue, a held lock).
    case missing = 1
    /// The request was malformed or named an unknown object.
    case invalid = 2
    /// Authentication refused.
    case refused = 3
}

/// Bytes as a dictionary key on the server (keys are compared by their encoding).
struct EncodedKey: Hashable {
    let bytes: [UInt8]
}

/// What a manager request or reply failed with.
public struct ManagerError: Error, CustomStringConvertible, Sendable, Equatable {
    public enum Code: Sendable, Equatable {
        /// The manager process is gone (shut down, or its owner exited).
        case unavailable
        /// The authentication key did not match.
        case authenticationFailed
        /// A list index out of range, or another request the server refused.
        case invalidRequest
        /// A call with a timeout got no answer from the manager in time (at least
        /// `ManagerConnection.answerFloor`): its process is stopped or overloaded.
        case timedOut
    }
    public var code: Code
    public var message: String
    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }
    public var description: String { message }
}

enum ManagerFrame {
    static let maximum = 1 << 30
    /// The body's length (`UInt32`) in front of it.
    static let headerSize = 4

    static func make(_ body: (inout WireWriter) -> Void) -> [UInt8] {
        var writer = WireWriter()
        writer.write(UInt32(0))
        body(&writer)
        writer.patch(UInt32(writer.count - headerSize), at: 0)
        return writer.bytes
    }
}
