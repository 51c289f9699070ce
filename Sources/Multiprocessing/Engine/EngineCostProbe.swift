#if canImport(Glibc)
import Glibc
#endif

/// The engine's own cost per task, without a transport or another process (`swiftmp bench
/// engine`): a `map` driven step by step on the calling thread through `InlineBackend`, whose
/// workers answer each chunk at once, inline. What it measures is the floor under every
/// backend's dispatch cost — what rank 0 pays per chunk under mpirun however fast the ranks
/// answer: the ledger, the worker table, encoding inputs, decoding and delivering outputs.
@_spi(Diagnostics)
public enum EngineCostProbe {
    /// Nanoseconds of this thread's CPU time per input for a map of `tasks` integer squares at
    /// `chunkSize` over `workers` slots (median of `repetitions`); checks the results. With
    /// `lanes`, each slot is a scheduling slot of that many processes (an MPI rank that
    /// schedules its local workers, `RankScheduling.node`): the engine sends it bundles, which it
    /// answers inline, whole.
    public static func nanosecondsPerTask(
        tasks: Int, chunkSize: Int, workers: Int, repetitions: Int, lanes: Int? = nil
    ) throws -> Double {
        var costs: [Double] = []
        let inputs = Array(0..<tasks)
        for _ in 0..<max(1, repetitions) {
            let backend = InlineBackend(workers: workers, lanes: lanes)
            let engine = PoolEngine(backend: backend, maxTasksPerChild: nil, initializer: nil)
            let outcome = Completion<[Int]>()
            let job = BatchJob<SquareProbe>(
                function: try FunctionDefinition.make(SquareProbe()), options: .none, inputs: inputs,
                chunkSize: chunkSize
            ) { outcome.complete($0) }
            try engine.submit(job)
            let start = threadCPUNanoseconds()
            while !outcome.isDone {
                _ = engine.step()
            }
            costs.append(Double(threadCPUNanoseconds() - start) / Double(tasks))
            guard case .success(let results) = outcome.outcome, results.count == tasks,
                results.enumerated().allSatisfy({ $0.element == $0.offset &* $0.offset })
            else {
                throw PoolError(.encoding, "the engine probe's map returned a wrong result")
            }
            engine.terminate()
            _ = engine.step()
        }
        costs.sort()
        return costs[costs.count / 2]
    }

    private static func threadCPUNanoseconds() -> UInt64 {
        var now = timespec()
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &now)
        return UInt64(now.tv_sec) * 1_000_000_000 + UInt64(now.tv_nsec)
    }
}

/// The probe's task (at file scope: its workers find it by name, as any worker would).
struct SquareProbe: ParallelFunction {
    func callAsFunction(_ x: Int) -> Int { x &* x }
}

/// Workers that answer inline: `send` runs the message through the slot's `WorkerRuntime` at
/// once and keeps the reply for the next `poll`. No threads, no processes (`EngineCostProbe`).
final class InlineBackend: PoolBackend, @unchecked Sendable {
    let workerCount: Int
    let canReplaceWorkers = false
    let lateReplyBytes: Int? = nil
    let summary = "inline"
    private let runtimes: [WorkerRuntime]
    private var replies: [(worker: Int, bytes: [UInt8])] = []
    private var scratch = WireWriter(capacity: 64)
    private let laneCount: Int?

    init(workers: Int, lanes: Int? = nil) {
        workerCount = workers
        laneCount = lanes
        runtimes = (0..<workers).map { _ in WorkerRuntime() }
    }

    var schedulesInputs: Bool { laneCount != nil }
    func lanes(of worker: Int) -> Int { laneCount ?? 1 }

    func start() throws {}

    func send(_ message: inout WireWriter, to worker: Int) {
        let runtime = runtimes[worker]
        let isBundle = MessageBuffer.withPayload(message) { $0.first == MasterMessage.bundle.rawValue }
        if isBundle {
            // A scheduling slot's bundle, run whole as one chunk: its header without the chunk
            // size and the time limit.
            MessageBuffer.withPayload(message) { payload in
                var reader = WireReader(payload)
                _ = try? reader.read(UInt8.self)
                let task = (try? reader.read(UInt64.self)) ?? 0
                let function = (try? reader.read(UInt32.self)) ?? 0
                _ = try? reader.read(UInt32.self)
                _ = try? reader.read(UInt64.self)
                MasterCodec.beginChunk(task: task, function: function, into: &scratch)
                scratch.writeRaw(UnsafeRawBufferPointer(rebasing: payload[reader.offset...]))
            }
            swap(&scratch, &message)
        }
        let action = MessageBuffer.withPayload(message) { runtime.handle($0) }
        if case .none = action { return }
        replies.append((worker, MessageBuffer.withPayload(runtime.reply) { Array($0) }))
    }

    func stop(worker: Int) {
        MasterCodec.stop(into: &scratch)
        send(&scratch, to: worker)
    }

    func canAccept(worker: Int) -> Bool { true }

    func poll(_ handler: (BackendEvent) -> Void) -> Bool {
        guard !replies.isEmpty else { return false }
        let taken = replies
        replies.removeAll(keepingCapacity: true)
        for (worker, bytes) in taken { bytes.withUnsafeBytes { handler(.decoding($0, from: worker)) } }
        return true
    }

    func waitForActivity(spinning: Bool, timeoutNanoseconds: Int64, ready: () -> Bool) {}
    func waitIdle(timeoutNanoseconds: Int64, ready: () -> Bool) {}
    func pace(replyEvery nanoseconds: Int64) {}
    func wake() {}
    func replace(worker: Int) throws -> ReplacementStart { throw PoolError(.startFailed, "inline workers are not replaced") }
    func identity(of worker: Int) -> WorkerDied { WorkerDied(pid: getpid()) }
    func kill(worker: Int) -> Bool { false }
    func progress(of worker: Int) -> WorkerProgress? { nil }
    func finalProgress(of worker: Int) -> (taken: UInt32, input: Int)? { nil }
    func sendAttachments(_ segments: [SegmentStorage], to worker: Int) throws {
        try refusingAttachments(segments, summary: summary)
    }
    func shutdown(deadline: UInt64) {}
}
