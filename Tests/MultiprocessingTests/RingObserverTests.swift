import Synchronization
import XCTest

@testable import Multiprocessing

#if canImport(Glibc)
import Glibc
#endif

/// A thread that only looks at a ring (as the pool's thread does before it sleeps) while
/// another thread produces and a third consumes.
final class RingObserverTests: XCTestCase {
    func testLookingAtARingWhileOthersUseItStaysInRange() throws {
        let capacity = 64
        let memory = UnsafeMutableRawPointer.allocate(byteCount: Ring.byteCount(capacity: capacity), alignment: 64)
        defer { memory.deallocate() }
        memory.initializeMemory(as: UInt8.self, repeating: 0, count: Ring.byteCount(capacity: capacity))
        let ring = Ring(at: memory, capacity: capacity)
        let done = Atomic<Bool>(false)
        let moved = 150_000
        let producer = Thread {
            var sent = 0
            let bytes = [UInt8](repeating: 1, count: 13)
            while sent < moved {
                sent += bytes.withUnsafeBytes { ring.write($0) }
            }
        }
        let consumer = Thread {
            var received = 0
            var bytes = [UInt8](repeating: 0, count: 11)
            while received < moved {
                received += bytes.withUnsafeMutableBytes { ring.read(into: $0) }
            }
            done.store(true, ordering: .sequentiallyConsistent)
        }
        producer.start()
        consumer.start()
        var bad = 0
        let deadline = monotonicNanoseconds() + 20_000_000_000
        while !done.load(ordering: .sequentiallyConsistent) && monotonicNanoseconds() < deadline {
            // On a negative distance these trapped ("Not enough bits to represent the passed value").
            let available = ring.available, free = ring.freeSpace
            if !(0...capacity).contains(available) || !(0...capacity).contains(free) { bad += 1 }
        }
        XCTAssertTrue(done.load(ordering: .sequentiallyConsistent), "the ring did not move its bytes within 20 s")
        XCTAssertEqual(bad, 0)
    }
}
