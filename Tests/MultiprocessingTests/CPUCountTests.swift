import XCTest
@testable import Multiprocessing

final class CPUCountTests: XCTestCase {
    func testCPUCountIsPositiveAndAtMostOnline() {
        XCTAssertGreaterThan(Multiprocessing.cpuCount, 0)
        XCTAssertLessThanOrEqual(Multiprocessing.cpuCount, 4096)
    }
}
