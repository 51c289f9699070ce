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
