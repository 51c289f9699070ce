import XCTest

@testable import Multiprocessing

/// A backend with no processes: it records what the engine sends, and the test plays the
/// workers — taking chunks, replying, dying — by hand. With `PoolEngine.step()` and a
/// hand-driven clock the engine's decisions are checked deterministically, in milliseconds.
final class ScriptedBackend: PoolBackend, @unchecked Sendable {
    struct Chunk: Equatable {
        var task: UInt64
        var inputs: [Int]
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
    /// Runs inside the next `poll`, once: what another thread does while the engine works.
    var duringNextPoll: (() -> Void)?

    init(workers: Int, canReplace: Bool = true, sharesProgress: Bool = true) {
        workerCount = workers
        canReplaceWorkers = canReplace
        self.sharesProgress = sharesProgress
        chunks = Array(repeating: [], count: workers)
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
            guard (try? reader.read(UInt8.self)) == MasterMessage.chunk.rawValue,
                let task = try? reader.read(UInt64.self), (try? reader.read(UInt32.self)) != nil,
                let inputs = try? reader.decodeArray(Int.self)
            else { return }
            chunks[worker].append(Chunk(task: task, inputs: inputs))
        }
    }

    func stop(worker: Int) { stops.append(worker) }
    func canAccept(worker: Int) -> Bool { true }

    func poll(_ handler: (BackendEvent) -> Void) -> Bool {
        if let action = duringNextPoll {
            duringNextPoll = nil
            action()
        }
        let taken = events
        events.removeAll()
        for event in taken {
            if let bytes = event.bytes {
                bytes.withUnsafeBytes { handler(.decoding($0, from: event.worker)) }
            } else if let exit = event.exit {
                handler(.ended(worker: event.worker, exit))
            }
        }
        return !taken.isEmpty
    }

    func waitForActivity(spinning: Bool, timeoutNanoseconds: Int64, ready: () -> Bool) {}
    func pace(replyEvery nanoseconds: Int64) {}
    func wake() {}
    func waitIdle(timeoutNanoseconds: Int64, ready: () -> Bool) {}

    func replace(worker: Int) throws {
        replaced.append(worker)
        WorkerProgress(at: words[worker]).reset()
    }

    func identity(of worker: Int) -> WorkerDied { WorkerDied(pid: Int32(1000 + worker)) }

    func kill(worker: Int) -> Bool {
        guard canReplaceWorkers else { return false }
        killed.append(worker)
        return true
    }

    func progress(of worker: Int) -> WorkerProgress? {
        sharesProgress ? WorkerProgress(at: words[worker]) : nil
    }
    func finalProgress(of worker: Int) -> (taken: UInt32, input: Int)? { nil }

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

    private func engine(_ backend: ScriptedBackend) -> PoolEngine {
        let engine = PoolEngine(backend: backend, maxTasksPerChild: nil, initializer: nil)
        engine.clock = { [unowned self] in now }
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
        let (_, outcome) = try batch(engine, [9], chunkSize: 1)
        for _ in 0..<3 {
            _ = engine.step()
            backend.die(0)
        }
        _ = engine.step()
        _ = engine.step()
        guard case .failure(let error)? = outcome.result else { return XCTFail("\(String(describing: outcome.result))") }
        XCTAssertEqual((error as? PoolError)?.code, .startFailed)
        XCTAssertTrue("\(error)".contains("before their first task"), "\(error)")
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
}
