#if MPI
import MPI
import Synchronization
import Wire
#if canImport(Glibc)
import Glibc
#endif

/// Rank 0's one MPI service (ARCHITECTURE.md §8, "The MPI rank-0 model"). It owns the
/// communicator and its progress; MPI pools (`MPIBackend`) and served objects
/// (`MPIObjectRegistry`) are its clients.
///
/// - **Start.** MPI starts lazily: at the first MPI pool, or at exit if no pool ever ran
///   (worker ranks wait in `MPI_Init` for it). It greets every worker rank once (build id,
///   host name, how many local workers the rank hosts by default) and starts the service
///   thread.
/// - **One thread in MPI at a time** (`MPI_THREAD_SERIALIZED`): every MPI call on rank 0 is
///   made under `mpi`, by whichever thread needs progress — a pool's engine thread while it
///   runs tasks (no hand-off on the hot path), or the service thread, which pumps when nobody
///   else does (at most every millisecond, sooner after activity). A pump receives every
///   pool's messages: those of the calling pool go straight to it, the others into their
///   pool's inbox (`Inbox`), whose engine is woken; and it serves objects. So objects are
///   served whether or not a pool lives.
/// - **Several pools.** Each pool leases local workers of the worker ranks (`Lease`, its id
///   in every relay envelope): a rank's capacity is what it hosts by default; a pool takes
///   what is free, ranks in order, up to its `processes`, and gives it back when the ranks
///   answer its `close`. A pool (or a `Process`) that finds nothing free waits (up to 30 s)
///   for closing pools — ended ones whose ranks have not answered, and closed or terminated
///   ones whose engine has not stopped yet —, then fails with a clear error.
/// - **Exit** (an `atexit` handler the start-up hook registers on rank 0): terminates the live
///   pools, stops the service thread, tells every worker rank to `terminate`, waits up to
///   5 s for their acknowledgements, then finalises MPI — or aborts the job (`MPI_Abort`,
///   status 1) if one does not answer. `MPIEnvironment.finalize` first lets Open MPI's own
///   threads run what `MPI_Init` queued for them (`LibraryThreads`): without a pool MPI starts
///   here, and Open MPI 4.1 would otherwise unload code one of them is about to run.
final class MPIService: @unchecked Sendable {
    static let shared = MPIService()

    static let greetingNanoseconds: UInt64 = 60_000_000_000
    static let drainNanoseconds: UInt64 = 30_000_000_000
    static let exitNanoseconds: UInt64 = 5_000_000_000

    /// A pool's share of the job: its id (in every relay envelope), the ranks it uses and how
    /// many local workers on each, every rank's host (index = rank).
    struct Lease {
        let pool: UInt16
        let ranks: [(rank: Int, count: Int)]
        let hosts: [String]
    }

    /// Messages for one pool that another thread's pump received (rank, envelope and body).
    final class Inbox: @unchecked Sendable {
        private let lock = ConditionLock()
        private var messages: [(rank: Int, bytes: [UInt8])] = []
        let wake: @Sendable () -> Void

        init(wake: @escaping @Sendable () -> Void) { self.wake = wake }

        func append(rank: Int, _ bytes: UnsafeRawBufferPointer) {
            lock.withLock { messages.append((rank, Array(bytes))) }
        }

        var isEmpty: Bool { lock.withLock { messages.isEmpty } }

        func take() -> [(rank: Int, bytes: [UInt8])] {
            lock.withLock {
                let taken = messages
                messages.removeAll()
                return taken
            }
        }
    }

    // MARK: state, under `lock`

    private let lock = ConditionLock()
    private var started = false
    private var starting = false
    private var finished = false
    private var broken: PoolError?
    private var mismatch: PoolError?
    private var hosts: [String] = []
    /// Per rank: local workers it hosts by default, and those leased to live or closing pools.
    private var capacity: [Int] = []
    private var leased: [Int] = []
    /// Per pool: the local workers it leased per rank, until the rank answers its `close`.
    private var leases: [UInt16: [Int: Int]] = [:]
    private var inboxes: [UInt16: Inbox] = [:]
    private var engines: [UInt16: PoolEngine] = [:]
    private var nextPool: UInt16 = 1
    private var threadRunning = false

    // MARK: MPI, under `mpi`

    private let mpi = ConditionLock()
    /// The thread that holds `mpi` (a pump's delivery may send: the engine replaces a worker).
    private var mpiHolder: pthread_t?
    private var communicator: Communicator?
    private var buffer: [UInt8] = []
    /// Per rank: its messages being received (a long one, and what arrived behind it).
    private var receiving: [[Incoming]] = []
    /// Per rank: sends not yet complete.
    private var pending: [[Request]] = []
    /// Object replies and sends of ended pools, not yet complete.
    private var otherSends: [Request] = []
    /// Messages up to this long are received at once (`MPI_Mrecv`): within the eager limit
    /// their data is all here when they are. Longer ones are matched at once but their data
    /// arrives when the rank next calls MPI: `MPI_Mrecv` would hold rank 0 that long.
    static let shortMessageBytes = 4096 - 64
    /// When the last object request arrived (monotonic ns; 0: never). Written by the thread
    /// that pumps, read by the service thread and the pool's engine without the pump's lock:
    /// an atomic (a plain variable is a data race there, ThreadSanitizer).
    private let lastObjectRequestWord = Atomic<UInt64>(0)
    var lastObjectRequest: UInt64 { lastObjectRequestWord.load(ordering: .relaxed) }

    private enum Incoming {
        case started(MatchedReceive)
        case received([UInt8])

        func isComplete() throws -> Bool {
            switch self {
            case .started(let receive): return try receive.request.test() != nil
            case .received: return true
            }
        }

        func withBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
            switch self {
            case .started(let receive): return try receive.withBytes(body)
            case .received(let bytes): return try bytes.withUnsafeBytes(body)
            }
        }
    }

    /// Where the service thread sleeps; a registry change or a pool's end wakes it.
    private let wakeWord = WakeWord()

    // MARK: pools

    /// Leases local workers for a new pool (`perRank` on each rank, nil: each rank's
    /// capacity; at most `limit` in all), starting MPI and greeting the workers the first time.
    func openPool(limit: Int?, perRank: Int?, wake: @escaping @Sendable () -> Void) throws -> Lease {
        try start()
        let deadline = monotonicNanoseconds() &+ Self.drainNanoseconds
        lock.lock()
        defer { lock.unlock() }
        while true {
            if finished { throw PoolError(.closed, "the program is ending and MPI was shut down; no new MPI pool can start") }
            if let broken { throw broken }
            if let mismatch { throw mismatch }
            guard hosts.count > 1 else {
                throw PoolError(.backendUnavailable, "the MPI job has no worker ranks: launch with mpirun -np 2 or more")
            }
            // A pool that ended gives its workers back when its ranks answer `close`: wait.
            if leases.keys.contains(where: { inboxes[$0] == nil }) {
                if monotonicNanoseconds() >= deadline {
                    throw PoolError(
                        .startFailed,
                        "worker ranks have not closed an ended pool's local workers after 30 s (a "
                            + "rank is stuck or lost); restart the job")
                }
                wakeWord.wake()
                _ = lock.wait(until: min(deadline, monotonicNanoseconds() &+ 100_000_000))
                continue
            }
            var ranks: [(rank: Int, count: Int)] = []
            var total = 0
            for rank in 1..<hosts.count {
                let left = (limit ?? .max) - total
                guard left > 0 else { break }
                let wanted = perRank ?? capacity[rank]
                let free = leased[rank] == 0 ? wanted : max(0, min(wanted, capacity[rank] - leased[rank]))
                let count = min(left, free)
                if count > 0 {
                    ranks.append((rank, count))
                    total += count
                }
            }
            if total > 0 {
                let pool = nextPool
                nextPool = nextPool == .max ? 1 : nextPool + 1
                var lease: [Int: Int] = [:]
                for (rank, count) in ranks {
                    leased[rank] += count
                    lease[rank] = count
                }
                leases[pool] = lease
                inboxes[pool] = Inbox(wake: wake)
                return Lease(pool: pool, ranks: ranks, hosts: hosts)
            }
            // A pool closed or terminated but not ended yet (`terminate()` returns before its
            // engine has stopped) gives its workers back soon: wait for it too.
            if engines.values.contains(where: { $0.isClosedOrTerminated }) {
                if monotonicNanoseconds() < deadline {
                    wakeWord.wake()
                    _ = lock.wait(until: min(deadline, monotonicNanoseconds() &+ 100_000_000))
                    continue
                }
                throw PoolError(
                    .backendUnavailable,
                    "no MPI worker is free: pools that were closed or terminated have not given their local workers "
                        + "back after 30 s (a closed pool first finishes its work); join() them first")
            }
            let used = leases.values.reduce(0) { $0 + $1.values.reduce(0, +) }
            throw PoolError(
                .backendUnavailable,
                "no MPI worker is free: the \(used) local workers of this job's worker ranks "
                    + "belong to other live pools; close one first, or give those pools fewer processes")
        }
    }

    /// Records the engine of a pool, so that the exit handler can stop it.
    func attach(pool: UInt16, engine: PoolEngine) {
        lock.withLock { engines[pool] = engine }
    }

    /// A pool ended (its engine thread, after `close` went to its ranks): its inbox goes; its
    /// workers are free again when its ranks answer `close` (perhaps already).
    func detach(pool: UInt16, error: PoolError?) {
        lock.withLock {
            inboxes[pool] = nil
            engines[pool] = nil
            if let error, broken == nil, error.code == .transport { broken = error }
            lock.broadcast()
        }
        wakeWord.wake()
    }

    /// Wakes the service thread (a served object changed on rank 0: its parked requests may
    /// be answerable).
    func wake() {
        wakeWord.wake()
    }

    // MARK: MPI access

    /// Runs `body` with the communicator, holding the MPI (already held by this thread: inside
    /// a pump's delivery).
    func withMPI<T>(_ body: (Communicator) throws -> T) throws -> T {
        let held = holdsMPI
        if !held { lockMPI() }
        defer { if !held { unlockMPI() } }
        guard let communicator else { throw PoolError(.transport, "MPI is not running on rank 0") }
        return try transport { try body(communicator) }
    }

    private var holdsMPI: Bool {
        guard let holder = mpiHolder else { return false }
        return pthread_equal(holder, pthread_self()) != 0
    }

    private func lockMPI() {
        mpi.lock()
        mpiHolder = pthread_self()
    }

    private func tryLockMPI() -> Bool {
        guard mpi.tryLock() else { return false }
        mpiHolder = pthread_self()
        return true
    }

    private func unlockMPI() {
        mpiHolder = nil
        mpi.unlock()
    }

    /// Starts sending `bytes` to `rank` on the pool tag.
    func send(_ bytes: UnsafeRawBufferPointer, toRank rank: Int) throws {
        try withMPI { communicator in
            pending[rank].append(try communicator.isend(bytes, to: rank, tag: MPIProtocol.poolTag))
        }
    }

    /// Incomplete sends to `rank`.
    func pendingSends(toRank rank: Int) -> Int {
        (try? withMPI { _ in pending.indices.contains(rank) ? pending[rank].count : 0 }) ?? 0
    }

    /// Moves MPI for everyone (see the type's doc): completes sends, receives every pool's
    /// messages — `pool`'s to `deliver` (rank, message), the others' into their inboxes —,
    /// serves objects. Returns whether anything moved. `blocking: false`: returns at once if
    /// another thread holds the MPI.
    @discardableResult
    func pump(for pool: UInt16?, blocking: Bool = true, _ deliver: (Int, UnsafeRawBufferPointer) -> Void) throws -> Bool {
        if holdsMPI { return false } // a delivery's own pump: the outer one goes on
        if blocking { lockMPI() } else if !tryLockMPI() { return false }
        defer { unlockMPI() }
        guard let communicator else { return false }
        var woken: Set<UInt16> = []
        let moved = try transport { try pumpLocked(communicator, for: pool, deliver, woken: &woken) }
        if !woken.isEmpty {
            let wakes = lock.withLock { woken.compactMap { inboxes[$0]?.wake } }
            for wake in wakes { wake() }
        }
        return moved
    }

    private func pumpLocked(
        _ communicator: Communicator, for pool: UInt16?, _ deliver: (Int, UnsafeRawBufferPointer) -> Void,
        woken: inout Set<UInt16>
    ) throws -> Bool {
        var moved = false
        for rank in pending.indices {
            while let head = pending[rank].first, try head.test() != nil {
                pending[rank].removeFirst()
                moved = true
            }
        }
        if !otherSends.isEmpty { otherSends = try otherSends.filter { try $0.test() == nil } }
        var received = 0
        var requests = false
        // One probe for both tags a pump takes (pool messages, object requests): each probe that
        // finds nothing yields the CPU inside MPI (`mpi_yield_when_idle`), and a hot round
        // trip's reply waited behind a second one (`Benchmarks/engine-ab.md`, session 13).
        // An object request is received whole, as the object service always did. No control
        // message arrives while pumps run: the greeting ends before the communicator is set
        // here, and `terminateWorkers` holds the MPI after the pools and the service thread ended.
        while received < 256,
            let arrival = try communicator.receiveIfAvailable(
                from: .any, tag: .any, into: &buffer,
                waitingAtMost: { MPIObjectProtocol.isReceivedWhole($0) ? .max : Self.shortMessageBytes })
        {
            received += 1
            switch arrival {
            case .received(let status) where status.tag == MPIObjectProtocol.requestTag:
                handleObjectRequest(from: status.source)
                requests = true
            case .received(let status) where status.tag == MPIObjectProtocol.undeliveredTag:
                buffer.withUnsafeBytes { raw in
                    guard let (local, request, reply) = MPIObjectProtocol.readUndelivered(raw) else { return }
                    MPIObjectRegistry.shared.undo(
                        request: request, reply: reply, from: ObjectRequester.id(rank: status.source, local: Int(local)))
                }
                requests = true
            case .received(let status):
                guard status.tag == MPIProtocol.poolTag, receiving.indices.contains(status.source) else { continue }
                if receiving[status.source].isEmpty {
                    buffer.withUnsafeBytes { route($0, from: status.source, for: pool, deliver, woken: &woken) }
                } else {
                    receiving[status.source].append(.received(buffer)) // after the longer one before it
                }
            case .started(let incoming):
                // As for a short one, only a pool message is routed; a long message of another
                // tag (never expected) is left to complete and dropped.
                if incoming.tag == MPIProtocol.poolTag, receiving.indices.contains(incoming.source) {
                    receiving[incoming.source].append(.started(incoming))
                } else {
                    otherSends.append(incoming.request) // never expected; left to complete
                }
            }
        }
        // Each rank's messages in the order it sent them.
        for rank in receiving.indices {
            while let head = receiving[rank].first, try head.isComplete() {
                receiving[rank].removeFirst()
                received += 1
                head.withBytes { route($0, from: rank, for: pool, deliver, woken: &woken) }
            }
        }
        if try serveObjects(communicator, requestsArrived: requests) { moved = true }
        return moved || received > 0
    }

    /// One message from `rank`: to `deliver` if it is `pool`'s, else to its pool's inbox; a
    /// `closed` also gives the pool's workers on that rank back.
    private func route(
        _ bytes: UnsafeRawBufferPointer, from rank: Int, for pool: UInt16?,
        _ deliver: (Int, UnsafeRawBufferPointer) -> Void, woken: inout Set<UInt16>
    ) {
        guard let envelope = RelayEnvelope.read(bytes) else { return }
        if envelope.kind == RelayEnvelope.Up.closed.rawValue {
            lock.withLock {
                if let count = leases[envelope.pool]?.removeValue(forKey: rank) {
                    leased[rank] -= count
                    if leases[envelope.pool]?.isEmpty == true { leases[envelope.pool] = nil }
                    lock.broadcast()
                }
            }
        }
        if envelope.pool == pool {
            deliver(rank, bytes)
        } else if let inbox = lock.withLock({ inboxes[envelope.pool] }) {
            inbox.append(rank: rank, bytes)
            woken.insert(envelope.pool)
        }
    }

    /// The object request in `buffer` from `rank`: [local worker (UInt32)][request], from the
    /// rank that hosts it (`RankRelay`).
    private func handleObjectRequest(from rank: Int) {
        buffer.withUnsafeBytes { raw in
            guard let local = ObjectRequester.readLocal(raw).map(Int.init) else { return }
            MPIObjectRegistry.shared.handle(
                UnsafeRawBufferPointer(rebasing: raw[4...]), from: ObjectRequester.id(rank: rank, local: local))
        }
    }

    /// Answers the worker ranks' object requests (the pump received them): expires parked ones
    /// whose timeout passed, sends every ready reply. Returns `requestsArrived`.
    private func serveObjects(_ communicator: Communicator, requestsArrived: Bool) throws -> Bool {
        let registry = MPIObjectRegistry.shared
        let moved = requestsArrived
        if moved { lastObjectRequestWord.store(monotonicNanoseconds(), ordering: .relaxed) }
        registry.expire(now: monotonicNanoseconds())
        for reply in registry.takeReplies() {
            otherSends.append(try MPIObjectProtocol.sendRelayed(reply.bytes, to: reply.rank, communicator))
        }
        return moved
    }

    /// Whether something waits to be pumped for `pool`: its inbox, or (if the MPI is free)
    /// an arrived message, a completed send, a pending object reply.
    func hasArrivals(for pool: UInt16) -> Bool {
        if lock.withLock({ inboxes[pool]?.isEmpty == false }) { return true }
        if holdsMPI { return false }
        guard tryLockMPI() else { return false }
        defer { unlockMPI() }
        guard let communicator else { return false }
        do {
            // Any tag: a pool message or an object request (one probe, see `pumpLocked`).
            if try communicator.iprobe(from: .any, tag: .any) != nil { return true }
            if MPIObjectRegistry.shared.hasReplies { return true }
            for rank in pending.indices { if let head = pending[rank].first, try head.test() != nil { return true } }
            for rank in receiving.indices { if let head = receiving[rank].first, try head.isComplete() { return true } }
        } catch {
            return true // the next pump reports it
        }
        return false
    }

    /// The messages other threads' pumps received for `pool`.
    func takeInbox(of pool: UInt16) -> [(rank: Int, bytes: [UInt8])] {
        lock.withLock { inboxes[pool] }?.take() ?? []
    }

    // MARK: start-up

    private func start() throws {
        lock.lock()
        while starting { _ = lock.wait(until: nil) }
        if started || finished || broken != nil {
            lock.unlock()
            if let broken { throw broken }
            return
        }
        starting = true
        lock.unlock()
        var failure: (any Error)?
        do {
            let (comm, greeting) = try greet(try setUp())
            lockMPI()
            communicator = comm
            receiving = Array(repeating: [], count: comm.size)
            pending = Array(repeating: [], count: comm.size)
            unlockMPI()
            lock.withLock {
                hosts = greeting.hosts
                capacity = greeting.workers
                leased = Array(repeating: 0, count: comm.size)
                mismatch = greeting.mismatch
            }
            if MPIObjects.isServing { MPIObjectRegistry.shared.setWaker { MPIService.shared.wake() } }
            try spawnThread(named: "swiftmp-mpi") { [self] in serve() }
            lock.withLock { threadRunning = true }
        } catch {
            failure = error
        }
        lock.withLock {
            starting = false
            if failure == nil { started = true }
            lock.broadcast()
        }
        if let failure { throw failure }
    }

    private func setUp() throws -> Communicator {
        if let communicator = try? withMPI({ $0 }) { return communicator }
        do {
            return try MPIProtocol.start()
        } catch let error as MPIError {
            throw PoolError(.startFailed, "cannot start MPI on rank 0: \(error)")
        }
    }

    private struct Greeting {
        var hosts: [String]
        var workers: [Int]
        var mismatch: PoolError?
    }

    /// Greets every worker rank: build id check, host names, default local workers.
    private func greet(_ comm: Communicator) throws -> (Communicator, Greeting) {
        var greeting = Greeting(
            hosts: Array(repeating: "?", count: max(1, comm.size)),
            workers: Array(repeating: 1, count: max(1, comm.size)))
        greeting.hosts[0] = (try? MPIEnvironment.processorName) ?? "?"
        let ours = BuildID.current
        let hello = MPIProtocol.controlMessage(.hello) {
            $0.write(ours.hash)
            $0.write(ours.size)
            $0.write(greeting.hosts[0]) // a rank on the same node leaves rank 0 its core
        }
        var missing = Set(1..<comm.size)
        var mismatched: [(rank: Int, build: BuildID)] = []
        var buffer: [UInt8] = []
        try transport {
            for rank in missing {
                try hello.withUnsafeBytes { try comm.send($0, to: rank, tag: MPIProtocol.controlTag) }
            }
            let deadline = monotonicNanoseconds() &+ Self.greetingNanoseconds
            var backoff = IdleBackoff()
            while !missing.isEmpty {
                guard let status = try comm.receiveIfAvailable(from: .any, tag: .value(MPIProtocol.controlTag), into: &buffer) else {
                    if monotonicNanoseconds() > deadline {
                        throw PoolError(
                            .startFailed,
                            "worker ranks \(missing.sorted()) did not answer rank 0's start-up handshake "
                                + "within 60 s: start the same program on every rank, without SWIFTMP_MPI_MODE=spmd")
                    }
                    backoff.pause(until: deadline)
                    continue
                }
                backoff.noteActivity()
                let reply = try buffer.withUnsafeBytes { raw throws -> (ok: Bool, host: String, build: BuildID, workers: Int)? in
                    var reader = WireReader(raw)
                    guard try reader.read(UInt8.self) == MPIProtocol.Control.helloReply.rawValue else { return nil }
                    let ok = try reader.read(UInt8.self) == 1
                    let host = try reader.read(String.self)
                    let build = BuildID(hash: try reader.read(UInt64.self), size: try reader.read(UInt64.self))
                    let workers = ok ? Int(try reader.read(UInt32.self)) : 1
                    return (ok, host, build, workers)
                }
                guard let reply, missing.remove(status.source) != nil else { continue }
                greeting.hosts[status.source] = reply.host
                greeting.workers[status.source] = max(1, reply.workers)
                if !reply.ok { mismatched.append((status.source, reply.build)) }
            }
        }
        if let first = mismatched.min(by: { $0.rank < $1.rank }) {
            let ranks = mismatched.map(\.rank).sorted()
            greeting.mismatch = PoolError(
                .startFailed,
                "worker rank \(first.rank) on \(greeting.hosts[first.rank]) runs another "
                    + "build than rank 0 on \(greeting.hosts[0]) (\(first.build) vs \(ours))"
                    + "\(ranks.count > 1 ? "; ranks \(ranks) all differ" : ""): "
                    + "the executables differ: rebuild and copy the same binary to every node")
        }
        return (comm, greeting)
    }

    // MARK: the service thread

    /// Pumps when nobody else does: every millisecond at most when idle, sooner after
    /// activity or a wake-up. Leaves `ForkGuard` activity only while it sleeps.
    /// The service thread's longest sleep while a pool's engine pumps.
    static let asidePoolSleep: Int64 = 20_000_000

    private func serve() {
        ForkGuard.enterActivity()
        defer { ForkGuard.leaveActivity() }
        var backoff = IdleBackoff()
        while !lock.withLock({ finished }) {
            wakeWord.arm()
            // While a pool lives its engine pumps (no hand-off on the hot path); the service
            // thread pumps only when no pool does.
            let idle = lock.withLock { inboxes.isEmpty }
            let moved = idle ? ((try? pump(for: nil, blocking: false) { _, _ in }) ?? false) : false
            if moved {
                backoff.noteActivity()
                continue
            }
            // While a pool lives there is nothing to poll here: wake only for parked requests'
            // deadlines (or when woken: a pool detached, an object changed).
            let longest = idle ? IdleBackoff.longestSleep : Self.asidePoolSleep
            var deadline = monotonicNanoseconds() &+ UInt64(longest)
            if let parked = MPIObjectRegistry.shared.nextDeadline { deadline = min(deadline, parked) }
            ForkGuard.whileBlocked {
                backoff.pause(
                    until: deadline, longest: longest,
                    eager: lastObjectRequest != 0
                        && monotonicNanoseconds() &- lastObjectRequest < 100_000_000
                ) { wakeWord.sleep(nanoseconds: $0) }
            }
        }
        lock.withLock {
            threadRunning = false
            lock.broadcast()
        }
    }

    // MARK: exit

    /// The exit handler: stops the live pools and the service thread, terminates every worker
    /// rank, finalises MPI.
    func atExit() {
        let live = lock.withLock { () -> [PoolEngine] in
            finished = true
            lock.broadcast()
            return Array(engines.values)
        }
        for engine in live {
            engine.terminate()
            if !engine.join(timeout: Double(Self.exitNanoseconds) / 1e9) {
                fail("an MPI pool's thread did not stop within 5 s of the program's end")
            }
        }
        wakeWord.wake()
        let end = monotonicNanoseconds() &+ Self.exitNanoseconds
        lock.withLock {
            while threadRunning && monotonicNanoseconds() < end { _ = lock.wait(until: end) }
        }
        if MPIEnvironment.isFinalized { return }
        if MPILaunch.worldSizeFromEnvironment == 1 && !MPIEnvironment.isInitialized { return }
        do {
            let comm = try setUp()
            lockMPI()
            defer { unlockMPI() }
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

    /// Under `mpi`.
    private func terminateWorkers(_ comm: Communicator) throws {
        let message = MPIProtocol.controlMessage(.terminate)
        var missing = Set(1..<comm.size)
        var buffer: [UInt8] = []
        try transport {
            let sends = try missing.map { rank in
                try message.withUnsafeBytes { try comm.isend($0, to: rank, tag: MPIProtocol.controlTag) }
            }
            let deadline = monotonicNanoseconds() &+ Self.exitNanoseconds
            var backoff = IdleBackoff()
            while !missing.isEmpty {
                // Anything else still in flight (results of a terminated pool, `closed`) is dropped.
                guard let status = try comm.receiveIfAvailable(from: .any, tag: .any, into: &buffer) else {
                    if monotonicNanoseconds() > deadline {
                        throw PoolError(
                            .transport,
                            "worker ranks \(missing.sorted()) did not stop within 5 s of the program's "
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
                    let local = buffer.withUnsafeBytes { ObjectRequester.readLocal($0).map(Int.init) ?? 0 }
                    _ = try MPIObjectProtocol.sendRelayed(
                        MPIObjectProtocol.failure(.failed, Self.endingMessage),
                        to: ObjectRequester.id(rank: status.source, local: local), comm
                    ).wait()
                }
            }
            try Request.waitAll(sends + pending.flatMap { $0 } + otherSends)
            pending = pending.map { _ in [] }
            otherSends = []
        }
    }

    static let endingMessage =
        "the program is ending on rank 0, which no longer serves shared objects: "
        + "let the tasks that use them finish before the program ends"
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
    MPIService.shared.atExit()
}
#endif
