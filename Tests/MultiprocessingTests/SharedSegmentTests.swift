import XCTest

@testable import Multiprocessing

final class SharedSegmentTests: TimeLimitedTestCase {
    /// A segment created after the workers started reaches them however they were started:
    /// inherited for nobody, sent with SCM_RIGHTS to all.
    func testSegmentCreatedAfterWorkersStartReachesThemOnEveryStartMethod() throws {
        for method in [StartMethod.fork, .forkserver, .spawn] {
            try Pool.with(processes: 2, startMethod: method) { pool in
                _ = try pool.map(Square(), [1, 2]) // workers are up
                let segment = try SharedSegment(size: 8 * 64)
                for i in 0..<64 { segment.base.storeBytes(of: -i, toByteOffset: i * 8, as: Int.self) }
                let before = try pool.map(WriteSquareIntoSegment(segment: segment), 0..<64, chunkSize: 5)
                XCTAssertEqual(before, (0..<64).map { -$0 }, "\(method)")
                for i in 0..<64 {
                    XCTAssertEqual(segment.base.load(fromByteOffset: i * 8, as: Int.self), i * i, "\(method)")
                }
                // As an input, too, and a second segment in the same worker.
                let other = try SharedSegment(size: 64)
                other.base.storeBytes(of: 4242, toByteOffset: 8, as: Int.self)
                XCTAssertEqual(try pool.starmap(ReadSegmentInput(), [(other, 1), (segment, 3)]), [4242, 9], "\(method)")
            }
        }
    }
}
