#if canImport(Glibc)
import Glibc
#endif

/// A pool without worker processes: the engine thread runs each task itself, when the task
/// is sent. Used under `mpirun -np 1`, where the job has no worker ranks, so that the same
/// program still works (serially).
final class InProcessBackend: PoolBackend, @unchecked Sendable {
    let workerCount = 1
    let framed = false
    let canReplaceWorkers = false
    let summary: String
    private let wakeWord = WakeWord()

    // Engine thread only.
    private var runtime = WorkerRuntime(framed: false)
    private var replies: [[UInt8]] = []

    init(summary: String) {
        self.summary = summary
    }

    func start() throws {}

    func send(_ frame: UnsafeRawBufferPointer, to worker: Int) {
        switch runtime.handle(frame) {
        case .none:
            break
        case .reply:
            replies.append(runtime.frame.bytes)
        case .stop:
            replies.append(runtime.frame.bytes)
            runtime = WorkerRuntime(framed: false)
        }
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
            reply.withUnsafeBytes { handler(.message(worker: 0, $0)) }
        }
        return true
    }

    func waitForActivity(spinning: Bool, timeoutNanoseconds: Int64, ready: () -> Bool) {
        wakeWord.arm()
        if !replies.isEmpty || ready() { return }
        wakeWord.sleep(nanoseconds: timeoutNanoseconds)
    }

    func wake() {
        wakeWord.wake()
    }

    func replace(worker: Int) throws {
        throw PoolError(.startFailed, "the in-process worker cannot be replaced")
    }

    func identity(of worker: Int) -> WorkerDied {
        WorkerDied(pid: getpid())
    }

    func shutdown(deadline: UInt64) {
        replies.removeAll()
    }
}
