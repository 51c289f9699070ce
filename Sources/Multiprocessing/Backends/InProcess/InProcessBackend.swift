#if canImport(Glibc)
import Glibc
#endif

/// A pool without worker processes: the engine thread runs each task itself, when the task
/// is sent. Used under `mpirun -np 1`, where the job has no worker ranks, so that the same
/// program still works (serially).
final class InProcessBackend: PoolBackend, @unchecked Sendable {
    let workerCount = 1
    let canReplaceWorkers = false
    let lateReplyBytes: Int? = nil
    let summary: String
    private let wakeWord = WakeWord()

    // Engine thread only.
    private var runtime = WorkerRuntime()
    private var replies: [[UInt8]] = []
    private var scratch = WireWriter(capacity: 64)

    init(summary: String) {
        self.summary = summary
    }

    func start() throws {}

    func send(_ message: inout WireWriter, to worker: Int) {
        let action = MessageBuffer.withPayload(message) { runtime.handle($0) }
        switch action {
        case .none:
            break
        case .reply:
            replies.append(Array(runtime.reply.bytes[MessageBuffer.headroom...]))
        case .stop:
            replies.append(Array(runtime.reply.bytes[MessageBuffer.headroom...]))
            runtime = WorkerRuntime()
        }
    }

    func stop(worker: Int) {
        MasterCodec.stop(into: &scratch)
        send(&scratch, to: worker)
    }

    /// A couple of results waiting: let the engine deliver them before running more.
    func canAccept(worker: Int) -> Bool {
        replies.count < 2
    }

    func poll(_ handler: (BackendEvent) -> Void) -> Bool {
        guard !replies.isEmpty else { return false }
        let taken = replies
        replies.removeAll(keepingCapacity: true)
        for reply in taken {
            reply.withUnsafeBytes { handler(.decoding($0, from: 0)) }
        }
        return true
    }

    func waitForActivity(spinning: Bool, timeoutNanoseconds: Int64, ready: () -> Bool) {
        wakeWord.arm()
        if !replies.isEmpty || ready() { return }
        wakeWord.sleep(nanoseconds: timeoutNanoseconds)
    }

    func waitIdle(timeoutNanoseconds: Int64, ready: () -> Bool) {
        waitForActivity(spinning: false, timeoutNanoseconds: timeoutNanoseconds, ready: ready)
    }

    func pace(replyEvery nanoseconds: Int64) {}

    func wake() {
        wakeWord.wake()
    }

    func replace(worker: Int) throws {
        throw PoolError(.startFailed, "the in-process worker cannot be replaced")
    }

    func identity(of worker: Int) -> WorkerDied {
        WorkerDied(pid: getpid())
    }

    /// The tasks run on the engine's thread: nothing to kill, nothing to withdraw.
    func kill(worker: Int) -> Bool { false }
    func progress(of worker: Int) -> WorkerProgress? { nil }

    func sendAttachments(_ segments: [SegmentStorage], to worker: Int) throws {
        try refusingAttachments(segments, summary: summary)
    }

    func shutdown(deadline: UInt64) {
        replies.removeAll()
    }
}
