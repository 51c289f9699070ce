import Wire
import XCTest

final class WireBufferTests: XCTestCase {
    func testIntegersRoundTripLittleEndian() throws {
        var writer = WireWriter()
        writer.write(UInt32(0x0102_0304))
        writer.write(Int64(-5))
        writer.write("héllo")
        XCTAssertEqual(Array(writer.bytes.prefix(4)), [4, 3, 2, 1])
        try writer.bytes.withUnsafeBytes { raw in
            var reader = WireReader(raw)
            XCTAssertEqual(try reader.read(UInt32.self), 0x0102_0304)
            XCTAssertEqual(try reader.read(Int64.self), -5)
            XCTAssertEqual(try reader.read(String.self), "héllo")
            XCTAssertTrue(reader.isAtEnd)
            XCTAssertThrowsError(try reader.read(UInt8.self))
        }
    }

    func testLengthLargerThanBufferIsRejected() throws {
        var writer = WireWriter()
        writer.write(UInt64.max)
        try writer.bytes.withUnsafeBytes { raw in
            var reader = WireReader(raw)
            XCTAssertThrowsError(try reader.readLengthPrefixed()) { error in
                XCTAssertEqual((error as? WireError)?.code, .truncated)
            }
        }
    }
}
