#if canImport(Glibc)
import Glibc
#endif

/// A pool without worker processes: one thread of this process runs the tasks, in the order
/// sent. Used under `mpirun -np 1`, where the job has no worker ranks, so that the same
/// program still works (serially). The engine's thread stays free: replies, time limits
/// and cancellation are handled as with any backend (a task past its limit is given up —
/// its thread cannot be killed — and its late result dropped).
final class InProcessBackend: PoolBackend, @unchecked Sendable {
    let workerCount = 1
    let canReplaceWorkers = false
    let lateReplyBytes: Int? = nil
    let summary: String
    private let wakeWord = WakeWord()

    // Shared with the task thread, under `lock`.
    private let lock = ConditionLock()
    private var inbox: [[UInt8]] = []
    private var replies: [[UInt8]] = []
    private var ending = false
    private var threadEnded = false
    private var scratch = WireWriter(capacity: 64)

    init(summary: String) {
        self.summary = summary
    }

    func start() throws {
        try spawnThread(named: "swiftmp-inproc") { [self] in serve() }
    }

    /// The task thread: runs each message through a `WorkerRuntime`, as a worker would.
    private func serve() {
        var runtime = WorkerRuntime()
        while true {
            let message: [UInt8]? = lock.withLock {
                while inbox.isEmpty && !ending { lock.wait(until: nil) }
                return inbox.isEmpty ? nil : inbox.removeFirst()
            }
            guard let message else { break }
            let action = message.withUnsafeBytes { runtime.handle($0) }
            if case .none = action { continue }
            let reply = Array(runtime.reply.bytes[MessageBuffer.headroom...])
            if case .stop = action { runtime = WorkerRuntime() }
            lock.withLock { replies.append(reply) }
            wakeWord.wake()
        }
        lock.withLock {
            threadEnded = true
            lock.broadcast()
        }
    }

    func send(_ message: inout WireWriter, to worker: Int) {
        let payload = MessageBuffer.withPayload(message) { Array($0) }
        lock.withLock {
            inbox.append(payload)
            lock.broadcast()
        }
    }

    func stop(worker: Int) {
        MasterCodec.stop(into: &scratch)
        send(&scratch, to: worker)
    }

    func canAccept(worker: Int) -> Bool {
        lock.withLock { inbox.count < 4 }
    }

    func poll(_ handler: (BackendEvent) -> Void) -> Bool {
        let taken: [[UInt8]] = lock.withLock {
            defer { replies.removeAll(keepingCapacity: true) }
            return replies
        }
        for reply in taken {
            reply.withUnsafeBytes { handler(.decoding($0, from: 0)) }
        }
        return !taken.isEmpty
    }

    func waitForActivity(spinning: Bool, timeoutNanoseconds: Int64, ready: () -> Bool) {
        wakeWord.arm()
        if lock.withLock({ !replies.isEmpty }) || ready() { return }
        wakeWord.sleep(nanoseconds: timeoutNanoseconds)
    }

    func waitIdle(timeoutNanoseconds: Int64, ready: () -> Bool) {
        waitForActivity(spinning: false, timeoutNanoseconds: timeoutNanoseconds, ready: ready)
    }

    func pace(replyEvery nanoseconds: Int64) {}

    func wake() {
        wakeWord.wake()
    }

    func replace(worker: Int) throws -> ReplacementStart {
        throw PoolError(.startFailed, "the in-process worker cannot be replaced")
    }

    func identity(of worker: Int) -> WorkerDied {
        WorkerDied(pid: getpid())
    }

    /// A thread cannot be killed; its memory is the engine's, but it runs tasks in the order
    /// sent and never skips one, so there is nothing to withdraw.
    func kill(worker: Int) -> Bool { false }
    func progress(of worker: Int) -> WorkerProgress? { nil }

    func sendAttachments(_ segments: [SegmentStorage], to worker: Int) throws {
        try refusingAttachments(segments, summary: summary)
    }
    func finalProgress(of worker: Int) -> (taken: UInt32, input: Int)? { nil }

    /// Lets the task thread finish what it runs (until `deadline`), then leaves it: a task
    /// that never ends keeps its thread, not the program.
    func shutdown(deadline: UInt64) {
        lock.withLock {
            ending = true
            inbox.removeAll()
            lock.broadcast()
            while !threadEnded && monotonicNanoseconds() < deadline {
                _ = lock.wait(until: deadline)
            }
        }
    }
}
