#if MPI
import Foundation
import Synchronization
import XCTest

@testable import MPI

#if canImport(Glibc)
import Glibc
#endif

/// `MPIEnvironment.finalize` waits for the threads `MPI_Init` started to have nothing left to
/// run (Open MPI 4.1 unloads code an event queued at the end of `MPI_Init` still needs:
/// `LibraryThreads`). These stand in for those threads: one that works for a while before it
/// waits in `poll`, one that never stops working.
final class LibraryThreadsTests: XCTestCase {
    /// A thread that spins for `spinSeconds` (or until stopped), then says so and waits in
    /// `poll` on a pipe until the pipe's write end closes.
    private final class Worker: Sendable {
        let readEnd: Int32
        let writeEnd: Int32
        let polling = Atomic<Bool>(false)
        let stop = Atomic<Bool>(false)
        let spinSeconds: Double

        init(spinSeconds: Double) throws {
            var ends: [Int32] = [0, 0]
            guard pipe(&ends) == 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
            (readEnd, writeEnd, self.spinSeconds) = (ends[0], ends[1], spinSeconds)
        }

        func start() {
            Thread { [self] in
                let end = Date().addingTimeInterval(spinSeconds)
                while Date() < end && !stop.load(ordering: .relaxed) {}
                polling.store(true, ordering: .sequentiallyConsistent)
                var entry = pollfd(fd: readEnd, events: Int16(POLLIN), revents: 0)
                _ = poll(&entry, 1, -1) // ends when the write end closes
            }.start()
        }

        func end() {
            stop.store(true, ordering: .relaxed)
            close(writeEnd)
        }
    }

    /// Starts `worker`'s thread inside `LibraryThreads.started`, waiting for it to show up.
    private func started(_ worker: Worker) -> LibraryThreads {
        let ((), threads) = LibraryThreads.started {
            let before = LibraryThreads.current()
            worker.start()
            let deadline = Date().addingTimeInterval(5)
            while LibraryThreads.current().subtracting(before).isEmpty && Date() < deadline { usleep(1000) }
        }
        return threads
    }

    func testTheWaitEndsOnlyAfterAThreadThatWasWorkingWaitsForEvents() throws {
        let worker = try Worker(spinSeconds: 0.3)
        defer { worker.end() }
        let threads = started(worker)
        XCTAssertEqual(threads.ids.count, 1, "the thread started inside `started(by:)` is found")
        XCTAssertFalse(worker.polling.load(ordering: .sequentiallyConsistent), "still spinning")
        XCTAssertTrue(threads.waitUntilQuiet(timeoutNanoseconds: 10_000_000_000))
        XCTAssertTrue(worker.polling.load(ordering: .sequentiallyConsistent), "the wait returned while the thread still worked")
        let sample = try XCTUnwrap(LibraryThreads.sample(try XCTUnwrap(threads.ids.first)))
        XCTAssertTrue(sample.waits, "\(sample)")
    }

    func testTheWaitGivesUpOnAThreadThatKeepsWorking() throws {
        let worker = try Worker(spinSeconds: 60)
        defer { worker.end() }
        let threads = started(worker)
        XCTAssertEqual(threads.ids.count, 1)
        let start = Date()
        XCTAssertFalse(threads.waitUntilQuiet(timeoutNanoseconds: 200_000_000))
        XCTAssertGreaterThanOrEqual(Date().timeIntervalSince(start), 0.2)
        XCTAssertFalse(worker.polling.load(ordering: .sequentiallyConsistent))
    }

    func testThreadsThatEndedOrNoneAreQuiet() {
        XCTAssertTrue(LibraryThreads(ids: []).waitUntilQuiet(timeoutNanoseconds: 0))
        XCTAssertNil(LibraryThreads.sample(-1))
        XCTAssertTrue(LibraryThreads(ids: [-1]).waitUntilQuiet(timeoutNanoseconds: 0))
    }
}
#endif
