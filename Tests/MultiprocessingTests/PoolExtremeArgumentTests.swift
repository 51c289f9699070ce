import XCTest

@testable import Multiprocessing

#if canImport(Glibc)
import Glibc
#endif

/// Arguments at the ends of their ranges — the largest chunk sizes, back-offs and timeouts —
/// give the results or a typed error, never a crash of the caller or of the pool's thread.
final class PoolExtremeArgumentTests: TimeLimitedTestCase {
    func testTheLargestChunkSizesWork() throws {
        var template = Array("/tmp/swiftmp-chunks-XXXXXX".utf8CString)
        let directory = template.withUnsafeMutableBufferPointer { String(cString: mkdtemp($0.baseAddress!)) }
        defer { _ = try? FileManager.default.removeItem(atPath: directory) }
        let squares = (0..<10).map { $0 * $0 }
        try Pool.with(processes: 2) { pool in
            for chunkSize in [Int.max, Int.max / 2, 1 << 40] {
                XCTAssertEqual(try pool.map(Square(), Array(0..<10), chunkSize: chunkSize), squares, "\(chunkSize)")
                XCTAssertEqual(try pool.map(Square(), 0..<10, chunkSize: chunkSize), squares, "\(chunkSize)")
                XCTAssertEqual(try pool.imap(Square(), Array(0..<10), chunkSize: chunkSize).map { try $0.get() }, squares)
                XCTAssertEqual(
                    try pool.imapUnordered(Square(), Array(0..<10), chunkSize: chunkSize).map { try $0.get() }.sorted(), squares)
                XCTAssertEqual(
                    try pool.imap(Square(), Array(0..<10), chunkSize: chunkSize, checkpoint: directory + "/\(chunkSize)")
                        .map { try $0.get() }, squares)
            }
        }
    }
}

extension PoolExtremeArgumentTests {
    /// A back-off of 10¹¹ s (under a larger `maximumBackoff`) is a wait, not a crash of the
    /// pool's thread converting it to nanoseconds; the call can be cancelled meanwhile.
    func testAHugeRetryBackoffWaitsAndCanBeCancelled() throws {
        try Pool.with(processes: 1) { pool in
            for (backoff, maximum) in [(1e11, 1e12), (1e300, 1e300), (1, 1e300)] {
                let retry = RetryPolicy(attempts: 3, on: [.threw], backoff: backoff, multiplier: 1e300, maximumBackoff: maximum)
                let call = try pool.mapAsync(ThrowOn(victims: [1]), [0, 1, 2], chunkSize: 1, retry: retry)
                // backoff 1: the second attempt after 1 s, the third after 10³⁰⁰ × 1 s.
                XCTAssertThrowsError(try call.get(timeout: backoff == 1 ? 1.5 : 0.5)) {
                    XCTAssertTrue($0 is TimeoutError, "\(backoff): \($0)")
                }
                call.cancel()
                XCTAssertThrowsError(try call.get(timeout: 10)) {
                    XCTAssertEqual(($0 as? PoolError)?.code, .cancelled, "\(backoff): \($0)")
                }
            }
            XCTAssertEqual(try pool.map(Square(), [1, 2, 3]), [1, 4, 9])
        }
    }
}
