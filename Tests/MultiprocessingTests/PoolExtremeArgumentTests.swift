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

extension PoolExtremeArgumentTests {
    /// A map over more inputs than the machine's memory can hold results for (a range is
    /// accepted as it is, without an array) is a typed error naming imap, not the end of the
    /// program (an allocation that fails ends it); imap over the same range works.
    func testAMapWhoseResultsCannotFitIsRefused() throws {
        try Pool.with(processes: 1) { pool in
            for count in [1 << 40, Int.max] {
                XCTAssertThrowsError(try pool.map(Square(), 0..<count)) {
                    XCTAssertEqual(($0 as? PoolError)?.code, .invalidArgument, "\($0)")
                    XCTAssertTrue("\($0)".contains("imap"), "\($0)")
                }
                XCTAssertThrowsError(try pool.mapAsync(Square(), stride(from: 0, to: count, by: 1)))
                XCTAssertThrowsError(try pool.map(Square(), (0..<count).lazy.map { $0 })) {
                    XCTAssertEqual(($0 as? PoolError)?.code, .invalidArgument, "\($0)")
                }
                XCTAssertThrowsError(try pool.starmap(Add(), (0..<count).lazy.map { ($0, $0) }))
                // With a checkpoint the inputs are made an array first: that must fit too.
                XCTAssertThrowsError(try pool.map(Square(), 0..<count, checkpoint: "/nonexistent/journal")) {
                    XCTAssertEqual(($0 as? PoolError)?.code, .invalidArgument, "\($0)")
                }
                let stream = try pool.imap(Square(), 0..<count)
                XCTAssertEqual(try stream.next()?.get(), 0)
                stream.cancel()
            }
            XCTAssertEqual(try pool.map(Square(), 0..<(1 << 12)).count, 1 << 12)
        }
    }
}
