import Synchronization
import Wire

#if MPI
import MPI
#endif
#if canImport(Glibc)
import Glibc
#endif

/// The object service's client side: sends one request to rank 0 and waits for its answer.
/// Tasks run in a worker rank's local workers, which reach rank 0 through their rank
/// (`ObjectRequestRelay`: the rank puts the worker's name in front, `RankRelay`); a process
/// that talks MPI itself polls for the answer on its own tag (test-then-sleep, no busy core).
/// Calls from several threads of one task take turns.
///
/// Handle counts: a decoded handle is retained at once (one round trip, so that rank 0 counts
/// it before the sender may drop its own). A dropped handle's release is queued and sent at
/// once if no request of this process is under way (one round trip in the `deinit`), else it
/// travels with the next request: a `deinit` never waits for another thread's request.
enum MPIObjectClient {
    private enum Transport {
        #if MPI
        /// A worker rank (set by `MPIWorkerEntry`): MPI to rank 0.
        case mpi(Communicator)
        #endif
        /// A worker rank's local worker: through the rank.
        case relay(ObjectRequestRelay)
    }

    private static let state = Mutex<Transport?>(nil)
    /// Handle count changes not yet sent, oldest first.
    private static let pending = Mutex<[(id: UInt64, delta: Int32)]>([])
    /// This process's local id among the processes its rank hosts (0: the rank itself).
    private static let localID = Atomic<UInt64>(0)

    /// Set once by `MPIWorkerEntry` before the serve loop starts.
    #if MPI
    static func install(_ communicator: Communicator, local: UInt64 = 0) {
        state.withLock { $0 = .mpi(communicator) }
        localID.store(local, ordering: .relaxed)
    }
    #endif

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

    /// Sends one request for object `id` of `kind` (with the queued handle counts) and waits
    /// for its answer.
    static func call(_ kind: ServedKind, id: UInt64, timeout: Double? = nil, body: [UInt8] = []) throws(MPIObjectError) -> Reply {
        let answer: Result<[UInt8], MPIObjectError> = state.withLock { transport in
            guard let transport else {
                return .failure(
                    MPIObjectError(
                        .wrongProcess,
                        "this object is served by rank 0 of an mpirun job and this "
                            + "process is not one of its workers (a child process of its own?): pass it to a Pool with the MPI backend"))
            }
            return exchange(transport, kind: kind, id: id, timeout: timeout, body: body)
        }
        let bytes = try answer.get()
        do {
            let reply = try MPIObjectProtocol.readReply(bytes)
            return (reply.status, reply.payload)
        } catch {
            throw MPIObjectError(.transport, "rank 0's object service sent an unreadable answer: \(error)")
        }
    }

    /// Under `state`: one request and its answer.
    private static func exchange(
        _ transport: Transport, kind: ServedKind, id: UInt64, timeout: Double?,
        body: [UInt8]
    ) -> Result<[UInt8], MPIObjectError> {
        let counts = pending.withLock { counts in
            defer { counts.removeAll() }
            return counts
        }
        let request = MPIObjectProtocol.Request(
            local: localID.load(ordering: .relaxed), counts: counts, kind: kind, id: id,
            timeout: timeout ?? -1
        ).encode(body: body)
        #if MPI
        let communicator: Communicator
        #endif
        switch transport {
        case .relay(let relay):
            guard let reply = relay.call(request) else {
                return .failure(
                    MPIObjectError(
                        .transport,
                        "the worker rank that hosts this worker ended; rank 0's object "
                            + "service cannot be reached"))
            }
            return .success(reply)
        #if MPI
        case .mpi(let mpi):
            communicator = mpi
        #endif
        }
        #if MPI
        do {
            try request.withUnsafeBytes { try communicator.send($0, to: 0, tag: MPIObjectProtocol.requestTag) }
            var buffer: [UInt8] = []
            var backoff = IdleBackoff()
            while try communicator.receiveIfAvailable(
                from: .rank(0), tag: .value(MPIObjectProtocol.replyTag),
                into: &buffer) == nil
            {
                backoff.pause()
            }
            return .success(buffer)
        } catch {
            return .failure(MPIObjectError(.transport, "worker rank \(communicator.rank) cannot reach rank 0's object service: \(error)"))
        }
        #endif
    }

    /// Counts a decoded handle of `id` at rank 0 (with the queued releases); errors are
    /// dropped: the handle's first use reports them.
    static func retain(_ id: UInt64) {
        pending.withLock { $0.append((id, 1)) }
        _ = try? call(.none, id: 0)
    }

    /// Queues the pin of an encoded handle of `id` (it travels with the next request, before
    /// this process's release of that handle).
    static func pin(_ id: UInt64) {
        pending.withLock { $0.append((id, 0)) }
    }

    /// Queues the release of a dropped handle of `id` and sends the queue if no other
    /// request of this process is under way.
    static func release(_ id: UInt64) {
        pending.withLock { $0.append((id, -1)) }
        flushReleases(waiting: false)
    }

    /// Sends the queued handle counts now (the worker's serve loop, when a task ends).
    /// `waiting: false`: only if no request of this process is under way (never blocks on
    /// another thread's request).
    static func flushReleases(waiting: Bool = true) {
        guard pending.withLock({ !$0.isEmpty }) else { return }
        if waiting {
            _ = try? call(.none, id: 0)
            return
        }
        _ = state.withLockIfAvailable { transport in
            if let transport { _ = exchange(transport, kind: .none, id: 0, timeout: nil, body: []) }
        }
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
        #if MPI
        MPIEnvironment.abort(70)
        #else
        exit(70)
        #endif
    }
}
