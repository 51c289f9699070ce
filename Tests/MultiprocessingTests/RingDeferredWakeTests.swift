import CSystemShims
import Synchronization
import XCTest

@testable import Multiprocessing

#if canImport(Glibc)
import Glibc
#endif

/// A worker rank writes a batch of tasks into a worker's ring without waking it, then wakes it
/// once (`Ring.write(_:waking:)`, `Ring.wakeConsumer()`, `LocalBackend.wakeDeferred()`).
final class RingDeferredWakeTests: XCTestCase {
    /// A consumer asleep on the ring stays asleep through writes made with `waking: false`
    /// and is woken by `wakeConsumer()`: no lost wake-up, no wake-up per write.
    func testWritesWithoutWakingLeaveTheConsumerAsleepUntilWoken() throws {
        let capacity = 4096
        let memory = UnsafeMutableRawPointer.allocate(byteCount: Ring.byteCount(capacity: capacity), alignment: 64)
        defer { memory.deallocate() }
        memory.initializeMemory(as: UInt8.self, repeating: 0, count: Ring.byteCount(capacity: capacity))
        let ring = Ring(at: memory, capacity: capacity)
        // The consumer's "sleeping" word (Ring's layout: @128).
        let sleeping = (memory + 128).assumingMemoryBound(to: UInt32.self)
        let returned = Atomic<Int>(0)
        let consumer = Thread {
            // A spurious return (none expected) would be caught by the assertions below.
            ring.waitForData(spinning: false, timeoutNanoseconds: 20_000_000_000)
            returned.store(ring.available, ordering: .sequentiallyConsistent)
        }
        consumer.start()
        let asleepBy = monotonicNanoseconds() + 5_000_000_000
        while CSystemShims_load_u32_seqcst(sleeping) == 0 && monotonicNanoseconds() < asleepBy { usleep(1000) }
        XCTAssertEqual(CSystemShims_load_u32_seqcst(sleeping), 1, "the consumer never went to sleep")
        usleep(20_000) // into futex_wait
        let bytes = [UInt8](repeating: 7, count: 100)
        for _ in 0..<4 { XCTAssertEqual(bytes.withUnsafeBytes { ring.write($0, waking: false) }, 100) }
        usleep(100_000)
        XCTAssertEqual(returned.load(ordering: .sequentiallyConsistent), 0, "a write with waking: false woke the consumer")
        ring.wakeConsumer()
        let wokenBy = monotonicNanoseconds() + 5_000_000_000
        while returned.load(ordering: .sequentiallyConsistent) == 0 && monotonicNanoseconds() < wokenBy { usleep(1000) }
        XCTAssertEqual(returned.load(ordering: .sequentiallyConsistent), 400, "wakeConsumer() did not wake the consumer")
    }

    /// A backend whose sends defer their wake-ups (`LocalBackend.defersWakes`, a worker rank's
    /// own engine) remembers each worker it wrote to once, and wakes them all at the end of the
    /// engine's round (`flush`), before any wait, and at shutdown; `forward(…, deferringWake:)`
    /// (the relay's batches) the same.
    func testDeferredWakesAreAllDeliveredByFlushWaitAndShutdown() throws {
        let backend = try LocalBackend(workers: 3, method: .fork)
        var frame = WireWriter()
        Frame.begin(&frame)
        frame.write(MasterMessage.chunk.rawValue)
        Frame.finish(&frame)
        frame.bytes.withUnsafeBytes { backend.forward(frame: $0, to: 1, deferringWake: true) }
        frame.bytes.withUnsafeBytes { backend.forward(frame: $0, to: 1, deferringWake: true) }
        frame.bytes.withUnsafeBytes { backend.forward(frame: $0, to: 0) }
        XCTAssertEqual(backend.unwoken, [1], "one wake-up per worker, none for a message sent waking")
        backend.flush()
        XCTAssertEqual(backend.unwoken, [])

        backend.defersWakes = true
        var message = WireWriter()
        for worker in [2, 0, 2] {
            MasterCodec.stop(into: &message)
            backend.send(&message, to: worker)
        }
        XCTAssertEqual(backend.unwoken, [2, 0])
        backend.waitForActivity(spinning: false, timeoutNanoseconds: 0) { true }
        XCTAssertEqual(backend.unwoken, [], "a wait first wakes what the round left asleep")
        MasterCodec.stop(into: &message)
        backend.send(&message, to: 1)
        backend.waitIdle(timeoutNanoseconds: 0) { true }
        XCTAssertEqual(backend.unwoken, [])
        MasterCodec.stop(into: &message)
        backend.send(&message, to: 1)
        backend.shutdown(deadline: monotonicNanoseconds())
        XCTAssertEqual(backend.unwoken, [])
    }
}
