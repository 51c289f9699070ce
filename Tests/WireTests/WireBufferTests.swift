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

    /// A string's bytes must be valid UTF-8: a stray byte, a sequence cut short (one cut to 3
    /// of its 4 bytes repairs to U+FFFD, the same byte count) and an overlong encoding are
    /// rejected as corrupt, never repaired; valid text of 1 to 4 bytes a character reads back.
    func testStringsMustBeValidUTF8() throws {
        for bytes: [UInt8] in [[0x61, 0xFF, 0x62], [0xF0, 0x9F, 0x98], [0x61, 0xE2, 0x82], [0xC0, 0xAF], [0xED, 0xA0, 0x80]] {
            var writer = WireWriter()
            bytes.withUnsafeBytes { writer.writeLengthPrefixed($0) }
            try writer.bytes.withUnsafeBytes { raw in
                var reader = WireReader(raw)
                XCTAssertThrowsError(try reader.read(String.self), "\(bytes)") { error in
                    XCTAssertEqual((error as? WireError)?.code, .corrupt, "\(bytes)")
                }
            }
        }
        for text in ["", "a", "héllo", "€ and 😀", String(repeating: "ü😀x", count: 1000)] {
            var writer = WireWriter()
            writer.write(text)
            try writer.bytes.withUnsafeBytes { raw in
                var reader = WireReader(raw)
                XCTAssertEqual(try reader.read(String.self), text)
                XCTAssertTrue(reader.isAtEnd)
            }
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

final class WireRawInPlaceTests: XCTestCase {
    /// `_decodeRawArray` copies exactly the expected count into place; a message holding
    /// another count is reported (the count returned), with nothing copied and nothing read.
    func testDecodeRawArrayInPlaceChecksTheCountBeforeCopying() throws {
        var writer = WireWriter()
        try writer.encodeArray([Int32(7), -8, 9])
        writer.write(UInt8(42))
        try writer.bytes.withUnsafeBytes { raw in
            var destination = [Int32](repeating: 0, count: 4)
            var reader = WireReader(raw)
            let found = try destination.withUnsafeMutableBufferPointer { buffer in
                try reader._decodeRawArray(Int32.self, into: buffer.baseAddress!, expected: 4)
            }
            XCTAssertEqual(found, 3)
            XCTAssertEqual(reader.offset, 0, "nothing read when the count differs")
            XCTAssertEqual(destination, [0, 0, 0, 0], "nothing copied when the count differs")
            let exact = try destination.withUnsafeMutableBufferPointer { buffer in
                try reader._decodeRawArray(Int32.self, into: buffer.baseAddress! + 1, expected: 3)
            }
            XCTAssertEqual(exact, 3)
            XCTAssertEqual(destination, [0, 7, -8, 9])
            XCTAssertEqual(try reader.read(UInt8.self), 42, "the reader is past the array")
        }
    }

    /// `_readRawElementBytes` gives the bytes of a small array in place, and leaves the
    /// reader where it was (nil) for an array whose bytes may live elsewhere.
    func testRawElementBytesInPlaceOnlyUnderTheDeferredSize() throws {
        var writer = WireWriter()
        try writer.encodeArray([UInt16(1), 2])
        let large = [UInt8](repeating: 5, count: WireDeferredBlock.minimumSize)
        try writer.encodeArray(large)
        try writer.bytes.withUnsafeBytes { raw in
            var reader = WireReader(raw)
            let small = try XCTUnwrap(try reader._readRawElementBytes(UInt16.self))
            XCTAssertEqual(small.count, 2)
            XCTAssertEqual(small.bytes.count, 4)
            XCTAssertEqual(small.bytes.loadUnaligned(fromByteOffset: 2, as: UInt16.self), 2)
            let before = reader.offset
            XCTAssertNil(try reader._readRawElementBytes(UInt8.self))
            XCTAssertEqual(reader.offset, before)
            XCTAssertEqual(try reader.decodeArray(UInt8.self), large)
            XCTAssertTrue(reader.isAtEnd)
        }
    }
}
