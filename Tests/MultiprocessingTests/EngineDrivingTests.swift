import XCTest

@_spi(Diagnostics) @testable import Multiprocessing

/// A caller driving its own `apply` (`PoolEngine.runDriven`, `EngineBaton`), step by step with
/// the scripted backend: no pool thread exists here, so whatever completes the call ran on
/// the test's thread.
final class EngineDrivingTests: XCTestCase {
    private func job(_ inputs: [Int], _ outcome: Outcome) throws -> BatchJob<Identity> {
        BatchJob<Identity>(
            function: try FunctionDefinition.make(Identity()), options: .none, inputs: inputs, chunkSize: 1
        ) {
            outcome.result = $0
            outcome.calls += 1
        }
    }

    /// The worker answers the chunk it was sent, at the poll after the one that follows it.
    private func answerNextChunk(_ backend: ScriptedBackend, worker: Int = 0) {
        backend.duringNextPoll = {
            backend.duringNextPoll = {
                guard let chunk = backend.chunks[worker].last else { return }
                backend.take(worker)
                backend.reply(worker, task: chunk.task, outputs: chunk.inputs)
            }
        }
    }

    func testACallerRunsItsApplyToTheEndOnAnIdleEngine() throws {
        let backend = ScriptedBackend(workers: 1)
        let engine = PoolEngine(backend: backend, maxTasksPerChild: nil, initializer: nil)
        let outcome = Outcome()
        answerNextChunk(backend)
        XCTAssertTrue(try engine.runDriven(try job([5], outcome)) { outcome.result != nil })
        XCTAssertEqual(try outcome.result?.get(), [5])
        XCTAssertEqual(outcome.calls, 1)
        XCTAssertEqual(backend.chunks[0], [.init(task: 1, inputs: [5])])
        // The engine is idle again: the next call drives too, and the engine thread's round
        // finds nothing left.
        let second = Outcome()
        answerNextChunk(backend)
        XCTAssertTrue(try engine.runDriven(try job([6], second)) { second.result != nil })
        XCTAssertEqual(try second.result?.get(), [6])
        XCTAssertEqual(engine.step(), .idle)
        XCTAssertEqual(outcome.calls + second.calls, 2)
    }

    func testACallerDoesNotDriveAnEngineThatHasWork() throws {
        let backend = ScriptedBackend(workers: 1)
        let engine = PoolEngine(backend: backend, maxTasksPerChild: nil, initializer: nil)
        let running = Outcome()
        try engine.submit(try job([1], running))
        _ = engine.step()
        let waiting = Outcome()
        let second = try job([2], waiting)
        XCTAssertFalse(try engine.runDriven(second) { waiting.result != nil })
        // Not admitted: only the first call's chunk went out.
        XCTAssertEqual(backend.chunks[0].map(\.inputs), [[1]])
        XCTAssertNil(waiting.result)
    }

    /// Another thread submits while a caller drives: the caller stops at once and leaves its
    /// call to the engine thread, which admits the newcomer; each call completes once.
    func testADrivingCallerHandsTheEngineBackWhenAnotherCallArrives() throws {
        let backend = ScriptedBackend(workers: 2)
        let engine = PoolEngine(backend: backend, maxTasksPerChild: nil, initializer: nil)
        let driven = Outcome()
        let other = Outcome()
        backend.duringNextPoll = { try? engine.submit(try! self.job([20], other)) }
        XCTAssertTrue(try engine.runDriven(try job([10], driven)) { driven.result != nil })
        XCTAssertNil(driven.result, "the caller kept driving after another call arrived")
        XCTAssertTrue(backend.chunks[1].isEmpty, "the driving caller admitted another caller's call")
        // The engine thread's rounds: the newcomer is admitted, both are answered.
        _ = engine.step()
        for worker in 0..<2 {
            for chunk in backend.chunks[worker] {
                backend.take(worker)
                backend.reply(worker, task: chunk.task, outputs: chunk.inputs)
            }
        }
        _ = engine.step()
        XCTAssertEqual(try driven.result?.get(), [10])
        XCTAssertEqual(try other.result?.get(), [20])
        XCTAssertEqual(driven.calls, 1)
        XCTAssertEqual(other.calls, 1)
    }

    /// A worker that dies under a driven call fails it with `WorkerDied` naming the input,
    /// and the driving caller replaces the worker.
    func testADeathUnderADrivenCallFailsItAndReplacesTheWorker() throws {
        let backend = ScriptedBackend(workers: 1)
        let engine = PoolEngine(backend: backend, maxTasksPerChild: nil, initializer: nil)
        let outcome = Outcome()
        backend.duringNextPoll = {
            backend.duringNextPoll = {
                backend.take(0)
                backend.die(0, signal: 11)
            }
        }
        XCTAssertTrue(try engine.runDriven(try job([3], outcome)) { outcome.result != nil })
        guard case .failure(let error)? = outcome.result, let died = error as? WorkerDied else {
            return XCTFail("\(String(describing: outcome.result))")
        }
        XCTAssertEqual(died.inputIndex, 0)
        XCTAssertEqual(died.signal, 11)
        XCTAssertEqual(backend.replaced, [0])
        XCTAssertEqual(outcome.calls, 1)
    }

    func testAClosedEngineRefusesADrivenCall() throws {
        let backend = ScriptedBackend(workers: 1)
        let engine = PoolEngine(backend: backend, maxTasksPerChild: nil, initializer: nil)
        engine.close()
        XCTAssertEqual(engine.step(), .stopped)
        let outcome = Outcome()
        let refused = try job([1], outcome)
        XCTAssertThrowsError(try { if try !engine.runDriven(refused, until: { false }) { try engine.submit(refused) } }()) {
            XCTAssertEqual(($0 as? PoolError)?.code, .closed)
        }
        XCTAssertTrue(backend.chunks[0].isEmpty)
    }
}
