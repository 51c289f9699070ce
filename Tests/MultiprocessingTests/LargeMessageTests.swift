import XCTest

@testable import Multiprocessing

#if canImport(Glibc)
import Glibc
#endif

/// Messages over 2 GiB in both directions. Needs ~12 GB of memory and some seconds, so it
/// runs only when SWIFTMP_LARGE_TESTS=1 (it was run by hand on 24 GB machines).
final class LargeMessageTests: XCTestCase {
    func testMessagesOverTwoGiBTravelBothWays() throws {
        guard let setting = getenv("SWIFTMP_LARGE_TESTS").map({ String(cString: $0) }) else {
            throw XCTSkip("set SWIFTMP_LARGE_TESTS=1 to send messages over 2 GiB")
        }
        // SWIFTMP_LARGE_TESTS=<bytes> tries another size (to time the path on smaller ones).
        let count = Int(setting).flatMap { $0 > 1 ? $0 : nil } ?? (1 << 31) + 4099
        try Pool.with(processes: 1, startMethod: .fork) { pool in
            var big = [UInt8](repeating: 7, count: count)
            big[count - 1] = 9
            let expectedSample = 7 * ((count + 4095) / 4096) + ((count - 1) % 4096 == 0 ? 2 : 0)
            XCTAssertEqual(try pool.apply(ByteStats(), big), [count, expectedSample])
            big = []
            let back = try pool.apply(MakeBytes(), count)
            XCTAssertEqual(back.count, count)
            XCTAssertEqual(back[count - 1], UInt8((count - 1) % 251))
            XCTAssertEqual(back[count / 2], UInt8((count / 2) % 251))
        }
    }
}
