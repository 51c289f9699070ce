import Wire
import XCTest

@testable import Multiprocessing

#if canImport(Glibc)
import Glibc
#endif

/// A worker rank dozes while its local workers hold a backlog of chunks
/// (`LocalBackend.doze`, `RankRelay.dozeOnBacklog`): not woken by each answer, but woken at
/// once when a worker's backlog runs low or a worker ends — never sleeping its whole time
/// while a worker starves. The pieces without MPI, with real local worker processes.
final class RankDozeTests: TimeLimitedTestCase {
    private func started(workers: Int) throws -> LocalBackend {
        let backend = try LocalBackend(workers: workers, method: .fork)
        try backend.start()
        return backend
    }

    private func define<F: ParallelFunction>(_ function: F, id: UInt32, on backend: LocalBackend, worker: Int = 0) throws {
        let definition = try FunctionDefinition.make(function)
        definition.id = id
        var writer = WireWriter()
        MasterCodec.define(definition, into: &writer)
        backend.send(&writer, to: worker)
    }

    /// Sends one chunk per input (as a rank forwards rank 0's chunks).
    private func chunks(function: UInt32, _ inputs: [Int], to backend: LocalBackend, worker: Int = 0) throws {
        for (task, input) in inputs.enumerated() {
            var writer = WireWriter()
            MasterCodec.beginChunk(task: UInt64(task + 1), function: function, into: &writer)
            try writer.encodeArray([input])
            backend.send(&writer, to: worker)
        }
    }

    /// Seconds `body` took.
    private func seconds(_ body: () -> Void) -> Double {
        let start = monotonicNanoseconds()
        body()
        return Double(monotonicNanoseconds() - start) / 1e9
    }

    /// The worker wakes a dozing rank when its task ring runs down to half of what it held:
    /// eight 30 ms chunks, a doze of up to 20 s ends after about four of them.
    func testADozeEndsWhenTheBacklogRunsLow() throws {
        let backend = try started(workers: 1)
        defer { backend.shutdown(deadline: monotonicNanoseconds()) }
        try define(SleepMilliseconds(), id: 1, on: backend)
        try chunks(function: 1, Array(repeating: 30, count: 8), to: backend)
        var dozed = false
        let took = seconds { dozed = backend.doze(nanoseconds: 20_000_000_000, workers: 0..<1, leastBytes: 1) }
        XCTAssertTrue(dozed)
        XCTAssertLessThan(took, 10, "the worker never woke the rank when its backlog ran low")
        XCTAssertGreaterThan(took, 0.03, "the rank was woken before the worker's backlog ran low")
    }

    /// A worker that ends (its task crashed) wakes a dozing rank while its ring still holds
    /// chunks above the mark.
    func testADozeEndsWhenAWorkerEnds() throws {
        let backend = try started(workers: 1)
        defer { backend.shutdown(deadline: monotonicNanoseconds()) }
        try define(CrashOn(victims: [99]), id: 1, on: backend)
        // The crash comes second; six chunks stay in the ring, above the half mark.
        try chunks(function: 1, [0, 99] + Array(repeating: 0, count: 6), to: backend)
        let took = seconds { _ = backend.doze(nanoseconds: 20_000_000_000, workers: 0..<1, leastBytes: 1) }
        XCTAssertLessThan(took, 10, "a worker's end did not wake the dozing rank")
        var ended = false
        let deadline = monotonicNanoseconds() + 10_000_000_000
        while !ended && monotonicNanoseconds() < deadline {
            _ = backend.pollRaw(message: { _, _ in }, ended: { _, _ in ended = true })
            if !ended { usleep(1_000) }
        }
        XCTAssertTrue(ended)
    }

    /// No doze while a worker holds nothing (it would starve): the rank relays as answers come.
    func testNoDozeWhileAWorkerHoldsNothing() throws {
        let backend = try started(workers: 2)
        defer { backend.shutdown(deadline: monotonicNanoseconds()) }
        try define(SleepMilliseconds(), id: 1, on: backend, worker: 0)
        try chunks(function: 1, Array(repeating: 200, count: 4), to: backend, worker: 0)
        let took = seconds { XCTAssertFalse(backend.doze(nanoseconds: 20_000_000_000, workers: 0..<2, leastBytes: 1)) }
        XCTAssertLessThan(took, 1)
    }
}
