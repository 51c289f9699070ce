import MPI
import Synchronization
import Wire
#if canImport(Glibc)
import Glibc
#endif

/// The object service's client side: sends one request to rank 0 and waits for its answer.
/// Tasks run in a worker rank's local workers, which reach rank 0 through their rank
/// (`ObjectRequestRelay`); the rank itself talks MPI (test-then-sleep, no busy core; the
/// answer comes on its own tag). Calls from several threads of one task take turns.
enum MPIObjectClient {
    private enum Transport {
        /// A worker rank (set by `MPIWorkerEntry`): MPI to rank 0.
        case mpi(Communicator)
        /// A worker rank's local worker: through the rank.
        case relay(ObjectRequestRelay)
    }

    private static let state = Mutex<Transport?>(nil)

    /// Set once by `MPIWorkerEntry` before the serve loop starts.
    static func install(_ communicator: Communicator) {
        state.withLock { $0 = .mpi(communicator) }
    }

    /// Set by a worker rank's local worker (forked from the rank, so it inherited the rank's
    /// MPI transport, which it must never use) before it serves.
    static func install(relay: ObjectRequestRelay) {
        state.withLock { $0 = .relay(relay) }
    }

    /// Whether this process can reach rank 0's object service.
    static var isAvailable: Bool { state.withLock { $0 != nil } }

    /// Whether this process reaches it through its rank (it must never call MPI).
    static var isRelayed: Bool {
        state.withLock { if case .relay = $0 { return true } else { return false } }
    }

    typealias Reply = (status: MPIObjectProtocol.Status, payload: [UInt8])

    static func call(_ op: MPIObjectProtocol.Op, id: UInt64, timeout: Double? = nil,
                     payload: UnsafeRawBufferPointer = UnsafeRawBufferPointer(start: nil, count: 0)) throws(MPIObjectError) -> Reply {
        let request = MPIObjectProtocol.request(op, id: id, timeout: timeout, payload: payload)
        let answer: Result<[UInt8], MPIObjectError> = state.withLock { transport in
            let communicator: Communicator
            switch transport {
            case nil:
                return .failure(MPIObjectError(.wrongProcess, "this object is served by rank 0 of an mpirun job and this "
                    + "process is not one of its workers (a child process of its own?): pass it to a Pool with the MPI backend"))
            case .relay(let relay):
                guard let reply = relay.call(request) else {
                    return .failure(MPIObjectError(.transport, "the worker rank that hosts this worker ended; rank 0's object "
                        + "service cannot be reached"))
                }
                return .success(reply)
            case .mpi(let mpi):
                communicator = mpi
            }
            do {
                try request.withUnsafeBytes { try communicator.send($0, to: 0, tag: MPIObjectProtocol.requestTag) }
                var buffer: [UInt8] = []
                var backoff = IdleBackoff()
                while try communicator.receiveIfAvailable(from: .rank(0), tag: .value(MPIObjectProtocol.replyTag),
                                                          into: &buffer) == nil {
                    backoff.pause()
                }
                return .success(buffer)
            } catch {
                return .failure(MPIObjectError(.transport, "worker rank \(communicator.rank) cannot reach rank 0's object service: \(error)"))
            }
        }
        let bytes = try answer.get()
        do {
            return try bytes.withUnsafeBytes { raw throws -> Reply in
                var reader = WireReader(raw)
                guard let status = MPIObjectProtocol.Status(rawValue: try reader.read(UInt8.self)) else {
                    throw WireError.corrupt("unknown status")
                }
                return (status, Array(try reader.readLengthPrefixed()))
            }
        } catch {
            throw MPIObjectError(.transport, "rank 0's object service sent an unreadable answer: \(error)")
        }
    }

    /// The number (Int64) an answer carries.
    static func int(_ reply: Reply) throws -> Int {
        try reply.payload.withUnsafeBytes { raw throws -> Int in
            var reader = WireReader(raw)
            return Int(try reader.read(Int64.self))
        }
    }

    /// The message of a `.refused` or `.failed` reply.
    static func message(_ reply: Reply) -> String {
        String(decoding: reply.payload, as: UTF8.self)
    }

    /// For calls whose API cannot throw (`Event.set`, `Event.wait`): the job cannot go on
    /// without its object service, so it ends (MPI's fault model), with the reason.
    static func abort(_ error: MPIObjectError) -> Never {
        if isRelayed {
            // A local worker: its end is reported (`WorkerDied`) and its rank replaces it.
            printError("swiftmp: worker \(getpid()) on rank \(MPILaunch.rank ?? -1): \(error); ending this worker")
            fflush(nil)
            _exit(70)
        }
        printError("swiftmp: worker rank \(MPILaunch.rank ?? -1): \(error); ending the MPI job")
        fflush(nil)
        MPIEnvironment.abort(70)
    }
}
