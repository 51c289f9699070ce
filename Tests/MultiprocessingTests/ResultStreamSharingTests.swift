import Foundation
import XCTest

@testable import Multiprocessing

/// Threads sharing one `imap` stream (Python's `IMapIterator` allows it): each result goes to
/// exactly one of them, and a `next(timeout:)` waiting for its turn behind a blocked `next()`
/// still returns in time. (Port4DifferenceTests runs the same in a child process; this one,
/// in process, is in `Scripts/check-races.sh`'s list.)
final class ResultStreamSharingTests: XCTestCase {
    /// The values the consumer threads got, under an `NSLock` (a pthread mutex, which
    /// ThreadSanitizer sees; it does not see `Synchronization.Mutex`'s futex on Linux).
    private final class Collected: @unchecked Sendable {
        private let lock = NSLock()
        private var values: [Int] = []
        func add(_ value: Int) { lock.withLock { values.append(value) } }
        var all: [Int] { lock.withLock { values } }
    }

    func testThreadsSharingAStreamGetEveryResultExactlyOnce() throws {
        try Pool.with(processes: 2) { pool in
            let stream = try pool.imapUnordered(Square(), Array(0..<3000), chunkSize: 7)
            let seen = Collected()
            let done = DispatchSemaphore(value: 0)
            for _ in 0..<3 {
                Thread.detachNewThread {
                    while let result = stream.next() {
                        if let value = try? result.get() { seen.add(value) }
                    }
                    done.signal()
                }
            }
            for _ in 0..<3 { XCTAssertEqual(done.wait(timeout: .now() + 60), .success, "a consumer did not end") }
            let values = seen.all
            XCTAssertEqual(values.count, 3000)
            XCTAssertEqual(Set(values), Set((0..<3000).map { $0 * $0 }))
        }
    }

    func testATimedNextWaitingForItsTurnReturnsInTime() throws {
        try Pool.with(processes: 1) { pool in
            let stream = try pool.imap(SleepMilliseconds(), [2000])
            let blocked = DispatchSemaphore(value: 0)
            Thread.detachNewThread {
                _ = stream.next() // holds the turn for about 2 s
                blocked.signal()
            }
            usleep(200_000)
            let start = Date()
            XCTAssertThrowsError(try stream.next(timeout: 0.3)) { XCTAssertTrue($0 is TimeoutError, "\($0)") }
            XCTAssertLessThan(Date().timeIntervalSince(start), 1.5, "next(timeout: 0.3) waited for the other thread's turn")
            XCTAssertEqual(blocked.wait(timeout: .now() + 30), .success)
        }
    }
}
