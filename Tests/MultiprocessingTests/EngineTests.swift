import XCTest

@_spi(Diagnostics) @testable import Multiprocessing

/// A backend with no processes: it records what the engine sends, and the test plays the
/// workers — taking chunks, replying, dying — by hand. With `PoolEngine.step()` and a
/// hand-driven clock the engine's decisions are checked deterministically, in milliseconds.
final class ScriptedBackend: PoolBackend, @unchecked Sendable {
    struct Chunk: Equatable {
        var task: UInt64
        var inputs: [Int]
    }

    /// A bundle's header (`MasterMessage.bundle`), for a backend whose slots schedule inputs.
    struct Bundle: Equatable {
        var task: UInt64
        var chunkSize: Int
        var timeoutNanoseconds: UInt64
    }

    let workerCount: Int
    let canReplaceWorkers: Bool
    let lateReplyBytes: Int? = nil
    let summary = "scripted"
    private(set) var chunks: [[Chunk]]
    private(set) var stops: [Int] = []
    /// `define` messages per worker.
    private(set) var defines: [Int: Int] = [:]
    private(set) var killed: [Int] = []
    private(set) var replaced: [Int] = []
    /// Replies (bytes, decoded when polled: a decoded reply points into them) and deaths.
    private var events: [(worker: Int, bytes: [UInt8]?, exit: ChildExit?)] = []
    private var words: [UnsafeMutableRawPointer]
    let sharesProgress: Bool
    /// Set: like an MPI rank's worker, the progress words are seen only once it ended.
    let reportsFinalProgress: Bool
    /// Runs inside the next `poll`, once: what another thread does while the engine works.
    var duringNextPoll: (() -> Void)?
    /// Set: each slot schedules inputs on this many processes (`PoolBackend.schedulesInputs`).
    var laneCount: Int?
    private(set) var bundles: [[Bundle]]
    private(set) var cancelled: [(task: UInt64, worker: Int)] = []
    /// Each worker process's state and CPU time (asleep, none used, unless a test says
    /// otherwise; nil: the backend cannot tell): what `activity(of:)` reports.
    var activity: [ProcessActivity]?

    init(workers: Int, canReplace: Bool = true, sharesProgress: Bool = true, reportsFinalProgress: Bool = false) {
        workerCount = workers
        canReplaceWorkers = canReplace
        self.sharesProgress = sharesProgress
        self.reportsFinalProgress = reportsFinalProgress
        chunks = Array(repeating: [], count: workers)
        bundles = Array(repeating: [], count: workers)
        activity = Array(repeating: ProcessActivity(state: "S", cpuNanoseconds: 0), count: workers)
        words = (0..<workers).map { _ in
            let base = UnsafeMutableRawPointer.allocate(byteCount: WorkerProgress.byteCount, alignment: 64)
            base.initializeMemory(as: UInt8.self, repeating: 0, count: WorkerProgress.byteCount)
            return base
        }
    }

    deinit { for word in words { word.deallocate() } }

    // MARK: the test plays the workers

    /// The worker takes its next chunk (false: it was withdrawn) and runs input `input` of it.
    @discardableResult
    func take(_ worker: Int, at input: Int = 0) -> Bool {
        let progress = WorkerProgress(at: words[worker])
        let run = progress.takeChunk()
        progress.input.pointee = input
        return run
    }

    func reply(_ worker: Int, task: UInt64, outputs: [Int]) {
        var writer = WireWriter()
        WorkerCodec.beginResult(task: task, into: &writer)
        try! outputs.withUnsafeBufferPointer { try writer.encodeArray($0) }
        push(writer, from: worker)
    }

    func fail(_ worker: Int, task: UInt64, at index: Int, outputsBefore: [Int]) {
        var writer = WireWriter()
        WorkerCodec.beginFailure(task: task, index: index, kind: .threw, typeName: "Boom", message: "boom", into: &writer)
        try! outputsBefore.withUnsafeBufferPointer { try writer.encodeArray($0) }
        push(writer, from: worker)
    }

    /// The worker answers the pool's initializer (task 0).
    func answerInitializer(_ worker: Int) {
        var writer = WireWriter()
        WorkerCodec.beginResult(task: 0, into: &writer)
        _VoidTransport.encode(count: 1, into: &writer)
        push(writer, from: worker)
    }

    private func push(_ writer: WireWriter, from worker: Int) {
        events.append((worker, MessageBuffer.withPayload(writer) { Array($0) }, nil))
    }

    func die(_ worker: Int, signal: Int32 = 9) {
        events.append((worker, nil, .signaled(signal)))
    }

    // MARK: PoolBackend

    func start() throws {}

    func send(_ message: inout WireWriter, to worker: Int) {
        MessageBuffer.withPayload(message) { payload in
            var reader = WireReader(payload)
            if payload.first == MasterMessage.define.rawValue { defines[worker, default: 0] += 1 }
            let kind = try? reader.read(UInt8.self)
            guard kind == MasterMessage.chunk.rawValue || kind == MasterMessage.bundle.rawValue,
                let task = try? reader.read(UInt64.self), (try? reader.read(UInt32.self)) != nil
            else { return }
            if kind == MasterMessage.bundle.rawValue {
                guard let chunkSize = try? reader.read(UInt32.self), let timeout = try? reader.read(UInt64.self) else { return }
                bundles[worker].append(Bundle(task: task, chunkSize: Int(chunkSize), timeoutNanoseconds: timeout))
            }
            guard let inputs = try? reader.decodeArray(Int.self) else { return }
            chunks[worker].append(Chunk(task: task, inputs: inputs))
        }
    }

    var schedulesInputs: Bool { laneCount != nil }
    func lanes(of worker: Int) -> Int { laneCount ?? 1 }
    func cancel(task: UInt64, on worker: Int) { cancelled.append((task, worker)) }

    /// A scheduling slot's answer, input by input.
    func outcomes(_ worker: Int, task: UInt64, _ pieces: [Either]) {
        var writer = WireWriter()
        Outcomes.begin(task: task, into: &writer)
        for piece in pieces {
            switch piece {
            case .outputs(let outputs):
                try! Outcomes.appendOutputs(count: outputs.count, into: &writer) { writer in
                    try outputs.withUnsafeBufferPointer { try writer.encodeArray($0) }
                }
            case .failed(let failure):
                Outcomes.appendFailure(failure, into: &writer)
            }
        }
        push(writer, from: worker)
    }

    enum Either {
        case outputs([Int])
        case failed(OutcomeFailure)
    }

    func stop(worker: Int) { stops.append(worker) }
    func canAccept(worker: Int) -> Bool { true }

    func poll(_ handler: (BackendEvent) -> Void) -> Bool {
        if let action = duringNextPoll {
            duringNextPoll = nil
            action()
        }
        let starts = startEvents
        startEvents.removeAll()
        for event in starts { handler(event) }
        let taken = events
        events.removeAll()
        for event in taken {
            if let bytes = event.bytes {
                bytes.withUnsafeBytes { handler(.decoding($0, from: event.worker)) }
            } else if let exit = event.exit {
                handler(.ended(worker: event.worker, exit))
            }
        }
        return !taken.isEmpty || !starts.isEmpty
    }

    /// Called at each wait the engine asks for (`idle`: `waitIdle`, else `waitForActivity`),
    /// after the engine's `ready()` check ran; the waits return at once.
    var onWait: ((_ idle: Bool) -> Void)?

    func waitForActivity(spinning: Bool, timeoutNanoseconds: Int64, ready: () -> Bool) {
        _ = ready()
        onWait?(false)
    }
    func pace(replyEvery nanoseconds: Int64) {}
    func wake() {}
    func waitIdle(timeoutNanoseconds: Int64, ready: () -> Bool) {
        _ = ready()
        onWait?(true)
    }

    /// What the next replacements throw, in turn (then they succeed).
    var replaceFailures: [any Error] = []
    /// Set: replacements are only asked for, as of an MPI worker rank (`ReplacementStart.requested`);
    /// the test answers with `confirmStart` or `refuseStart`.
    var startsLater = false

    func replace(worker: Int) throws -> ReplacementStart {
        replaced.append(worker)
        if !replaceFailures.isEmpty { throw replaceFailures.removeFirst() }
        WorkerProgress(at: words[worker]).reset()
        return startsLater ? .requested : .started
    }

    /// The requested start of `worker`'s replacement went well.
    func confirmStart(_ worker: Int) {
        startEvents.append(.started(worker: worker))
    }

    /// The requested start of `worker`'s replacement failed with `error`.
    func refuseStart(_ worker: Int, _ error: any Error) {
        startEvents.append(.notStarted(worker: worker, error))
    }

    private var startEvents: [BackendEvent] = []

    func identity(of worker: Int) -> WorkerDied {
        laneCount == nil ? WorkerDied(pid: Int32(1000 + worker)) : WorkerDied(rank: worker + 1, host: "node\(worker + 1)")
    }

    func kill(worker: Int) -> Bool {
        guard canReplaceWorkers else { return false }
        killed.append(worker)
        return true
    }

    func progress(of worker: Int) -> WorkerProgress? {
        sharesProgress && laneCount == nil ? WorkerProgress(at: words[worker]) : nil
    }
    func finalProgress(of worker: Int) -> (taken: UInt32, input: Int)? {
        reportsFinalProgress ? WorkerProgress(at: words[worker]).snapshot() : nil
    }

    func activity(of worker: Int) -> ProcessActivity? { activity?[worker] }

    func sendAttachments(_ segments: [SegmentStorage], to worker: Int) throws {}
    func shutdown(deadline: UInt64) {}
}

/// Collects a batch job's outcome.
final class Outcome: @unchecked Sendable {
    var result: Result<[Int], any Error>?
    var calls = 0
}

struct Identity: ParallelFunction {
    func callAsFunction(_ x: Int) -> Int { x }
}

/// A function value that carries a table (what a scientist captures).
struct WithTable: ParallelFunction {
    var table: [Double]
    func callAsFunction(_ x: Int) -> Int { x + Int(table[x % table.count]) }
}

/// The engine's logic without processes: deaths, withdrawals, time limits, retries,
/// cancellation and late replies, step by step.
final class EngineTests: XCTestCase {
    var now: UInt64 = 1_000_000_000

    private func engine(_ backend: ScriptedBackend, maxTasksPerChild: Int? = nil, initializer: FunctionDefinition? = nil) -> PoolEngine {
        let engine = PoolEngine(backend: backend, maxTasksPerChild: maxTasksPerChild, initializer: initializer)
        engine.clock = { [unowned self] in now }
        engine.logger = Logger(label: "engine-test", factory: { _ in CapturingHandler() })
        return engine
    }

    private func batch(
        _ engine: PoolEngine, _ inputs: [Int], chunkSize: Int, timeout: Double? = nil,
        retry: RetryPolicy = .none
    ) throws -> (BatchJob<Identity>, Outcome) {
        let outcome = Outcome()
        let options = try TaskOptions(timeout: timeout, retry: retry, defaults: .none)
        let job = BatchJob<Identity>(
            function: try FunctionDefinition.make(Identity()), options: options, inputs: inputs,
            chunkSize: chunkSize
        ) {
            outcome.result = $0; outcome.calls += 1
        }
        try engine.submit(job)
        return (job, outcome)
    }

    private func stream(_ engine: PoolEngine, _ inputs: [Int], chunkSize: Int = 1) throws -> StreamJob<Identity> {
        let job = StreamJob<Identity>(
            function: try FunctionDefinition.make(Identity()), options: .none,
            source: AnyIterator(inputs.makeIterator()), chunkSize: chunkSize, ordered: true,
            window: 100, wake: {})
        try engine.submit(job)
        return job
    }

    func testADeathFailsOnlyTheRunningInputAndRequeuesTheRest() throws {
        let backend = ScriptedBackend(workers: 2)
        let engine = engine(backend)
        let job = try stream(engine, Array(0..<4), chunkSize: 2)
        _ = engine.step()
        XCTAssertEqual(backend.chunks[0], [.init(task: 1, inputs: [0, 1])])
        XCTAssertEqual(backend.chunks[1], [.init(task: 2, inputs: [2, 3])])
        backend.take(0, at: 1) // worker 0 runs input 1 when it dies
        backend.die(0)
        _ = engine.step()
        XCTAssertEqual(backend.replaced, [0])
        // Input 0 (done but lost with the worker) runs again; input 1 failed, named exactly.
        XCTAssertEqual(backend.chunks[0].last, .init(task: 3, inputs: [0]))
        backend.take(0)
        backend.reply(0, task: 3, outputs: [0])
        backend.take(1)
        backend.reply(1, task: 2, outputs: [2, 3])
        _ = engine.step()
        XCTAssertTrue(job.finished)
        var results: [String] = []
        while let piece = job.take() {
            switch piece {
            case .outputs(let outputs): results += outputs.map { "\($0)" }
            case .failure(let error, _): results.append("died \((error as? WorkerDied)?.inputIndex ?? -1)")
            }
        }
        XCTAssertEqual(results, ["0", "died 1", "2", "3"])
    }

    func testChunksNotTakenRunElsewhereAfterADeath() throws {
        let backend = ScriptedBackend(workers: 1)
        let engine = engine(backend)
        let (_, outcome) = try batch(engine, Array(0..<3), chunkSize: 1)
        _ = engine.step()
        backend.take(0)
        backend.reply(0, task: 1, outputs: [0])
        now += 1_000
        _ = engine.step() // a fast reply: the worker now holds more than one
        XCTAssertEqual(backend.chunks[0].map(\.inputs), [[0], [1], [2]])
        backend.take(0) // takes input 1, then dies in it; input 2 not taken
        backend.die(0)
        _ = engine.step()
        guard case .failure(let error)? = outcome.result else { return XCTFail("\(String(describing: outcome.result))") }
        XCTAssertEqual((error as? WorkerDied)?.inputIndex, 1)
        XCTAssertEqual(outcome.calls, 1)
    }

    func testAnIdleWorkerTakesWhatWaitsBehindALongTask() throws {
        let backend = ScriptedBackend(workers: 2)
        let engine = engine(backend)
        // Quick replies first, so that each worker is given several chunks.
        let (_, warm) = try batch(engine, [0, 1], chunkSize: 1)
        _ = engine.step()
        for worker in 0..<2 { backend.take(worker); backend.reply(worker, task: UInt64(worker + 1), outputs: [worker]) }
        now += 1_000
        _ = engine.step()
        XCTAssertNotNil(warm.result)
        let (_, outcome) = try batch(engine, [400, 10, 10, 10], chunkSize: 1)
        _ = engine.step()
        XCTAssertEqual(backend.chunks[0].suffix(2).map(\.inputs), [[400], [10]])
        XCTAssertEqual(backend.chunks[1].suffix(2).map(\.inputs), [[10], [10]])
        backend.take(0) // 400 runs on worker 0
        backend.take(1); backend.reply(1, task: 4, outputs: [10])
        backend.take(1); backend.reply(1, task: 6, outputs: [10])
        now += 20_000_000
        _ = engine.step()
        // Worker 1 is free: the chunk waiting behind 400 was withdrawn and sent to it.
        XCTAssertEqual(backend.chunks[1].last?.inputs, [10])
        XCTAssertFalse(backend.take(0), "worker 0 skips the withdrawn chunk")
        let moved = backend.chunks[1].last!.task
        backend.take(1); backend.reply(1, task: moved, outputs: [10])
        backend.reply(0, task: 3, outputs: [400])
        _ = engine.step()
        XCTAssertEqual(try outcome.result?.get(), [400, 10, 10, 10])
    }

    func testATaskPastItsLimitIsKilledAndFailsWithTaskTimedOut() throws {
        let backend = ScriptedBackend(workers: 1)
        let engine = engine(backend)
        let (_, outcome) = try batch(engine, [7], chunkSize: 1, timeout: 1)
        _ = engine.step()
        backend.take(0)
        _ = engine.step() // seen running
        now += 600_000_000
        _ = engine.step()
        XCTAssertEqual(backend.killed, [])
        now += 500_000_000
        _ = engine.step()
        XCTAssertEqual(backend.killed, [0])
        backend.die(0)
        _ = engine.step()
        guard case .failure(let error)? = outcome.result else { return XCTFail() }
        XCTAssertEqual(error as? TaskTimedOut, TaskTimedOut(inputIndex: 0, seconds: 1, pid: 1000))
    }

    /// Where the engine sees a worker's progress only once it ended (an MPI rank's local
    /// worker, rank 0 scheduling), a limit shorter than the way to the worker ran out before the
    /// worker took the task: the engine killed a worker that had not started it, saw the task
    /// not taken, and ran the input again — to be killed again. A 1e-12 s limit cost up to 31
    /// kills and replacements for one input under mpirun (0.6 s; once over 1.5 s in CI). The
    /// input the engine killed for fails with `TaskTimedOut`, once.
    func testALimitThatRunsOutBeforeTheWorkerTakesTheTaskFailsTheInputOnce() throws {
        let backend = ScriptedBackend(workers: 1, sharesProgress: false, reportsFinalProgress: true)
        let engine = engine(backend)
        let (_, outcome) = try batch(engine, [7], chunkSize: 1, timeout: 1e-9)
        _ = engine.step()
        XCTAssertEqual(backend.chunks[0].map(\.inputs), [[7]])
        now += 10
        _ = engine.step()
        XCTAssertEqual(backend.killed, [0])
        backend.die(0) // before it took the chunk
        _ = engine.step()
        XCTAssertEqual(backend.replaced, [0])
        _ = engine.step()
        guard case .failure(let error)? = outcome.result else { return XCTFail("\(String(describing: outcome.result))") }
        XCTAssertEqual(error as? TaskTimedOut, TaskTimedOut(inputIndex: 0, seconds: 1e-9, pid: 1000))
        XCTAssertEqual(backend.chunks[0].count, 1, "the input was not sent again")
        XCTAssertEqual(backend.killed, [0])
    }

    /// The same in a stream: the input killed for fails once; the next one goes to the
    /// replacement.
    func testALimitThatRunsOutBeforeTheWorkerTakesTheTaskCostsOnlyThatInput() throws {
        let backend = ScriptedBackend(workers: 1, sharesProgress: false, reportsFinalProgress: true)
        let engine = engine(backend)
        let job = StreamJob<Identity>(
            function: try FunctionDefinition.make(Identity()),
            options: try TaskOptions(timeout: 1e-9, retry: nil, defaults: .none),
            source: AnyIterator([7, 8].makeIterator()), chunkSize: 1, ordered: true,
            window: 10, wake: {})
        try engine.submit(job)
        _ = engine.step()
        now += 10
        _ = engine.step()
        XCTAssertEqual(backend.killed, [0])
        backend.die(0)
        _ = engine.step()
        _ = engine.step()
        // Checked first: `take()` waits for a result.
        guard backend.chunks[0].map(\.inputs) == [[7], [8]] else {
            return XCTFail("input 1 should go to the replacement, input 0 not again: \(backend.chunks[0].map(\.inputs))")
        }
        guard case .failure(let error, _)? = job.take() else { return XCTFail("input 0 did not fail") }
        XCTAssertEqual((error as? TaskTimedOut)?.inputIndex, 0)
    }

    func testWithoutSharedProgressATimeLimitGivesTheInputUpAndDropsTheLateReply() throws {
        let backend = ScriptedBackend(workers: 1, canReplace: false, sharesProgress: false)
        let engine = engine(backend)
        _ = try stream(engine, [1, 2]) // ahead of it, two inputs without a limit
        _ = engine.step()
        let limited = StreamJob<Identity>(
            function: try FunctionDefinition.make(Identity()),
            options: try TaskOptions(timeout: 0.5, retry: nil, defaults: .none),
            source: AnyIterator([5].makeIterator()), chunkSize: 1, ordered: true,
            window: 10, wake: {})
        try engine.submit(limited)
        backend.reply(0, task: 1, outputs: [1])
        _ = engine.step()
        backend.reply(0, task: 2, outputs: [2])
        _ = engine.step()
        let task = backend.chunks[0].last!.task
        XCTAssertEqual(backend.chunks[0].last?.inputs, [5])
        now += 100_000_000
        _ = engine.step()
        now += 600_000_000
        _ = engine.step()
        XCTAssertEqual(backend.killed, [])
        guard case .failure(let error, _)? = limited.take() else { return XCTFail() }
        XCTAssertEqual((error as? TaskTimedOut)?.inputIndex, 0)
        backend.reply(0, task: task, outputs: [5]) // late: dropped
        _ = engine.step()
        XCTAssertNil(limited.take(), "the stream ended with one result for its one input")
    }

    /// Without shared progress words an input's time counts from the reply before it on its
    /// worker. Two replies in one poll: a caller's callback run for the first (600 ms on the
    /// clock) must not make the second look older — the limited input after it has run
    /// 0.1 s, not 0.7 s, and is not given up.
    func testASlowCallbackDoesNotAgeTheNextReplyOfThePoll() throws {
        let backend = ScriptedBackend(workers: 1, canReplace: false, sharesProgress: false)
        let engine = engine(backend)
        // Quick replies first: the engine then keeps several chunks on the worker.
        let warm = try stream(engine, [10, 11, 12])
        var answered = 0
        while answered < 3 {
            _ = engine.step()
            guard answered < backend.chunks[0].count else { return XCTFail("no chunk to answer") }
            now += 10_000
            let chunk = backend.chunks[0][answered]
            backend.reply(0, task: chunk.task, outputs: chunk.inputs)
            answered += 1
        }
        _ = engine.step()
        for _ in 0..<3 { _ = warm.take() }
        let slow = BatchJob<Identity>(
            function: try FunctionDefinition.make(Identity()), options: .none, inputs: [1], chunkSize: 1
        ) { [unowned self] _ in now += 600_000_000 }
        try engine.submit(slow)
        let limited = StreamJob<Identity>(
            function: try FunctionDefinition.make(Identity()),
            options: try TaskOptions(timeout: 0.5, retry: nil, defaults: .none),
            source: AnyIterator([5, 6].makeIterator()), chunkSize: 1, ordered: true,
            window: 10, wake: {})
        try engine.submit(limited)
        _ = engine.step()
        _ = engine.step()
        let sent = Array(backend.chunks[0].dropFirst(3))
        XCTAssertEqual(sent.map(\.inputs), [[1], [5], [6]], "all three pipelined to the one worker")
        guard sent.count == 3 else { return }
        backend.reply(0, task: sent[0].task, outputs: [1])
        backend.reply(0, task: sent[1].task, outputs: [5])
        _ = engine.step() // the slow callback runs between the two replies
        now += 100_000_000
        _ = engine.step()
        XCTAssertEqual(backend.killed, [])
        guard case .outputs(let five)? = limited.take() else { return XCTFail("input 5 failed") }
        XCTAssertEqual(five, [5])
        guard case .timedOut = limited.take(until: monotonicNanoseconds()) else {
            return XCTFail("input 6 has run 0.1 s of its 0.5 s: neither given up nor done")
        }
        backend.reply(0, task: sent[2].task, outputs: [6])
        _ = engine.step()
        guard case .outputs(let six)? = limited.take() else { return XCTFail("input 6 failed") }
        XCTAssertEqual(six, [6])
    }

    func testARetriedInputRunsAgainAfterItsBackoff() throws {
        let backend = ScriptedBackend(workers: 1)
        let engine = engine(backend)
        let (_, outcome) = try batch(engine, [0, 1, 2], chunkSize: 3, retry: RetryPolicy(attempts: 2, on: [.threw], backoff: 1))
        _ = engine.step()
        backend.take(0, at: 1)
        backend.fail(0, task: 1, at: 1, outputsBefore: [0]) // input 1 threw
        _ = engine.step()
        // Input 2 runs at once; input 1 waits for its backoff.
        XCTAssertEqual(backend.chunks[0].map(\.inputs), [[0, 1, 2], [2]])
        backend.take(0); backend.reply(0, task: 2, outputs: [2])
        now += 500_000_000
        _ = engine.step()
        XCTAssertEqual(backend.chunks[0].count, 2)
        now += 600_000_000
        _ = engine.step()
        XCTAssertEqual(backend.chunks[0].last?.inputs, [1])
        backend.take(0); backend.reply(0, task: 3, outputs: [1])
        _ = engine.step()
        XCTAssertEqual(try outcome.result?.get(), [0, 1, 2])
        XCTAssertEqual(outcome.calls, 1)
    }

    func testCancellationKillsTheRunningWorkerOnceAndKeepsOtherJobs() throws {
        let backend = ScriptedBackend(workers: 1)
        let engine = engine(backend)
        let (doomed, doomedOutcome) = try batch(engine, [1], chunkSize: 1)
        let (_, other) = try batch(engine, [2], chunkSize: 1)
        _ = engine.step()
        backend.take(0)
        engine.cancel(doomed)
        _ = engine.step()
        XCTAssertEqual(backend.killed, [0])
        guard case .failure(let error)? = doomedOutcome.result else { return XCTFail() }
        XCTAssertEqual((error as? PoolError)?.code, .cancelled)
        backend.die(0)
        _ = engine.step()
        // The other job's input had not started: it runs on the replacement.
        let last = backend.chunks[0].last!
        XCTAssertEqual(last.inputs, [2])
        backend.take(0); backend.reply(0, task: last.task, outputs: [2])
        _ = engine.step()
        XCTAssertEqual(try other.result?.get(), [2])
        XCTAssertEqual(doomedOutcome.calls, 1)
    }

    func testAFunctionValueTravelsOncePerWorkerHoweverManyCallsUseIt() throws {
        let backend = ScriptedBackend(workers: 2)
        let engine = engine(backend)
        let table = (0..<100_000).map(Double.init)
        for call in 0..<20 {
            let job = BatchJob<WithTable>(
                function: try FunctionDefinition.make(WithTable(table: table)), options: .none,
                inputs: [call], chunkSize: 1
            ) { _ in }
            try engine.submit(job)
            _ = engine.step()
            for worker in 0..<2 where backend.chunks[worker].count > 0 {
                backend.take(worker)
                backend.reply(worker, task: backend.chunks[worker].last!.task, outputs: [call])
            }
            _ = engine.step()
        }
        XCTAssertEqual(backend.defines.values.reduce(0, +), backend.defines.count, "one define per worker that ran")
        // Another value of the same type is another function.
        let other = BatchJob<WithTable>(
            function: try FunctionDefinition.make(WithTable(table: [1])), options: .none,
            inputs: [0], chunkSize: 1
        ) { _ in }
        try engine.submit(other)
        _ = engine.step()
        XCTAssertEqual(backend.defines.values.reduce(0, +), backend.defines.count + 1)
    }

    func testRepeatedDeathsBeforeTheFirstTaskBreakThePoolAndCrashingTasksDoNot() throws {
        let backend = ScriptedBackend(workers: 1)
        let engine = engine(backend)
        // Five tasks in a row crash their (fresh) worker: the pool goes on.
        for round in 0..<5 {
            let (_, outcome) = try batch(engine, [round], chunkSize: 1)
            _ = engine.step()
            backend.take(0)
            backend.die(0)
            _ = engine.step()
            XCTAssertTrue(outcome.result.map { if case .failure(let e) = $0 { e is WorkerDied } else { false } } ?? false)
        }
        // Workers that die before taking anything, three times in a row: broken, with a reason.
        try assertThreeDeathsBeforeTheFirstTaskBreak(engine, backend)
    }

    private func assertThreeDeathsBeforeTheFirstTaskBreak(_ engine: PoolEngine, _ backend: ScriptedBackend) throws {
        let (_, outcome) = try batch(engine, [9], chunkSize: 1)
        for _ in 0..<3 {
            _ = engine.step()
            backend.die(0)
        }
        _ = engine.step()
        _ = engine.step()
        assertStartFailed(outcome, saying: "before their first task")
    }

    /// With `maxTasksPerChild`, each worker is told to stop as soon as its last allowed task is
    /// sent (it is retiring): one that dies before taking that task still counts as a start
    /// death. Before, retiring workers never counted, and workers whose start crashed every
    /// time were replaced for ever (`maxTasksPerChild: 1` and an initializer that exits).
    func testRetiringWorkersThatDieBeforeTheirFirstTaskBreakThePool() throws {
        let backend = ScriptedBackend(workers: 1)
        try assertThreeDeathsBeforeTheFirstTaskBreak(engine(backend, maxTasksPerChild: 1), backend)
    }

    /// The same for workers killed as wedged at start.
    func testRetiringWorkersWedgedAtStartBreakThePool() throws {
        let backend = ScriptedBackend(workers: 1)
        let engine = engine(backend, maxTasksPerChild: 1)
        let (_, outcome) = try batch(engine, [9], chunkSize: 1)
        _ = engine.step()
        for round in 1...3 {
            watch(engine, seconds: 32)
            XCTAssertEqual(backend.killed.count, round)
            backend.die(0)
            _ = engine.step()
            if round < 3 { XCTAssertNil(outcome.result, "round \(round)") }
        }
        assertStartFailed(outcome, saying: "3 workers in a row in one place were killed before their first task")
    }

    /// A call submitted, then `close()`, while the engine is between taking new work and
    /// deciding whether to stop: the call still runs and the pool stops only after it.
    /// (Before: the engine saw `closing` with no job admitted yet, stopped its workers, and
    /// `join()` returned with the call never run.)
    func testACallSubmittedJustBeforeCloseRunsBeforeThePoolStops() throws {
        let backend = ScriptedBackend(workers: 1)
        let engine = engine(backend)
        XCTAssertEqual(engine.step(), .idle)
        var submitted: (BatchJob<Identity>, Outcome)?
        backend.duringNextPoll = { [self] in
            submitted = try? batch(engine, [7], chunkSize: 1)
            engine.close()
        }
        XCTAssertNotEqual(engine.step(), .stopped)
        XCTAssertTrue(backend.stops.isEmpty)
        _ = engine.step()
        XCTAssertEqual(backend.chunks[0], [.init(task: 1, inputs: [7])])
        backend.take(0)
        backend.reply(0, task: 1, outputs: [7])
        XCTAssertEqual(engine.step(), .stopped)
        XCTAssertEqual(backend.stops, [0])
        guard case .success(let values)? = submitted?.1.result else {
            return XCTFail("\(String(describing: submitted?.1.result))")
        }
        XCTAssertEqual(values, [7])
    }

    // MARK: slots that schedule inputs (an MPI worker rank with its own engine, `NodeScheduler`)

    /// A scheduling slot gets bundles: at first a chunk per process it hosts, then, once it
    /// answers fast, up to 64 chunks per process — so the engine's work per input falls — and
    /// never more than two bundles at a time.
    func testASchedulingSlotGetsBundlesThatGrowWithFastAnswers() throws {
        let backend = ScriptedBackend(workers: 2)
        backend.laneCount = 4
        let engine = engine(backend)
        let (_, outcome) = try batch(engine, Array(0..<2_000), chunkSize: 1, timeout: 3)
        _ = engine.step()
        for worker in 0..<2 {
            XCTAssertEqual(backend.chunks[worker].map(\.inputs.count), [4, 4], "worker \(worker)")
            XCTAssertEqual(backend.bundles[worker].map(\.chunkSize), [1, 1])
            XCTAssertEqual(backend.bundles[worker].first?.timeoutNanoseconds, 3_000_000_000)
        }
        var answered: Set<UInt64> = []
        var rounds = 0
        while outcome.result == nil && rounds < 200 {
            rounds += 1
            for worker in 0..<2 {
                for chunk in backend.chunks[worker] where !answered.contains(chunk.task) {
                    answered.insert(chunk.task)
                    backend.reply(worker, task: chunk.task, outputs: chunk.inputs)
                }
            }
            now += 50_000
            _ = engine.step()
        }
        guard case .success(let values)? = outcome.result else { return XCTFail("\(String(describing: outcome.result))") }
        XCTAssertEqual(values, Array(0..<2_000))
        let sizes = backend.chunks.flatMap { $0.map(\.inputs.count) }
        XCTAssertEqual(sizes.max(), 4 * 64, "bundles grow to 64 chunks per process: \(sizes)")
        XCTAssertLessThan(sizes.count, 40, "2 000 inputs in few bundles: \(sizes)")
        XCTAssertEqual(outcome.calls, 1)
    }

    /// A bundle answered input by input: the inputs that ran are delivered, each failed input
    /// fails alone with the error its slot reported (named with its rank and host, the pid of
    /// the process it ran in), and the inputs the answer does not cover run again.
    func testOutcomesChargeExactlyTheInputsThatFailed() throws {
        let backend = ScriptedBackend(workers: 1)
        backend.laneCount = 3
        let engine = engine(backend)
        _ = try stream(engine, Array(0..<3))
        _ = engine.step()
        XCTAssertEqual(backend.chunks[0].map(\.inputs), [[0, 1, 2]])
        // A quick answer: the next bundle carries two chunks per process.
        backend.reply(0, task: 1, outputs: [0, 1, 2])
        now += 10_000
        _ = engine.step()
        let big = try stream(engine, Array(0..<6))
        _ = engine.step()
        guard let chunk = backend.chunks[0].last, chunk.inputs == Array(0..<6) else {
            return XCTFail("\(backend.chunks[0])")
        }
        backend.outcomes(
            0, task: chunk.task,
            [
                .outputs([0, 1]), .failed(OutcomeFailure(kind: .died, pid: 4242, signal: 11)), .outputs([3]),
                .failed(OutcomeFailure(kind: .threw, typeName: "Boom", message: "boom 4", pid: 4243)),
            ])
        now += 10_000
        _ = engine.step()
        // Input 5, not covered by the answer, is sent again.
        XCTAssertEqual(backend.chunks[0].last?.inputs, [5])
        backend.reply(0, task: backend.chunks[0].last!.task, outputs: [5])
        _ = engine.step()
        var results: [String] = []
        while let piece = big.take() {
            switch piece {
            case .outputs(let outputs): results += outputs.map { "\($0)" }
            case .failure(let error as WorkerDied, _):
                results.append("died \(error.inputIndex ?? -1) pid \(error.pid ?? 0) signal \(error.signal ?? 0) rank \(error.rank ?? 0)")
            case .failure(let error as RemoteError, _):
                results.append("threw \(error.inputIndex) \(error.message) on \(error.host ?? "?")")
            case .failure(let error, _): results.append("other \(error)")
            }
        }
        XCTAssertEqual(results, ["0", "1", "died 2 pid 4242 signal 11 rank 1", "3", "threw 4 boom 4 on node1", "5"])
    }

    /// The call's retry policy applies to an input a scheduling slot reports failed: it runs
    /// again (alone), and the call succeeds.
    func testAFailedInputOfABundleIsRetriedByTheCallsPolicy() throws {
        let backend = ScriptedBackend(workers: 1)
        backend.laneCount = 2
        let engine = engine(backend)
        let (_, outcome) = try batch(engine, [0, 1], chunkSize: 1, retry: RetryPolicy(attempts: 2, on: [.workerDied], backoff: 0))
        _ = engine.step()
        let task = backend.chunks[0][0].task
        backend.outcomes(0, task: task, [.outputs([0]), .failed(OutcomeFailure(kind: .died, pid: 7, signal: 9))])
        now += 10_000
        _ = engine.step()
        XCTAssertNil(outcome.result)
        XCTAssertEqual(backend.chunks[0].last?.inputs, [1])
        backend.reply(0, task: backend.chunks[0].last!.task, outputs: [1])
        _ = engine.step()
        guard case .success(let values)? = outcome.result else { return XCTFail("\(String(describing: outcome.result))") }
        XCTAssertEqual(values, [0, 1])
    }

    /// Cancelling a call asks each scheduling slot holding its inputs to cancel that bundle
    /// (rank 0 cannot kill a rank); the call fails once, as cancelled; the slot's late answer
    /// is dropped and the slot takes new work.
    func testCancellingACallAsksItsSchedulingSlotsToCancel() throws {
        let backend = ScriptedBackend(workers: 2)
        backend.laneCount = 1
        let engine = engine(backend)
        let (job, outcome) = try batch(engine, [0, 1, 2, 3], chunkSize: 1)
        _ = engine.step()
        let tasks = backend.chunks.map { $0.map(\.task) }
        XCTAssertEqual(tasks.map(\.count), [2, 2])
        engine.cancel(job)
        _ = engine.step()
        XCTAssertEqual(backend.cancelled.map(\.task).sorted(), tasks.flatMap { $0 }.sorted())
        guard case .failure(let error as PoolError)? = outcome.result else { return XCTFail("\(String(describing: outcome.result))") }
        XCTAssertEqual(error.code, .cancelled)
        for worker in 0..<2 {
            for task in tasks[worker] {
                backend.outcomes(worker, task: task, [.failed(OutcomeFailure(kind: .cancelled, message: "the call was cancelled"))])
            }
        }
        _ = engine.step()
        XCTAssertEqual(outcome.calls, 1)
        let (_, next) = try batch(engine, [9], chunkSize: 1)
        _ = engine.step()
        guard let worker = (0..<2).first(where: { backend.chunks[$0].last?.inputs == [9] }) else {
            return XCTFail("input 9 was not sent: \(backend.chunks)")
        }
        backend.reply(worker, task: backend.chunks[worker].last!.task, outputs: [9])
        _ = engine.step()
        guard case .success(let values)? = next.result else { return XCTFail("\(String(describing: next.result))") }
        XCTAssertEqual(values, [9])
    }

    /// A time limit is the scheduling slot's to apply (it knows when each input starts): the
    /// engine never gives up on a bundle for running long.
    func testASchedulingSlotsBundleIsNeverGivenUpForItsTimeLimit() throws {
        let backend = ScriptedBackend(workers: 1)
        backend.laneCount = 2
        let engine = engine(backend)
        let (_, outcome) = try batch(engine, [0, 1], chunkSize: 1, timeout: 0.5)
        _ = engine.step()
        now += 5_000_000_000
        _ = engine.step()
        XCTAssertNil(outcome.result)
        let task = backend.chunks[0][0].task
        backend.outcomes(0, task: task, [.outputs([0]), .failed(OutcomeFailure(kind: .timedOut, pid: 31, seconds: 0.5))])
        _ = engine.step()
        guard case .failure(let error as TaskTimedOut)? = outcome.result else { return XCTFail("\(String(describing: outcome.result))") }
        XCTAssertEqual(error.inputIndex, 1)
        XCTAssertEqual(error.pid, 31)
        XCTAssertEqual(error.rank, 1)
    }

    /// The engine-cost probe runs a map through scheduling slots (bundles answered inline)
    /// and checks every result, as it does through per-process slots.
    func testTheEngineProbeRunsBundlesToSchedulingSlots() throws {
        for lanes in [nil, 1, 4] {
            let cost = try EngineCostProbe.nanosecondsPerTask(tasks: 5_000, chunkSize: 1, workers: 3, repetitions: 1, lanes: lanes)
            XCTAssertGreaterThan(cost, 0, "lanes \(String(describing: lanes))")
        }
    }
    /// The call failed with `PoolError(.startFailed)` whose message holds each of `parts`.
    private func assertStartFailed(_ outcome: Outcome, saying parts: String..., line: UInt = #line) {
        guard case .failure(let error)? = outcome.result else {
            return XCTFail("\(String(describing: outcome.result))", line: line)
        }
        XCTAssertEqual((error as? PoolError)?.code, .startFailed, line: line)
        for part in parts { XCTAssertTrue("\(error)".contains(part), "\(error)", line: line) }
    }

    // MARK: wedged workers

    /// Steps the engine once a second for `seconds` seconds.
    private func watch(_ engine: PoolEngine, seconds: Int, each: () -> Void = {}) {
        for _ in 0..<seconds {
            now += 1_000_000_000
            each()
            _ = engine.step()
        }
    }

    /// A worker that never takes the chunk it was handed (stuck at start, say) is killed
    /// after `wedgeNanoseconds` and replaced; its inputs run on the new one and none fails.
    func testAWorkerThatNeverTakesItsChunkIsReplacedAndNoInputIsCharged() throws {
        let backend = ScriptedBackend(workers: 1)
        let engine = engine(backend)
        let warning = "worker process 1000 held its work for 30 s without starting it"
        let warned = CapturedRecords.shared.matching(warning).count
        let (_, outcome) = try batch(engine, [7, 8], chunkSize: 1)
        _ = engine.step()
        XCTAssertEqual(backend.chunks[0].map(\.inputs), [[7]])
        watch(engine, seconds: 29)
        XCTAssertEqual(backend.killed, [], "not before 30 s")
        watch(engine, seconds: 3)
        XCTAssertEqual(backend.killed, [0])
        XCTAssertEqual(CapturedRecords.shared.matching(warning).count, warned + 1, "a warning says what the engine did")
        XCTAssertFalse(backend.take(0), "the wedged worker would skip the withdrawn chunk")
        backend.die(0)
        _ = engine.step()
        XCTAssertEqual(backend.replaced, [0])
        XCTAssertEqual(backend.chunks[0].last?.inputs, [7])
        backend.take(0)
        backend.reply(0, task: backend.chunks[0].last!.task, outputs: [7])
        _ = engine.step()
        backend.take(0)
        backend.reply(0, task: backend.chunks[0].last!.task, outputs: [8])
        _ = engine.step()
        XCTAssertEqual(try outcome.result?.get(), [7, 8])
        XCTAssertEqual(outcome.calls, 1)
        XCTAssertEqual(backend.killed, [0])
    }

    /// Not wedged: a worker running a long task; one that uses CPU before taking its chunk
    /// (reading a large message), is running or starved of a CPU, waits for a device or is
    /// held by a debugger; one whose state the backend cannot read; and time the engine did
    /// not watch (its thread was in a long callback).
    func testABusyWorkerOrAnUnwatchedPauseIsNotTakenForAWedge() throws {
        let backend = ScriptedBackend(workers: 2)
        let engine = engine(backend)
        let (_, outcome) = try batch(engine, [1, 2], chunkSize: 1)
        _ = engine.step()
        backend.take(0) // worker 0 runs a task for 100 s
        watch(engine, seconds: 100) { backend.activity![1].cpuNanoseconds += 500_000_000 } // worker 1 busy, not taking
        XCTAssertEqual(backend.killed, [])
        // Runnable but starved, waiting for the disk, held by a debugger: 100 s each, no CPU
        // used, not killed; nor while the backend cannot tell.
        for state: Character in ["R", "D", "t"] {
            backend.activity![1].state = state
            watch(engine, seconds: 100)
            XCTAssertEqual(backend.killed, [], "state \(state)")
        }
        backend.activity![1].state = "S"
        let known = backend.activity
        backend.activity = nil
        watch(engine, seconds: 100)
        XCTAssertEqual(backend.killed, [], "no state, no kill")
        backend.activity = known
        // Worker 1 goes quiet: wedged once a window of 30 s saw it use no CPU (30–60 s).
        watch(engine, seconds: 29)
        XCTAssertEqual(backend.killed, [])
        watch(engine, seconds: 33)
        XCTAssertEqual(backend.killed, [1])
        backend.die(1)
        _ = engine.step()
        // The new worker 1 does not take its chunk either; watched for 5 s, then the engine is
        // away for 100 s: that time does not count — 29 s more and it is still not killed.
        XCTAssertEqual(backend.chunks[1].last?.inputs, [2])
        watch(engine, seconds: 5)
        now += 100_000_000_000
        _ = engine.step()
        XCTAssertEqual(backend.killed, [1])
        watch(engine, seconds: 29)
        XCTAssertEqual(backend.killed, [1], "the watch began again after the pause")
        backend.take(1)
        backend.reply(1, task: backend.chunks[1].last!.task, outputs: [2])
        backend.reply(0, task: backend.chunks[0].last!.task, outputs: [1])
        _ = engine.step()
        XCTAssertEqual(try outcome.result?.get(), [1, 2])
    }

    /// Workers wedged before their first task three times in a row break the pool, with a
    /// message that says so; a worker wedged after it had run tasks is only replaced.
    func testWorkersWedgedAtStartThreeTimesBreakThePool() throws {
        let backend = ScriptedBackend(workers: 1)
        let engine = engine(backend)
        let (_, first) = try batch(engine, [1], chunkSize: 1)
        _ = engine.step()
        backend.take(0)
        backend.reply(0, task: 1, outputs: [1])
        let (_, outcome) = try batch(engine, [9], chunkSize: 1)
        _ = engine.step()
        XCTAssertEqual(try first.result?.get(), [1])
        for round in 1...4 {
            watch(engine, seconds: 32)
            XCTAssertEqual(backend.killed.count, round)
            backend.die(0)
            _ = engine.step()
            // The first worker had run a task: its wedge does not count; three more do.
            if round < 4 { XCTAssertNil(outcome.result, "round \(round)") }
        }
        assertStartFailed(
            outcome, saying: "3 workers in a row in one place were killed before their first task, none taken in 30.0 s",
            "try .spawn")
    }
    /// With an initializer: a worker that answers its initializer and then wedges before its
    /// first task counts as wedged at start (the initializer's answer does not end the run), so
    /// replacements that all do so break the pool instead of being replaced every 30 s for ever.
    func testWorkersWedgedAfterTheirInitializerBreakThePool() throws {
        let backend = ScriptedBackend(workers: 1)
        let engine = engine(backend, initializer: try FunctionDefinition.make(NoSetup()))
        let (_, outcome) = try batch(engine, [4], chunkSize: 1)
        _ = engine.step()
        for round in 1...3 {
            backend.take(0)
            backend.answerInitializer(0)
            watch(engine, seconds: 32)
            XCTAssertEqual(backend.killed.count, round, "the task was never taken: killed")
            backend.die(0)
            _ = engine.step()
            if round < 3 { XCTAssertNil(outcome.result, "round \(round)") }
        }
        assertStartFailed(outcome, saying: "3 workers in a row in one place were killed before their first task")
    }

    /// A lock held while a pool forks many workers may wedge several of them once: each is
    /// replaced, the pool goes on, and every input runs once. (Counted in all slots together,
    /// three such wedges broke the pool although its replacements were healthy.)
    func testWorkersWedgedOnceInSeveralPlacesAreOnlyReplaced() throws {
        let backend = ScriptedBackend(workers: 3)
        let engine = engine(backend)
        let (_, outcome) = try batch(engine, [1, 2, 3], chunkSize: 1)
        _ = engine.step()
        watch(engine, seconds: 32)
        XCTAssertEqual(backend.killed.sorted(), [0, 1, 2])
        for worker in 0..<3 { backend.die(worker) }
        _ = engine.step()
        XCTAssertEqual(backend.replaced.sorted(), [0, 1, 2])
        XCTAssertNil(outcome.result, "not broken")
        for worker in 0..<3 {
            backend.take(worker)
            let chunk = backend.chunks[worker].last!
            backend.reply(worker, task: chunk.task, outputs: chunk.inputs)
        }
        _ = engine.step()
        XCTAssertEqual(try outcome.result?.get(), [1, 2, 3])
    }
}

/// An initializer that does nothing.
struct NoSetup: ParallelFunction {
    func callAsFunction(_: Void) {}
}

/// Vacant slots: a replacement that cannot start for a reason that may pass (out of processes,
/// memory or descriptors) leaves its slot without a worker while the run goes on elsewhere, and
/// is tried again after a pause; only a pool left with no worker for the limit breaks.
extension EngineTests {
    private var outOfProcesses: SystemError { SystemError("fork", errno: EAGAIN) }

    /// `worker` takes and answers every chunk it was sent, round after round (the clock moving
    /// on `every` ns each), until `done` or `rounds` rounds.
    private func answerEverything(
        on worker: Int, of backend: ScriptedBackend, _ engine: PoolEngine, rounds: Int, every nanoseconds: UInt64,
        until done: () -> Bool = { false }
    ) {
        var answered = 0
        for _ in 0..<rounds where !done() {
            for chunk in backend.chunks[worker].dropFirst(answered) {
                backend.take(worker)
                backend.reply(worker, task: chunk.task, outputs: chunk.inputs)
                answered += 1
            }
            now += nanoseconds
            _ = engine.step()
        }
    }

    func testAReplacementThatCannotStartYetLeavesItsSlotVacantWhileTheRunGoesOn() throws {
        let backend = ScriptedBackend(workers: 2)
        let engine = engine(backend)
        let (_, outcome) = try batch(engine, Array(0..<4), chunkSize: 1)
        _ = engine.step()
        XCTAssertEqual(backend.chunks[0].map(\.inputs), [[0]])
        XCTAssertEqual(backend.chunks[1].map(\.inputs), [[1]])
        backend.replaceFailures = [outOfProcesses, outOfProcesses]
        backend.die(0) // before it took its chunk: no input is charged
        _ = engine.step()
        XCTAssertEqual(backend.replaced, [0])
        // Before: the pool broke here ("cannot start a replacement worker"); now input 0 runs
        // on worker 1 and nothing goes to the vacant slot.
        answerEverything(on: 1, of: backend, engine, rounds: 20, every: 1_000) { outcome.result != nil }
        XCTAssertEqual(try outcome.result?.get(), [0, 1, 2, 3])
        XCTAssertEqual(Set(backend.chunks[1].flatMap(\.inputs)), [0, 1, 2, 3])
        XCTAssertEqual(backend.chunks[0].count, 1, "nothing was sent to the vacant slot")
        // Tried again after 10 ms (fails), then after 20 ms more (starts).
        now += 9_000_000
        _ = engine.step()
        XCTAssertEqual(backend.replaced, [0])
        now += 1_000_000
        _ = engine.step()
        XCTAssertEqual(backend.replaced, [0, 0])
        now += 20_000_000
        _ = engine.step()
        XCTAssertEqual(backend.replaced, [0, 0, 0])
        // The slot works again.
        let (_, second) = try batch(engine, [7, 8], chunkSize: 1)
        _ = engine.step()
        XCTAssertEqual(backend.chunks[0].last?.inputs, [7])
        XCTAssertEqual(backend.chunks[1].last?.inputs, [8])
        XCTAssertNil(second.result)
    }

    func testAPoolWithNoWorkerForTheVacancyLimitBreaksWithTheReason() throws {
        let backend = ScriptedBackend(workers: 1)
        let engine = engine(backend)
        engine.vacancyLimitNanoseconds = 5_000_000_000
        let (_, outcome) = try batch(engine, [0, 1], chunkSize: 1)
        _ = engine.step()
        backend.replaceFailures = Array(repeating: outOfProcesses, count: 100)
        backend.die(0)
        let start = now
        while outcome.result == nil && now - start < 10_000_000_000 {
            now += 100_000_000
            _ = engine.step()
        }
        guard case .failure(let error)? = outcome.result else { return XCTFail("\(String(describing: outcome.result))") }
        XCTAssertEqual((error as? PoolError)?.code, .startFailed, "\(error)")
        XCTAssertTrue("\(error)".contains("no worker could be started for 5"), "\(error)")
        XCTAssertTrue("\(error)".contains("Resource temporarily unavailable"), "\(error)")
        XCTAssertGreaterThanOrEqual(now - start, 5_000_000_000)
        // Tried with pauses (10 ms doubling to 1 s), not at every step.
        XCTAssertLessThan(backend.replaced.count, 15, "\(backend.replaced.count) tries")
    }

    /// The limit counts from when the pool last had a worker, while work waited: a slot vacant
    /// for long beside a working one does not break the pool the moment the other goes too.
    func testTheVacancyLimitCountsFromTheLastWorker() throws {
        let backend = ScriptedBackend(workers: 2)
        let engine = engine(backend)
        engine.vacancyLimitNanoseconds = 5_000_000_000
        let (_, first) = try batch(engine, [0, 1], chunkSize: 1)
        _ = engine.step()
        backend.replaceFailures = Array(repeating: outOfProcesses, count: 1_000)
        backend.die(0) // before it took its chunk
        _ = engine.step()
        // Worker 1 runs everything for 20 s while slot 0 stays vacant.
        answerEverything(on: 1, of: backend, engine, rounds: 200, every: 100_000_000)
        XCTAssertEqual(try first.result?.get(), [0, 1])
        let (_, second) = try batch(engine, [2], chunkSize: 1)
        _ = engine.step()
        backend.die(1) // before it took its chunk: now no slot has a worker
        _ = engine.step()
        now += 1_000_000_000
        _ = engine.step()
        XCTAssertNil(second.result, "broken at once, though a worker ran a second ago")
        for _ in 0..<60 where second.result == nil {
            now += 100_000_000
            _ = engine.step()
        }
        assertStartFailed(second, saying: "no worker could be started for 5")
    }

    // A replacement only asked of the process hosting the slot (an MPI worker rank): the slot
    // is vacant until that process says the worker started.

    private var rankOutOfProcesses: RemoteStartFailure {
        RemoteStartFailure(errno: EAGAIN, description: "cannot start a replacement worker on rank 1: fork failed (errno 11)")
    }

    /// A start only asked for is sent work at once (the rank queues it behind the start): a
    /// replacement costs no round trip to the rank before its first task.
    func testARequestedReplacementIsSentWorkAtOnce() throws {
        let backend = ScriptedBackend(workers: 2, reportsFinalProgress: true)
        backend.startsLater = true
        let engine = engine(backend)
        let (_, first) = try batch(engine, Array(0..<6), chunkSize: 1)
        _ = engine.step()
        backend.die(0) // before it took its chunk
        _ = engine.step()
        XCTAssertEqual(backend.replaced, [0])
        XCTAssertGreaterThan(backend.chunks[0].count, 1, "the new worker was sent work before the rank confirmed its start")
        backend.confirmStart(0)
        var answered: Set<[Int]> = [] // [worker, task]
        for _ in 0..<20 where first.result == nil {
            for worker in 0..<2 {
                for chunk in backend.chunks[worker] where !answered.contains([worker, Int(chunk.task)]) {
                    answered.insert([worker, Int(chunk.task)])
                    backend.take(worker)
                    backend.reply(worker, task: chunk.task, outputs: chunk.inputs)
                }
            }
            now += 1_000
            _ = engine.step()
        }
        XCTAssertEqual(try first.result?.get(), [0, 1, 2, 3, 4, 5])
        XCTAssertEqual(backend.replaced, [0], "asked once")
    }

    /// The rank could not start it: what was sent meanwhile runs on the other worker (nothing
    /// is charged), the slot is sent nothing more, and it is asked for again after the pause.
    func testARequestedReplacementThatDidNotStartIsAskedForAgainAfterAPause() throws {
        let backend = ScriptedBackend(workers: 2, reportsFinalProgress: true)
        backend.startsLater = true
        let engine = engine(backend)
        let (_, first) = try batch(engine, Array(0..<4), chunkSize: 1)
        _ = engine.step()
        backend.die(0)
        _ = engine.step()
        let sentMeanwhile = backend.chunks[0].count
        XCTAssertGreaterThan(sentMeanwhile, 1)
        backend.refuseStart(0, rankOutOfProcesses)
        // Before session 22 the rank's refusal broke the pool; now the call goes on with worker 1.
        answerEverything(on: 1, of: backend, engine, rounds: 20, every: 1_000) { first.result != nil }
        XCTAssertEqual(try first.result?.get(), [0, 1, 2, 3])
        XCTAssertEqual(backend.chunks[0].count, sentMeanwhile, "nothing more went to the vacant slot")
        XCTAssertEqual(backend.replaced, [0])
        // Asked again 10 ms after the refusal; refused again; then 20 ms later, and it starts.
        now += 10_000_000
        _ = engine.step()
        XCTAssertEqual(backend.replaced, [0, 0])
        now += 50_000_000
        _ = engine.step()
        XCTAssertEqual(backend.replaced, [0, 0], "not asked again while the rank has not answered")
        backend.refuseStart(0, rankOutOfProcesses)
        _ = engine.step()
        now += 19_000_000
        _ = engine.step()
        XCTAssertEqual(backend.replaced, [0, 0])
        now += 1_000_000
        _ = engine.step()
        XCTAssertEqual(backend.replaced, [0, 0, 0])
        backend.confirmStart(0)
        _ = engine.step()
        let (_, second) = try batch(engine, [7, 8], chunkSize: 1)
        _ = engine.step()
        XCTAssertEqual(backend.chunks[0].last?.inputs, [7])
        XCTAssertNil(second.result)
    }

    /// A pool whose only worker's rank refuses every start breaks after the vacancy limit,
    /// saying what the rank said; a refusal that will not pass breaks it at once.
    func testRefusedStartsOnARankBreakThePoolOnlyWhenTheyWillNotPass() throws {
        let backend = ScriptedBackend(workers: 1, reportsFinalProgress: true)
        backend.startsLater = true
        let engine = engine(backend)
        engine.vacancyLimitNanoseconds = 5_000_000_000
        let (_, outcome) = try batch(engine, [0, 1], chunkSize: 1)
        _ = engine.step()
        backend.die(0)
        let start = now
        var answered = 0
        while outcome.result == nil && now - start < 10_000_000_000 {
            now += 100_000_000
            _ = engine.step()
            // The rank answers every request it got, with a refusal.
            while answered < backend.replaced.count {
                backend.refuseStart(0, rankOutOfProcesses)
                answered += 1
            }
        }
        assertStartFailed(outcome, saying: "no worker could be started for 5", "on rank 1")
        XCTAssertGreaterThanOrEqual(now - start, 5_000_000_000)
        XCTAssertLessThan(backend.replaced.count, 15, "\(backend.replaced.count) requests")

        let other = ScriptedBackend(workers: 2, reportsFinalProgress: true)
        other.startsLater = true
        let second = self.engine(other)
        let (_, failed) = try batch(second, [0, 1], chunkSize: 1)
        _ = second.step()
        other.die(0)
        _ = second.step()
        other.refuseStart(0, RemoteStartFailure(errno: 0, description: "cannot start a replacement worker on rank 1: no such program"))
        _ = second.step()
        _ = second.step()
        assertStartFailed(failed, saying: "cannot start a replacement worker", "no such program")
    }

    /// A fork server that ended before it answered a replacement's request (nothing started; the
    /// next use starts a new server): the slot is vacant and tried again. Before session 22 the
    /// pool broke for good (a fault probe: the server killed just before a replacement).
    func testALostForkServerLeavesTheSlotVacant() throws {
        let backend = ScriptedBackend(workers: 2)
        let engine = engine(backend)
        let (_, outcome) = try batch(engine, Array(0..<4), chunkSize: 1)
        _ = engine.step()
        backend.replaceFailures = [ForkServerLost(SystemError("fork in the fork server (pid 9, which ended before it answered)", errno: ECHILD))]
        backend.die(0)
        _ = engine.step()
        answerEverything(on: 1, of: backend, engine, rounds: 20, every: 1_000) { outcome.result != nil }
        XCTAssertEqual(try outcome.result?.get(), [0, 1, 2, 3])
        now += 10_000_000
        _ = engine.step()
        XCTAssertEqual(backend.replaced, [0, 0], "tried again after the pause, and started")
        XCTAssertFalse(PoolEngine.mayPass(SystemError("the fork server did not answer", errno: ECHILD)), "only the server's loss passes")
    }

    func testAReplacementFailureThatWillNotPassBreaksThePoolAtOnce() throws {
        let backend = ScriptedBackend(workers: 2)
        let engine = engine(backend)
        let (_, outcome) = try batch(engine, Array(0..<4), chunkSize: 1)
        _ = engine.step()
        backend.replaceFailures = [SystemError("posix_spawn(/proc/self/exe)", errno: ENOEXEC)]
        backend.die(0)
        _ = engine.step()
        _ = engine.step()
        guard case .failure(let error)? = outcome.result else { return XCTFail("\(String(describing: outcome.result))") }
        XCTAssertTrue("\(error)".contains("cannot start a replacement worker"), "\(error)")
    }
}
