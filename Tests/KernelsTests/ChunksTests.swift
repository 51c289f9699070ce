import Kernels
import XCTest

final class ChunksTests: XCTestCase {
    func testSplitIntoCountCoversRangeWithBalancedPieces() {
        let pieces = Chunks.split(3..<13, into: 4)
        XCTAssertEqual(pieces, [3..<6, 6..<9, 9..<11, 11..<13])
        XCTAssertEqual(Chunks.split(0..<2, into: 5), [0..<1, 1..<2])
        XCTAssertEqual(Chunks.split(0..<0, into: 3), [])
    }

    func testSplitBySize() {
        XCTAssertEqual(Chunks.split(0..<10, size: 4), [0..<4, 4..<8, 8..<10])
        XCTAssertEqual(Chunks.split(5..<5, size: 4), [])
    }
}
