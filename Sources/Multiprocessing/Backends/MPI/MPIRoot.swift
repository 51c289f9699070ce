#if MPI
import MPI
#if canImport(Glibc)
import Glibc
#endif

/// Rank 0's side of an mpirun job, for the whole process (ARCHITECTURE.md §8, "The MPI rank-0 model").
///
/// - Starts MPI lazily: at the first MPI pool, or at exit if no pool ever ran.
/// - Greets every worker rank once: build id check, host names.
/// - Lets one MPI pool live at a time, so that one thread at a time talks to MPI
///   (`MPI_THREAD_SERIALIZED`): the thread creating a pool while none lives, then that
///   pool's engine thread, then — after the engine stopped — the exit handler.
/// - Remembers workers that had not acknowledged their pool's `stop` (after `terminate()`)
///   and drains them before the next pool starts.
/// - At exit (an `atexit` handler the start-up hook registers on rank 0) tells every worker
///   rank to `terminate`, waits up to 5 s for their acknowledgements, then finalises MPI —
///   or aborts the job (`MPI_Abort`, status 1) if one does not answer.
final class MPIRoot: @unchecked Sendable {
    static let shared = MPIRoot()

    static let greetingNanoseconds: UInt64 = 60_000_000_000
    static let drainNanoseconds: UInt64 = 30_000_000_000
    static let exitNanoseconds: UInt64 = 5_000_000_000

    /// What a pool gets: the communicator and every rank's host (index = rank).
    struct Lease {
        let communicator: Communicator
        let hosts: [String]
    }

    private let lock = ConditionLock()
    // Under `lock`.
    private var live = false
    private var liveEngine: PoolEngine?
    private weak var liveOwner: AnyObject?
    private var finished = false
    private var broken: PoolError?

    // Only by the thread that holds the MPI (it set `live`, or it is the exit handler after
    // the engine stopped); handed over through `lock`.
    private var communicator: Communicator?
    private var hosts: [String] = []
    private var greeted = false
    private var mismatch: PoolError?
    private var draining: Set<Int> = []
    private var leftoverSends: [Request] = []
    private var buffer: [UInt8] = []

    // MARK: pools

    /// Takes the MPI for a new pool: starts MPI and greets the workers the first time, and
    /// drains workers still busy with a terminated pool.
    func openPool() throws -> Lease {
        try reserve()
        do {
            let comm = try setUp()
            try greet(comm)
            if let mismatch { throw mismatch }
            try drain(comm, deadline: monotonicNanoseconds() &+ Self.drainNanoseconds)
            return Lease(communicator: comm, hosts: hosts)
        } catch {
            lock.withLock { live = false }
            throw error
        }
    }

    private func reserve() throws {
        lock.lock()
        defer { lock.unlock() }
        while live {
            guard liveOwner == nil, let engine = liveEngine else {
                throw PoolError(.invalidArgument, "only one MPI pool can live at a time in a process: close() and join() "
                    + "the other pool first (or use Pool.with { }), or pass backend: .local")
            }
            // Its Pool was released without join: the engine is terminating; wait for it.
            lock.unlock()
            _ = engine.join()
            lock.lock()
        }
        if finished { throw PoolError(.closed, "the program is ending and MPI was shut down; no new MPI pool can start") }
        if let broken { throw broken }
        live = true
    }

    /// Records the pool that holds the MPI, so that the exit handler can stop it.
    func attach(owner: AnyObject, engine: PoolEngine) {
        lock.withLock {
            liveOwner = owner
            liveEngine = engine
        }
    }

    /// Gives the MPI back (the engine thread, when its pool ends). `draining`: ranks that
    /// have not acknowledged their `stop`; `sends`: sends not yet complete.
    func closePool(draining ranks: [Int], sends: [Request], error: PoolError?) {
        lock.withLock {
            draining.formUnion(ranks)
            leftoverSends.append(contentsOf: sends)
            if let error, broken == nil { broken = error }
            live = false
            liveEngine = nil
            liveOwner = nil
            lock.broadcast()
        }
    }

    // MARK: start-up

    private func setUp() throws -> Communicator {
        if let communicator { return communicator }
        let comm: Communicator
        do {
            comm = try MPIProtocol.start()
        } catch let error as MPIError {
            throw PoolError(.startFailed, "cannot start MPI on rank 0: \(error)")
        }
        hosts = Array(repeating: "?", count: max(1, comm.size))
        hosts[0] = (try? MPIEnvironment.processorName) ?? "?"
        communicator = comm
        return comm
    }

    private func greet(_ comm: Communicator) throws {
        guard !greeted else { return }
        let ours = BuildID.current
        let hello = MPIProtocol.controlMessage(.hello) {
            $0.write(ours.hash)
            $0.write(ours.size)
        }
        var missing = Set(1..<comm.size)
        var mismatched: [(rank: Int, build: BuildID)] = []
        try transport {
            for rank in missing {
                try hello.withUnsafeBytes { try comm.send($0, to: rank, tag: MPIProtocol.controlTag) }
            }
            let deadline = monotonicNanoseconds() &+ Self.greetingNanoseconds
            var backoff = IdleBackoff()
            while !missing.isEmpty {
                guard let status = try comm.receiveIfAvailable(from: .any, tag: .value(MPIProtocol.controlTag), into: &buffer) else {
                    if monotonicNanoseconds() > deadline {
                        throw PoolError(.startFailed, "worker ranks \(missing.sorted()) did not answer rank 0's start-up handshake "
                            + "within 60 s: start the same program on every rank, without SWIFTMP_MPI_MODE=spmd")
                    }
                    backoff.pause(until: deadline)
                    continue
                }
                backoff.noteActivity()
                let reply = try buffer.withUnsafeBytes { raw throws -> (ok: Bool, host: String, build: BuildID)? in
                    var reader = WireReader(raw)
                    guard try reader.read(UInt8.self) == MPIProtocol.Control.helloReply.rawValue else { return nil }
                    let ok = try reader.read(UInt8.self) == 1
                    let host = try reader.read(String.self)
                    let build = BuildID(hash: try reader.read(UInt64.self), size: try reader.read(UInt64.self))
                    return (ok, host, build)
                }
                guard let reply, missing.remove(status.source) != nil else { continue }
                hosts[status.source] = reply.host
                if !reply.ok { mismatched.append((status.source, reply.build)) }
            }
        }
        greeted = true
        if let first = mismatched.min(by: { $0.rank < $1.rank }) {
            let ranks = mismatched.map(\.rank).sorted()
            mismatch = PoolError(.startFailed, "worker rank \(first.rank) on \(hosts[first.rank]) runs another build than rank 0 on "
                + "\(hosts[0]) (\(first.build) vs \(ours))\(ranks.count > 1 ? "; ranks \(ranks) all differ" : ""): "
                + "the executables differ: rebuild and copy the same binary to every node")
        }
    }

    /// Waits until workers left running by a terminated pool have acknowledged its `stop`.
    private func drain(_ comm: Communicator, deadline: UInt64) throws {
        var backoff = IdleBackoff()
        try transport {
            while true {
                leftoverSends = try leftoverSends.filter { try $0.test() == nil }
                while let status = try comm.receiveIfAvailable(from: .any, tag: .value(MPIProtocol.poolTag), into: &buffer) {
                    if buffer.first == WorkerMessage.stopped.rawValue { draining.remove(status.source) }
                    backoff.noteActivity()
                }
                if try refuseObjectRequests(comm) { backoff.noteActivity() }
                if draining.isEmpty && leftoverSends.isEmpty { return }
                if monotonicNanoseconds() > deadline {
                    throw PoolError(.startFailed, "worker ranks \(draining.sorted()) are still running tasks of a terminated pool "
                        + "after 30 s (a running task cannot be interrupted on an MPI rank); wait longer or restart the job")
                }
                backoff.pause(until: deadline)
            }
        }
    }

    // MARK: exit

    /// The exit handler: stops a live pool, terminates every worker rank, finalises MPI.
    func atExit() {
        let engine = lock.withLock { () -> PoolEngine? in
            finished = true
            return liveEngine
        }
        if let engine {
            engine.terminate()
            if !engine.join(timeout: Double(Self.exitNanoseconds) / 1e9) {
                fail("the MPI pool's thread did not stop within 5 s of the program's end")
            }
        }
        if MPIEnvironment.isFinalized { return }
        if MPILaunch.worldSizeFromEnvironment == 1 && !MPIEnvironment.isInitialized { return }
        do {
            let comm = try setUp()
            if comm.size > 1 { try terminateWorkers(comm) }
            try MPIEnvironment.finalize()
        } catch {
            fail("\(error)")
        }
    }

    private func fail(_ message: String) -> Never {
        printError("swiftmp: \(message); aborting the MPI job")
        fflush(nil)
        MPIEnvironment.abort(1)
    }

    private func terminateWorkers(_ comm: Communicator) throws {
        let message = MPIProtocol.controlMessage(.terminate)
        var missing = Set(1..<comm.size)
        try transport {
            let sends = try missing.map { rank in
                try message.withUnsafeBytes { try comm.isend($0, to: rank, tag: MPIProtocol.controlTag) }
            }
            let deadline = monotonicNanoseconds() &+ Self.exitNanoseconds
            var backoff = IdleBackoff()
            while !missing.isEmpty {
                // Anything else still in flight (results of a terminated pool, `stopped`) is dropped.
                guard let status = try comm.receiveIfAvailable(from: .any, tag: .any, into: &buffer) else {
                    if monotonicNanoseconds() > deadline {
                        throw PoolError(.transport, "worker ranks \(missing.sorted()) did not stop within 5 s of the program's "
                            + "end (still running a task?)")
                    }
                    backoff.pause(until: deadline)
                    continue
                }
                backoff.noteActivity()
                if status.tag == MPIProtocol.controlTag && buffer.first == MPIProtocol.Control.terminated.rawValue {
                    missing.remove(status.source)
                } else if status.tag == MPIObjectProtocol.requestTag {
                    // A task still running asks for a shared object: answer, so that it ends.
                    try refuse(objectRequestFrom: status.source, comm)
                }
            }
            try Request.waitAll(sends + leftoverSends)
            leftoverSends = []
        }
    }
}

extension MPIRoot {
    static let noPoolMessage = "no MPI pool is live on rank 0, so it cannot serve shared objects (the task belongs to a "
        + "terminated pool, or the program is ending): keep the pool open until its tasks are done"

    /// Answers worker requests for shared objects while no pool serves them (a terminated
    /// pool's tasks, the program's end) with `.failed`, so that the tasks end instead of
    /// waiting for ever. Returns whether there was any.
    func refuseObjectRequests(_ comm: Communicator) throws -> Bool {
        var any = false
        var request: [UInt8] = []
        while let status = try comm.receiveIfAvailable(from: .any, tag: .value(MPIObjectProtocol.requestTag), into: &request) {
            try refuse(objectRequestFrom: status.source, comm)
            any = true
        }
        return any
    }

    func refuse(objectRequestFrom rank: Int, _ comm: Communicator) throws {
        // Blocking send: the worker is waiting in a receive for exactly this answer.
        try MPIObjectProtocol.failure(.failed, Self.noPoolMessage).withUnsafeBytes {
            try comm.send($0, to: rank, tag: MPIObjectProtocol.replyTag)
        }
    }
}

/// Runs `body`, turning an `MPIError` into `PoolError(.transport)`.
func transport<T>(_ body: () throws -> T) throws -> T {
    do {
        return try body()
    } catch let error as MPIError {
        throw PoolError(.transport, "MPI failed between rank 0 and the worker ranks: \(error)")
    }
}

/// Called at exit on rank 0 of an mpirun job (registered by the start-up hook).
@_cdecl("swiftmp_mpi_root_exit")
func swiftmpMPIRootExit() {
    MPIRoot.shared.atExit()
}
#endif
