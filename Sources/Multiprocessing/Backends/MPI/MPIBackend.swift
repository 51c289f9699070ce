#if MPI
import MPI
#if canImport(Glibc)
import Glibc
#endif

/// Worker ranks of an mpirun job as a pool's workers: slot i is rank i + 1 (ARCHITECTURE.md §3, §8).
///
/// Every message is one MPI message on the job's duplicated world communicator
/// (`MPIProtocol.poolTag`), without the frame header. Sends are non-blocking (`MPI_Isend`,
/// the request kept until complete; a worker with 16 incomplete sends takes no more);
/// receives are matched probes (`MPI_Improbe` + `MPI_Mrecv`) that never wait. Waiting is
/// test-then-sleep (`IdleBackoff`), cut short by `wake()`. Only the engine thread calls it.
///
/// A rank cannot be replaced: one that dies ends the job (MPI's fault model).
final class MPIBackend: PoolBackend, @unchecked Sendable {
    static let maxPendingSends = 16
    static let endedMessage = "the MPI pool ended while this request waited in rank 0 (shared objects are served while "
        + "an MPI pool is live): keep the pool open until its tasks are done"

    let workerCount: Int
    let canReplaceWorkers = false
    /// A worker rank sends its result without waiting (`MPIWorker`); past Open MPI's eager
    /// limit (4 KiB on shared memory with `btl_vader_single_copy_mechanism=none`, 64 KiB over
    /// TCP) the message goes by rendezvous, whose data moves only when the worker next calls
    /// MPI — after its next task. Measured on Mandelbrot rows (32 KiB results): with two
    /// tasks in hand a worker waited for rank 0 before every other task.
    let lateReplyBytes: Int? = MPIBackend.shortMessageBytes
    private let communicator: Communicator
    private let hosts: [String]      // per slot
    private let rootHost: String
    private let wakeWord = WakeWord()

    // Engine thread only.
    private var pending: [[Request]]
    private var stopSent: [Bool]
    private var stopped: [Bool]
    private var buffer: [UInt8] = []
    /// Per worker, its messages being received, oldest first. A result longer than the
    /// eager limit is matched at once but its data arrives only when the worker next calls
    /// MPI (after its next task): `MPI_Mrecv` would hold rank 0 — and every other worker —
    /// that long, spinning.
    private var receiving: [[Incoming]]
    /// Messages up to this long are received at once (`MPI_Mrecv`): within the eager limit
    /// their data is all here when they are.
    static let shortMessageBytes = 4096 - 64

    /// A worker's message: being received, or short and received behind a longer one.
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

        var request: Request? {
            if case .started(let receive) = self { return receive.request }
            return nil
        }
    }
    /// Receives of messages from ranks outside the pool (never expected), left to complete.
    private var strays: [Request] = []
    private var failure: PoolError?
    private var backoff = IdleBackoff()
    private var closed = false
    /// Whether this pool serves rank 0's shared objects to the workers (`MPIObjects`).
    private let servesObjects = MPIObjects.isServing
    /// Incomplete sends of object-service replies.
    private var objectSends: [Request] = []

    /// Takes the job's worker ranks (at most `limit` of them) for a new pool.
    init(limit: Int?) throws {
        let lease = try MPIRoot.shared.openPool()
        let available = lease.hosts.count - 1
        guard available >= 1 else {
            MPIRoot.shared.closePool(draining: [], sends: [], error: nil)
            throw PoolError(.backendUnavailable, "the MPI job has no worker ranks: launch with mpirun -np 2 or more")
        }
        workerCount = min(limit ?? available, available)
        communicator = lease.communicator
        hosts = Array(lease.hosts[1...workerCount])
        rootHost = lease.hosts[0]
        pending = Array(repeating: [], count: workerCount)
        receiving = Array(repeating: [], count: workerCount)
        stopSent = Array(repeating: false, count: workerCount)
        stopped = Array(repeating: false, count: workerCount)
        if servesObjects {
            MPIObjectRegistry.shared.setWaker { [weak self] in self?.wake() }
        }
    }

    var summary: String {
        let distinct = Set(hosts + [rootHost]).sorted()
        return "mpi, \(workerCount) worker ranks (ranks 1…\(workerCount)) on \(distinct.count) "
            + "host\(distinct.count == 1 ? "" : "s") (\(distinct.joined(separator: ", ")))"
    }

    /// The ranks already run their serve loop (the start-up hook); `init` greeted them.
    func start() throws {}

    func send(_ message: inout WireWriter, to worker: Int) {
        MessageBuffer.withPayload(message) { send(payload: $0, to: worker) }
    }

    func stop(worker: Int) {
        stopSent[worker] = true
        MasterCodec.stop(into: &scratch)
        send(&scratch, to: worker)
    }

    /// Builds `stop` messages.
    private var scratch = WireWriter(capacity: 64)

    private func send(payload: UnsafeRawBufferPointer, to worker: Int) {
        guard !closed, failure == nil else { return }
        do {
            pending[worker].append(try communicator.isend(payload, to: worker + 1, tag: MPIProtocol.poolTag))
        } catch {
            failure = PoolError(.transport, "cannot send to worker rank \(worker + 1) on \(hosts[worker]): \(error)")
        }
        backoff.noteActivity()
    }

    func canAccept(worker: Int) -> Bool {
        pending[worker].count < Self.maxPendingSends
    }

    /// Forgets completed sends; returns whether any completed.
    private func completeSends() throws -> Bool {
        var completed = false
        for worker in 0..<workerCount {
            while let head = pending[worker].first, try head.test() != nil {
                pending[worker].removeFirst()
                completed = true
            }
        }
        return completed
    }

    func poll(_ handler: (BackendEvent) -> Void) -> Bool {
        if let failure {
            handler(.failed(failure))
            self.failure = nil
            closed = true
            return true
        }
        var progressed = false
        do {
            progressed = try completeSends()
            var received = 0
            while received < 256,
                  let arrival = try communicator.receiveIfAvailable(from: .any, tag: .value(MPIProtocol.poolTag), into: &buffer,
                                                                     waitingAtMost: Self.shortMessageBytes) {
                received += 1
                switch arrival {
                case .received(let status):
                    let worker = status.source - 1
                    guard worker >= 0 && worker < workerCount else { continue }
                    if receiving[worker].isEmpty {
                        buffer.withUnsafeBytes { bytes in
                            if WorkerReply.isStopped(bytes) { stopped[worker] = true }
                            handler(.decoding(bytes, from: worker))
                        }
                    } else {
                        receiving[worker].append(.received(buffer))  // after the longer one before it
                    }
                case .started(let incoming):
                    let worker = incoming.source - 1
                    if worker >= 0 && worker < workerCount {
                        receiving[worker].append(.started(incoming))
                    } else {
                        strays.append(incoming.request)
                    }
                }
            }
            if !strays.isEmpty { strays = try strays.filter { try $0.test() == nil } }
            // Each worker's messages in the order it sent them.
            for worker in 0..<workerCount {
                while let head = receiving[worker].first, try head.isComplete() {
                    receiving[worker].removeFirst()
                    received += 1
                    head.withBytes { bytes in
                        if WorkerReply.isStopped(bytes) { stopped[worker] = true }
                        handler(.decoding(bytes, from: worker))
                    }
                }
            }
            progressed = progressed || received > 0
            if servesObjects, try serveObjects() { progressed = true }
        } catch {
            failure = PoolError(.transport, "MPI failed between rank 0 and the worker ranks: \(error)")
            return true
        }
        if progressed { backoff.noteActivity() }
        return progressed
    }

    /// Answers the worker ranks' object requests (rank 0's object service, ARCHITECTURE.md §8):
    /// receives them, expires parked ones whose timeout passed, sends every ready reply.
    /// Returns whether anything moved.
    private func serveObjects() throws -> Bool {
        let registry = MPIObjectRegistry.shared
        var moved = false
        while let status = try communicator.receiveIfAvailable(from: .any, tag: .value(MPIObjectProtocol.requestTag), into: &buffer) {
            buffer.withUnsafeBytes { registry.handle($0, from: status.source) }
            moved = true
        }
        if moved { lastObjectRequest = monotonicNanoseconds() }
        registry.expire(now: monotonicNanoseconds())
        try sendObjectReplies()
        objectSends = try objectSends.filter { try $0.test() == nil }
        return moved
    }

    private func sendObjectReplies() throws {
        for reply in MPIObjectRegistry.shared.takeReplies() {
            objectSends.append(try reply.bytes.withUnsafeBytes {
                try communicator.isend($0, to: reply.rank, tag: MPIObjectProtocol.replyTag)
            })
        }
    }

    /// With tasks in flight, sleeps are capped at 100 µs while the tasks' length is unknown
    /// or short. Workers send results without waiting for rank 0 and hold a further task, so
    /// a short sleep costs them nothing, while each rank-0 wake-up preempts a worker on a full
    /// machine (measured with 2 workers on 2 cores, π efficiency: 0.98 with 100 µs, 0.94
    /// with 300 µs, 0.80 with 1 ms — with a fixed cap, before the cap followed the tasks).
    static let busySleep: Int64 = 100_000
    /// With long tasks the cap is a tenth of the time between replies, at most 2 ms: a
    /// worker still has its next task in hand when rank 0 answers late, and rank 0 wakes
    /// ~10 times per task instead of every 100 µs.
    static let longestBusySleep: Int64 = 2_000_000
    /// Replies further apart than this: no spinning or yielding after activity either (each
    /// reply used to cost rank 0 up to 300 µs of spin-and-yield while the workers computed).
    static let quietReplyInterval: Int64 = 1_000_000

    /// Tasks that use rank 0's shared objects wait for its answers: for this long after an
    /// object request, rank 0 polls as for short tasks.
    static let objectActivityNanoseconds: UInt64 = 100_000_000

    /// Set by the engine before each wait (`pace(replyEvery:)`).
    private var replyInterval: Int64 = 0
    /// When the last object request arrived (monotonic ns; 0: never).
    private var lastObjectRequest: UInt64 = 0

    func pace(replyEvery nanoseconds: Int64) {
        replyInterval = nanoseconds
    }

    func waitForActivity(spinning: Bool, timeoutNanoseconds: Int64, ready: () -> Bool) {
        var interval = replyInterval
        if lastObjectRequest != 0, monotonicNanoseconds() &- lastObjectRequest < Self.objectActivityNanoseconds {
            interval = 0
        }
        let longest = min(Self.longestBusySleep, max(Self.busySleep, interval / 10))
        wait(timeoutNanoseconds: timeoutNanoseconds, longestSleep: longest,
             eager: interval < Self.quietReplyInterval, ready: ready)
    }

    /// Nothing in flight: sleeps grow to 1 ms (no busy core while the program runs).
    func waitIdle(timeoutNanoseconds: Int64, ready: () -> Bool) {
        wait(timeoutNanoseconds: timeoutNanoseconds, longestSleep: IdleBackoff.longestSleep, ready: ready)
    }

    private func wait(timeoutNanoseconds: Int64, longestSleep: Int64, eager: Bool = true, ready: () -> Bool) {
        var deadline = monotonicNanoseconds() &+ UInt64(max(0, timeoutNanoseconds))
        if servesObjects, let parked = MPIObjectRegistry.shared.nextDeadline { deadline = min(deadline, parked) }
        while true {
            wakeWord.arm()
            if ready() || failure != nil { return }
            do {
                if try communicator.iprobe(from: .any, tag: .value(MPIProtocol.poolTag)) != nil { return }
                if servesObjects {
                    if MPIObjectRegistry.shared.hasReplies { return }
                    if try communicator.iprobe(from: .any, tag: .value(MPIObjectProtocol.requestTag)) != nil { return }
                }
                if try completeSends() { return }
                for worker in 0..<workerCount {
                    if let head = receiving[worker].first, try head.isComplete() { return }
                }
            } catch {
                failure = PoolError(.transport, "MPI failed between rank 0 and the worker ranks: \(error)")
                return
            }
            if monotonicNanoseconds() >= deadline { return }
            backoff.pause(until: deadline, longest: longestSleep, eager: eager) { wakeWord.sleep(nanoseconds: $0) }
        }
    }

    func wake() {
        wakeWord.wake()
    }

    func replace(worker: Int) throws {
        throw PoolError(.startFailed, "MPI worker ranks cannot be replaced: \(identity(of: worker))")
    }

    func identity(of worker: Int) -> WorkerDied {
        WorkerDied(rank: worker + 1, host: hosts[worker])
    }

    /// A rank cannot be killed without ending the job; its memory is not shared with rank 0.
    func kill(worker: Int) -> Bool { false }
    func progress(of worker: Int) -> WorkerProgress? { nil }

    func sendAttachments(_ segments: [SegmentStorage], to worker: Int) throws {
        try refusingAttachments(segments, summary: summary)
    }

    /// Sends `stop` to every worker that has not had one, waits until `deadline` for their
    /// acknowledgements (dropping any other reply), then gives the MPI back to `MPIRoot` with
    /// the workers still busy — it drains them before the next pool, or at exit.
    func shutdown(deadline: UInt64) {
        if servesObjects {
            MPIObjectRegistry.shared.setWaker(nil)
            MPIObjectRegistry.shared.failParked(Self.endedMessage)
            if !closed { try? transport { try sendObjectReplies() } }
        }
        guard !closed else {
            MPIRoot.shared.closePool(draining: [], sends: pending.flatMap { $0 } + receiving.flatMap { $0.compactMap(\.request) } + strays,
                                     error: failure)
            return
        }
        closed = true
        var shutdownError: PoolError?
        do {
            try transport {
                MasterCodec.stop(into: &scratch)
                for worker in 0..<workerCount where !stopSent[worker] {
                    stopSent[worker] = true
                    pending[worker].append(try MessageBuffer.withPayload(scratch) {
                        try communicator.isend($0, to: worker + 1, tag: MPIProtocol.poolTag)
                    })
                }
                while stopped.contains(false) {
                    _ = try completeSends()
                    for worker in 0..<workerCount {
                        while let head = receiving[worker].first, try head.isComplete() {
                            receiving[worker].removeFirst()
                            if head.withBytes({ WorkerReply.isStopped($0) }) { stopped[worker] = true }
                        }
                    }
                    if servesObjects { _ = try serveObjects() }
                    if let status = try communicator.receiveIfAvailable(from: .any, tag: .value(MPIProtocol.poolTag), into: &buffer) {
                        let worker = status.source - 1
                        if worker >= 0 && worker < workerCount && buffer.withUnsafeBytes({ WorkerReply.isStopped($0) }) {
                            stopped[worker] = true
                        }
                        backoff.noteActivity()
                        continue
                    }
                    if monotonicNanoseconds() >= deadline { break }
                    backoff.pause(until: deadline)
                }
                _ = try completeSends()
                if servesObjects {
                    MPIObjectRegistry.shared.failParked(Self.endedMessage)
                    try sendObjectReplies()
                }
            }
        } catch let caught as PoolError {
            shutdownError = caught
        } catch {
            shutdownError = PoolError(.transport, "\(error)")
        }
        let busy = (0..<workerCount).filter { !stopped[$0] }.map { $0 + 1 }
        // Receives still in progress complete (and are dropped) like the leftover sends.
        let unfinished = pending.flatMap { $0 } + objectSends + receiving.flatMap { $0.compactMap(\.request) } + strays
        MPIRoot.shared.closePool(draining: busy, sends: unfinished, error: shutdownError)
        pending = Array(repeating: [], count: workerCount)
        receiving = Array(repeating: [], count: workerCount)
        strays = []
        objectSends = []
    }
}
#endif
