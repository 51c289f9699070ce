import Wire
import XCTest

@testable import Multiprocessing

/// A worker rank's own engine (`NodeScheduler`, `RankScheduling.node`) driven as the rank's
/// serve loop drives it, with real local worker processes and no MPI: rank 0's messages in,
/// each bundle answered once, input by input.
final class NodeSchedulerTests: TimeLimitedTestCase {
    private func scheduler(workers: Int) throws -> NodeScheduler {
        let backend = try LocalBackend(workers: workers, method: .fork)
        try backend.start()
        return NodeScheduler(backend: backend, maxTasksPerChild: nil)
    }

    private func define<F: ParallelFunction>(_ function: F, id: UInt32, on scheduler: NodeScheduler) throws {
        let definition = try FunctionDefinition.make(function)
        definition.id = id
        var writer = WireWriter()
        MasterCodec.define(definition, into: &writer)
        MessageBuffer.withPayload(writer) { scheduler.handle($0) }
    }

    private func bundle(
        task: UInt64, function: UInt32, _ inputs: [Int], chunkSize: Int = 1, timeout: UInt64? = nil, on scheduler: NodeScheduler
    ) throws {
        var writer = WireWriter()
        MasterCodec.beginBundle(task: task, function: function, chunkSize: chunkSize, timeoutNanoseconds: timeout, into: &writer)
        try inputs.withUnsafeBufferPointer { try writer.encodeArray($0) }
        MessageBuffer.withPayload(writer) { scheduler.handle($0) }
    }

    /// What a bundle's answer says, one line per piece.
    private enum Answer: Equatable {
        case result(task: UInt64, [Int])
        case outcomes(task: UInt64, [String])
    }

    /// Steps the scheduler until it has `count` answers (at most `seconds`).
    private func answers(_ scheduler: NodeScheduler, count: Int, within seconds: Double = 20) throws -> [Answer] {
        let deadline = monotonicNanoseconds() + UInt64(seconds * 1e9)
        while scheduler.answers.count < count && monotonicNanoseconds() < deadline {
            if !scheduler.step() {
                scheduler.backend.waitForActivity(spinning: false, timeoutNanoseconds: 2_000_000) { false }
            }
        }
        return try scheduler.answers.map { bytes in
            try bytes.withUnsafeBytes { raw in
                switch try WorkerReply.decode(UnsafeRawBufferPointer(rebasing: raw[MessageBuffer.headroom...])) {
                case .result(let task, var outputs):
                    return .result(task: task, try outputs.decodeArray(Int.self))
                case .outcomes(let task, var reader):
                    let pieces = try Outcomes.pieces(&reader).map { piece -> String in
                        switch piece {
                        case .outputs(_, let bytes):
                            var outputs = WireReader(bytes)
                            return "\(try outputs.decodeArray(Int.self))"
                        case .failed(let failure):
                            return "\(failure.kind) pid=\(failure.pid != nil) signal=\(failure.signal ?? 0) s=\(failure.seconds)"
                        }
                    }
                    return .outcomes(task: task, pieces)
                default:
                    return .outcomes(task: 0, ["unexpected reply"])
                }
            }
        }
    }

    /// Rank 0 dropping a function value (`undefine`, its cache evicted it) drops it from the
    /// rank's engine and from the local workers that ran it: nothing the value holds (served
    /// objects' handles) outlives rank 0's copy; a bundle naming it again is refused.
    func testAFunctionRankZeroDropsLeavesTheRanksEngineAndItsWorkers() throws {
        let scheduler = try scheduler(workers: 2)
        defer { scheduler.close(graceNanoseconds: 0) }
        try define(Identity(), id: 3, on: scheduler)
        try define(WithTable(table: [1]), id: 4, on: scheduler)
        try bundle(task: 11, function: 3, Array(0..<20), chunkSize: 2, on: scheduler)
        try bundle(task: 12, function: 4, Array(0..<20), chunkSize: 2, on: scheduler)
        XCTAssertEqual(
            Set(try answers(scheduler, count: 2).map { "\($0)" }),
            ["\(Answer.result(task: 11, Array(0..<20)))", "\(Answer.result(task: 12, Array(1...20)))"])
        let engine = try XCTUnwrap(scheduler.engine)
        XCTAssertEqual(engine.cachedFunctions.kept, 2)
        let heldBefore = engine.cachedFunctions.onWorkers
        XCTAssertGreaterThanOrEqual(heldBefore, 2, "each function ran on some worker")

        var writer = WireWriter()
        MasterCodec.undefine(3, into: &writer)
        MessageBuffer.withPayload(writer) { scheduler.handle($0) }
        let deadline = monotonicNanoseconds() + 5_000_000_000
        while engine.cachedFunctions.kept > 1 && monotonicNanoseconds() < deadline { scheduler.step() }
        XCTAssertEqual(engine.cachedFunctions.kept, 1, "the rank's engine dropped the value rank 0 dropped")
        XCTAssertLessThan(engine.cachedFunctions.onWorkers, heldBefore, "its workers were told to drop it")

        scheduler.answers.removeAll()
        try bundle(task: 13, function: 3, [1], on: scheduler)
        XCTAssertNotEqual(try answers(scheduler, count: 1), [.result(task: 13, [1])], "refused: the rank has no such function now")
        try bundle(task: 14, function: 4, [5], on: scheduler)
        scheduler.answers.removeAll()
        XCTAssertEqual(try answers(scheduler, count: 1), [.result(task: 14, [6])], "the other function is still there")
    }

    /// Rank 0 dropping a value while a bundle still runs it here (a map that failed at its
    /// first error does not wait for its other bundles): the rank's engine drops it once the
    /// bundle is answered, and tells its workers.
    func testAFunctionDroppedWhileInUseGoesOnceIdle() throws {
        let scheduler = try scheduler(workers: 2)
        defer { scheduler.close(graceNanoseconds: 0) }
        try define(SleepMilliseconds(), id: 3, on: scheduler)
        try bundle(task: 11, function: 3, [300, 300], chunkSize: 1, on: scheduler)
        for _ in 0..<50 { scheduler.step() } // admitted, running
        let engine = try XCTUnwrap(scheduler.engine)
        XCTAssertEqual(engine.cachedFunctions.kept, 1)
        var writer = WireWriter()
        MasterCodec.undefine(3, into: &writer)
        MessageBuffer.withPayload(writer) { scheduler.handle($0) }
        XCTAssertEqual(try answers(scheduler, count: 1), [.result(task: 11, [300, 300])])
        let deadline = monotonicNanoseconds() + 5_000_000_000
        while engine.cachedFunctions != (0, 0) && monotonicNanoseconds() < deadline { scheduler.step() }
        XCTAssertEqual(engine.cachedFunctions.kept, 0, "dropped once idle")
        XCTAssertEqual(engine.cachedFunctions.onWorkers, 0, "and by its workers")
    }

    /// A bundle of a value and rank 0's undefine of it taken by the rank's engine in one round
    /// (no step between): the value still goes once idle — whether an earlier bundle was
    /// running it or it was new.
    func testABundleAndTheUndefineOfItsFunctionInOneRoundStillDropIt() throws {
        for inUse in [true, false] {
            let scheduler = try scheduler(workers: 2)
            defer { scheduler.close(graceNanoseconds: 0) }
            try define(SleepMilliseconds(), id: 3, on: scheduler)
            if inUse {
                try bundle(task: 11, function: 3, [300, 300], chunkSize: 1, on: scheduler)
                for _ in 0..<50 { scheduler.step() } // admitted, running
            }
            try bundle(task: 12, function: 3, [10], chunkSize: 1, on: scheduler)
            var writer = WireWriter()
            MasterCodec.undefine(3, into: &writer)
            MessageBuffer.withPayload(writer) { scheduler.handle($0) }
            XCTAssertEqual(try answers(scheduler, count: inUse ? 2 : 1).count, inUse ? 2 : 1)
            let engine = try XCTUnwrap(scheduler.engine)
            let deadline = monotonicNanoseconds() + 5_000_000_000
            while engine.cachedFunctions != (0, 0) && monotonicNanoseconds() < deadline { scheduler.step() }
            XCTAssertEqual(engine.cachedFunctions.kept, 0, "dropped once idle, in use before: \(inUse)")
        }
    }

    /// A bundle whose chunks are large (1.6 MB of `Int`s each: sent to the local workers as a
    /// reference to the rank's copy, their outputs read back from the workers' kept blocks):
    /// one result, every output right.
    func testABundleOfLargeChunksIsOneResult() throws {
        let scheduler = try scheduler(workers: 2)
        defer { scheduler.close(graceNanoseconds: 0) }
        try define(WithTable(table: [5]), id: 3, on: scheduler)
        let inputs = Array(0..<600_000)
        try bundle(task: 21, function: 3, inputs, chunkSize: 200_000, on: scheduler)
        XCTAssertEqual(try answers(scheduler, count: 1), [.result(task: 21, inputs.map { $0 + 5 })])
    }

    func testABundleWhoseInputsAllSucceedIsOneResult() throws {
        let scheduler = try scheduler(workers: 2)
        defer { scheduler.close(graceNanoseconds: 0) }
        try define(Identity(), id: 3, on: scheduler)
        try bundle(task: 11, function: 3, Array(0..<50), chunkSize: 4, on: scheduler)
        XCTAssertEqual(try answers(scheduler, count: 1), [.result(task: 11, Array(0..<50))])
    }

    /// Two inputs of a bundle kill their local worker: exactly those two fail (named with the
    /// pid and signal), every other input's output comes back, the workers are replaced.
    func testACrashCostsItsInputAloneAndTheWorkerIsReplaced() throws {
        let scheduler = try scheduler(workers: 2)
        defer { scheduler.close(graceNanoseconds: 0) }
        let before = (0..<2).map { scheduler.backend.identity(of: $0).pid }
        try define(CrashOn(victims: [3, 7]), id: 1, on: scheduler)
        try bundle(task: 5, function: 1, Array(0..<10), on: scheduler)
        XCTAssertEqual(
            try answers(scheduler, count: 1),
            [
                .outcomes(
                    task: 5,
                    ["[0, 1, 2]", "died pid=true signal=9 s=0.0", "[4, 5, 6]", "died pid=true signal=9 s=0.0", "[8, 9]"])
            ])
        XCTAssertEqual(scheduler.endings.count, 2)
        XCTAssertEqual(scheduler.endings.map(\.exit), [.signaled(9), .signaled(9)])
        let after = (0..<2).map { scheduler.backend.identity(of: $0).pid }
        XCTAssertNotEqual(before, after)
        // The replaced workers take the next bundle.
        try bundle(task: 6, function: 1, [20, 21, 22], on: scheduler)
        XCTAssertEqual(try answers(scheduler, count: 2).last, .result(task: 6, [20, 21, 22]))
    }

    /// A local worker whose replacement could not start (a vacant slot) has nothing to stop:
    /// rank 0's `stop` is answered once the others exited (before, the rank waited for the
    /// vacant slot's exit for ever, and rank 0 until its shutdown deadline).
    func testStopIsAnsweredWithAVacantSlot() throws {
        let scheduler = try scheduler(workers: 2)
        defer { scheduler.close(graceNanoseconds: 0) }
        try define(CrashOn(victims: [3]), id: 1, on: scheduler)
        // Out of descriptors while input 3 kills its worker: the replacement cannot start.
        // No new descriptor at all (those the dying worker frees included).
        let answered = try withDescriptorLimit(.standardStreamsOnly) {
            try bundle(task: 5, function: 1, Array(0..<6), on: scheduler)
            return try answers(scheduler, count: 1)
        }
        XCTAssertEqual(answered, [.outcomes(task: 5, ["[0, 1, 2]", "died pid=true signal=9 s=0.0", "[4, 5]"])])
        XCTAssertEqual((0..<2).filter { !scheduler.backend.hasWorker($0) }.count, 1, "one slot is vacant")
        var writer = WireWriter()
        MasterCodec.stop(into: &writer)
        MessageBuffer.withPayload(writer) { scheduler.handle($0) }
        let deadline = monotonicNanoseconds() + 10_000_000_000
        while scheduler.answers.count < 2 && monotonicNanoseconds() < deadline {
            if !scheduler.step() { scheduler.backend.waitForActivity(spinning: false, timeoutNanoseconds: 2_000_000) { false } }
        }
        XCTAssertEqual(scheduler.answers.count, 2, "stopped is answered")
        XCTAssertEqual(scheduler.answers.last.map { $0[MessageBuffer.headroom] }, WorkerMessage.stopped.rawValue)
    }

    /// The bundle's time limit applies to each input from its start: the long one fails as
    /// timed out, the others run.
    func testTheTimeLimitAppliesToEachInput() throws {
        let scheduler = try scheduler(workers: 2)
        defer { scheduler.close(graceNanoseconds: 0) }
        try define(SleepMilliseconds(), id: 2, on: scheduler)
        let start = monotonicNanoseconds()
        try bundle(task: 9, function: 2, [5, 20_000, 5, 5], timeout: 300_000_000, on: scheduler)
        XCTAssertEqual(
            try answers(scheduler, count: 1),
            [.outcomes(task: 9, ["[5]", "timedOut pid=true signal=0 s=0.3", "[5, 5]"])])
        XCTAssertLessThan(Double(monotonicNanoseconds() - start) / 1e9, 10)
    }

    /// Cancelling a bundle (rank 0's call was cancelled) answers it at once: what ran is there,
    /// the rest is cancelled, a worker running one is killed.
    func testCancellingABundleAnswersItAtOnce() throws {
        let scheduler = try scheduler(workers: 2)
        defer { scheduler.close(graceNanoseconds: 0) }
        try define(SleepMilliseconds(), id: 2, on: scheduler)
        try bundle(task: 4, function: 2, [20_000, 20_000, 1, 1], on: scheduler)
        for _ in 0..<50 where scheduler.answers.isEmpty {
            scheduler.step()
            usleep(2_000)
        }
        let start = monotonicNanoseconds()
        scheduler.cancel(task: 4)
        let answer = try answers(scheduler, count: 1, within: 10)
        XCTAssertLessThan(Double(monotonicNanoseconds() - start) / 1e9, 5)
        guard case .outcomes(4, let pieces)? = answer.first else { return XCTFail("\(answer)") }
        XCTAssertEqual(pieces.count, 4, "\(pieces)")
        XCTAssertTrue(pieces.allSatisfy { $0.hasPrefix("cancelled") }, "\(pieces)")
    }
}
