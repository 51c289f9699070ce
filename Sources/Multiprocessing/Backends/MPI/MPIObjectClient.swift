#if MPI
import MPI
import Synchronization
import Wire
#if canImport(Glibc)
import Glibc
#endif

/// A worker rank's side of the object service: sends one request to rank 0 and waits for its
/// answer (test-then-sleep, no busy core). Called from a task, inside the rank's synchronous
/// serve loop, which does not touch MPI meanwhile; the answer comes on its own tag, so pool
/// messages rank 0 sends meanwhile wait for the serve loop. Calls from several threads of one
/// task take turns (`MPI_THREAD_SERIALIZED`).
enum MPIObjectClient {
    private static let state = Mutex<Communicator?>(nil)

    /// Set once by `MPIWorkerEntry` before the serve loop starts.
    static func install(_ communicator: Communicator) {
        state.withLock { $0 = communicator }
    }

    /// Whether this process is a worker rank that can reach rank 0's object service.
    static var isAvailable: Bool { state.withLock { $0 != nil } }

    typealias Reply = (status: MPIObjectProtocol.Status, payload: [UInt8])

    static func call(_ op: MPIObjectProtocol.Op, id: UInt64, timeout: Double? = nil,
                     payload: UnsafeRawBufferPointer = UnsafeRawBufferPointer(start: nil, count: 0)) throws(MPIObjectError) -> Reply {
        let request = MPIObjectProtocol.request(op, id: id, timeout: timeout, payload: payload)
        let answer: Result<[UInt8], MPIObjectError> = state.withLock { communicator in
            guard let communicator else {
                return .failure(MPIObjectError(.wrongProcess, "this object is served by rank 0 of an mpirun job and this "
                    + "process is not one of its worker ranks (a local child process?): pass it to a Pool with the MPI backend"))
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
        printError("swiftmp: worker rank \(MPILaunch.rank ?? -1): \(error); ending the MPI job")
        fflush(nil)
        MPIEnvironment.abort(70)
    }
}
#endif
