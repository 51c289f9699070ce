import CSystemShims
import Synchronization
import XCTest

@testable import Multiprocessing

#if canImport(Glibc)
import Glibc
#endif

/// The last value each of two ringing threads published.
private final class Published: Sendable {
    private let first = Atomic<Int>(0)
    private let second = Atomic<Int>(0)
    func store(_ value: Int, side: Int) {
        if side == 0 {
            first.store(value, ordering: .sequentiallyConsistent)
        } else {
            second.store(value, ordering: .sequentiallyConsistent)
        }
    }
    func load(side: Int) -> Int {
        side == 0 ? first.load(ordering: .sequentiallyConsistent) : second.load(ordering: .sequentiallyConsistent)
    }
}

/// A sleeping side of a ring, or the master asleep on its doorbell, is woken by the first
/// write or ring after it went to sleep; later ones make no system call until it sleeps again
/// (`Ring.wake(_:ifSleeping:)`, `Doorbell.ring`) — and no wake-up is lost.
final class WakeOncePerSleepTests: XCTestCase {
    private func withRing(capacity: Int, _ body: (Ring, UnsafeMutableRawPointer) throws -> Void) rethrows {
        let memory = UnsafeMutableRawPointer.allocate(byteCount: Ring.byteCount(capacity: capacity), alignment: 64)
        defer { memory.deallocate() }
        memory.initializeMemory(as: UInt8.self, repeating: 0, count: Ring.byteCount(capacity: capacity))
        try body(Ring(at: memory, capacity: capacity), memory)
    }

    private func withDoorbell(_ body: (Doorbell) throws -> Void) rethrows {
        let words = UnsafeMutablePointer<UInt32>.allocate(capacity: 3)
        defer { words.deallocate() }
        words.initialize(repeating: 0, count: 3)
        try body(Doorbell(sequence: words, sleeping: words + 1, rung: words + 2))
    }

    /// The first write after the consumer announced its sleep takes the announcement down
    /// (it made the futex call); the reader's wake of a sleeping producer the same.
    func testAWriteTakesDownTheConsumersAnnouncedSleep() {
        withRing(capacity: 4096) { ring, memory in
            // Layout: headSequence @8, tailSequence @72, consumerSleeping @128, producerSleeping @192.
            let headSequence = (memory + 8).assumingMemoryBound(to: UInt32.self)
            let consumerSleeping = (memory + 128).assumingMemoryBound(to: UInt32.self)
            let producerSleeping = (memory + 192).assumingMemoryBound(to: UInt32.self)
            CSystemShims_store_u32_seqcst(consumerSleeping, 1)
            let bytes = [UInt8](repeating: 3, count: 10)
            XCTAssertEqual(bytes.withUnsafeBytes { ring.write($0) }, 10)
            XCTAssertEqual(CSystemShims_load_u32_seqcst(consumerSleeping), 0, "the waking write left the sleep announced")
            XCTAssertEqual(bytes.withUnsafeBytes { ring.write($0) }, 10)
            XCTAssertEqual(CSystemShims_load_u32_seqcst(headSequence), 2)

            CSystemShims_store_u32_seqcst(producerSleeping, 1)
            var out = [UInt8](repeating: 0, count: 5)
            XCTAssertEqual(out.withUnsafeMutableBytes { ring.read(into: $0) }, 5)
            XCTAssertEqual(CSystemShims_load_u32_seqcst(producerSleeping), 0, "the waking read left the sleep announced")
        }
    }

    /// Only the first ring after the master went to sleep rings (one increment of the futex
    /// word, one `futex_wake`); the next sleep lets the next ring through again.
    func testOnlyTheFirstRingOfASleepRings() {
        withDoorbell { doorbell in
            doorbell.ring()
            XCTAssertEqual(CSystemShims_load_u32_seqcst(doorbell.sequence), 0, "rang while nobody slept")
            CSystemShims_store_u32_seqcst(doorbell.sleeping, 1) // a sleeper, as `wait` counts it
            doorbell.ring()
            doorbell.ring()
            doorbell.ring()
            XCTAssertEqual(CSystemShims_load_u32_seqcst(doorbell.sequence), 1, "every ring of one sleep rang")
            CSystemShims_store_u32_seqcst(doorbell.sleeping, 0)
            // The sleeper wakes, finds nothing ready, sleeps again: that sleep takes the next ring.
            doorbell.wait(spinning: false, timeoutNanoseconds: 1_000_000) { false }
            CSystemShims_store_u32_seqcst(doorbell.sleeping, 1)
            doorbell.ring()
            XCTAssertEqual(CSystemShims_load_u32_seqcst(doorbell.sequence), 2, "a new sleep was not rung")
            CSystemShims_store_u32_seqcst(doorbell.sleeping, 0)
        }
    }

    /// A producer and a consumer that both sleep at once (no spinning) on a ring smaller than
    /// a message move every byte: no wake-up lost, in either direction.
    func testSleepingProducerAndConsumerLoseNoWakeUp() {
        withRing(capacity: 64) { ring, _ in
            let moved = 40_000
            let received = Atomic<Int>(0)
            let producer = Thread {
                var sent = 0
                let bytes = [UInt8](repeating: 1, count: 100)
                while sent < moved {
                    let n = bytes.withUnsafeBytes { ring.write(UnsafeRawBufferPointer(rebasing: $0[..<min(100, moved - sent)])) }
                    sent += n
                    if n == 0 { ring.waitForSpace(spinning: false, timeoutNanoseconds: 20_000_000_000) }
                }
            }
            let consumer = Thread {
                var total = 0
                var bytes = [UInt8](repeating: 0, count: 37)
                while total < moved {
                    let n = bytes.withUnsafeMutableBytes { ring.read(into: $0) }
                    total += n
                    received.store(total, ordering: .sequentiallyConsistent)
                    if n == 0 { ring.waitForData(spinning: false, timeoutNanoseconds: 20_000_000_000) }
                }
            }
            producer.start()
            consumer.start()
            let deadline = monotonicNanoseconds() + 60_000_000_000
            while received.load(ordering: .sequentiallyConsistent) < moved && monotonicNanoseconds() < deadline {
                usleep(1000)
            }
            // A lost wake-up stalls a side for its 20 s timeout: 40 000 bytes move in well under a second.
            XCTAssertEqual(received.load(ordering: .sequentiallyConsistent), moved)
        }
    }

    /// Two threads ringing after publishing, one master waiting without spinning for each
    /// value: every value is seen, none waits for the timeout.
    func testRingsFromTwoThreadsLoseNoWakeUp() {
        withDoorbell { doorbell in
            let rounds = 2_000
            let published = Published()
            let consumed = Atomic<Int>(0)
            var ringers: [Thread] = []
            for side in 0..<2 {
                ringers.append(
                    Thread {
                        for value in 1...rounds {
                            // Publishes the next value once the master took the last one.
                            while consumed.load(ordering: .sequentiallyConsistent) < 2 * (value - 1) + side
                                && consumed.load(ordering: .sequentiallyConsistent) < 2 * rounds
                            {
                                sched_yield()
                            }
                            published.store(value, side: side)
                            doorbell.ring()
                        }
                    })
            }
            for thread in ringers { thread.start() }
            var seen = 0
            var timedOut = 0
            let deadline = monotonicNanoseconds() + 60_000_000_000
            while seen < 2 * rounds && monotonicNanoseconds() < deadline {
                let side = seen % 2
                let want = seen / 2 + 1
                let before = monotonicNanoseconds()
                doorbell.wait(spinning: false, timeoutNanoseconds: 5_000_000_000) {
                    published.load(side: side) >= want
                }
                if published.load(side: side) >= want {
                    seen += 1
                    consumed.store(seen, ordering: .sequentiallyConsistent)
                } else if monotonicNanoseconds() - before >= 4_000_000_000 {
                    timedOut += 1
                }
            }
            XCTAssertEqual(seen, 2 * rounds)
            XCTAssertEqual(timedOut, 0, "a ring was lost (the master slept to its timeout)")
        }
    }

    /// A worker's channel over a task ring and the master's doorbell (no control socket, no
    /// results read).
    private func withWorkerChannel(capacity: Int, _ body: (WorkerChannel, Ring, Doorbell) throws -> Void) rethrows {
        try withRing(capacity: capacity) { tasks, _ in
            try withRing(capacity: 4096) { results, _ in
                try withDoorbell { doorbell in
                    let transfer = UnsafeMutableRawPointer.allocate(byteCount: TransferWords.byteCount, alignment: 64)
                    defer { transfer.deallocate() }
                    let words = TransferWords(at: transfer)
                    words.reset()
                    let channel = WorkerChannel(
                        tasks: tasks, results: results, doorbell: doorbell, parent: getppid(), control: -1,
                        inbox: DescriptorInbox(socket: -1), transfer: words, pool: getppid())
                    try body(channel, tasks, doorbell)
                }
            }
        }
    }

    /// One frame (length, then payload) of `count` bytes of `value`.
    private static func frame(_ count: Int, _ value: UInt8) -> [UInt8] {
        withUnsafeBytes(of: UInt64(count).littleEndian) { Array($0) } + [UInt8](repeating: value, count: count)
    }

    /// A worker reading a task from a ring with room to spare does not ring the master's
    /// doorbell: the master waits for space only after filling the ring, and a master asleep
    /// waiting for this task's reply would be woken for nothing (once per cold `apply`, at a
    /// pool's start-up between its two workers' starts). Rang on every read before.
    func testReadingATaskFromARingWithRoomDoesNotRingTheMaster() {
        withWorkerChannel(capacity: 4096) { channel, tasks, doorbell in
            CSystemShims_store_u32_seqcst(doorbell.sleeping, 1) // the master waits (for the reply)
            let message = Self.frame(100, 7)
            XCTAssertEqual(message.withUnsafeBytes { tasks.write($0) }, message.count)
            XCTAssertEqual(channel.receive().map(Array.init), [UInt8](repeating: 7, count: 100))
            XCTAssertEqual(CSystemShims_load_u32_seqcst(doorbell.sequence), 0, "the read rang the master's doorbell")
            CSystemShims_store_u32_seqcst(doorbell.sleeping, 0)
        }
    }

    /// A master that writes what fits into a small task ring, keeps the rest and sleeps on its
    /// doorbell while the ring is full (as the pool does with its queued frames) is woken by
    /// the worker's reads every time: every frame arrives, none after a sleep to the timeout.
    func testAMasterWaitingForRoomInTheTaskRingIsWokenByTheWorker() {
        withWorkerChannel(capacity: 256) { channel, tasks, doorbell in
            let frames = 3_000
            let stop = Atomic<Bool>(false)
            let done = Atomic<Bool>(false)
            let master = Thread {
                defer { done.store(true, ordering: .sequentiallyConsistent) }
                for index in 0..<frames {
                    let message = Self.frame(40 + index % 150, UInt8(truncatingIfNeeded: index))
                    var written = 0
                    while written < message.count {
                        if stop.load(ordering: .sequentiallyConsistent) { return }
                        written += message.withUnsafeBytes { tasks.write(UnsafeRawBufferPointer(rebasing: $0[written...])) }
                        if written < message.count {
                            // The ring is full: sleep until the worker frees space.
                            doorbell.wait(spinning: false, timeoutNanoseconds: 20_000_000_000) { tasks.freeSpace > 0 }
                        }
                    }
                }
            }
            master.start()
            // A lost wake-up leaves the master asleep for its 20 s timeout: 3 000 small frames
            // move in well under a second.
            let deadline = monotonicNanoseconds() + 15_000_000_000
            var received = 0
            var wrong = 0
            while received < frames && monotonicNanoseconds() < deadline, let message = channel.receive() {
                if message.count != 40 + received % 150 || message.contains(where: { $0 != UInt8(truncatingIfNeeded: received) }) {
                    wrong += 1
                }
                received += 1
            }
            XCTAssertEqual(received, frames, "the master slept to its timeout")
            XCTAssertEqual(wrong, 0)
            stop.store(true, ordering: .sequentiallyConsistent)
            while !done.load(ordering: .sequentiallyConsistent) {
                doorbell.ringAlways()
                usleep(1_000)
            }
        }
    }
}
