import XCTest

@testable import Wire

/// `writeArithmeticIntegers` writes exactly what `encodeArray` writes for the array of the
/// same integers, for every width, signed and unsigned, wrapping included; `appendBytes`
/// appends in place after what is there.
final class WireArithmeticTests: XCTestCase {
    private func check<T: FixedWidthInteger & WireRawElement>(
        _: T.Type, first: T, step: Int, count: Int, file: StaticString = #filePath, line: UInt = #line
    ) throws {
        var values: [T] = []
        var value = first
        for _ in 0..<count {
            values.append(value)
            value = value &+ T(truncatingIfNeeded: step)
        }
        var expected = WireWriter()
        expected.write(UInt32(0xABCD_EF01)) // something before, as a message header
        try expected.encodeArray(values)
        var written = WireWriter(capacity: 0)
        written.write(UInt32(0xABCD_EF01))
        written.writeArithmeticIntegers(
            first: UInt64(truncatingIfNeeded: first), step: UInt64(bitPattern: Int64(step)), count: count,
            byteWidth: T.bitWidth / 8)
        XCTAssertEqual(written.bytes, expected.bytes, "\(T.self) first \(first) step \(step) count \(count)", file: file, line: line)
        try written.bytes.withUnsafeBytes { raw in
            var reader = WireReader(raw)
            XCTAssertEqual(try reader.read(UInt32.self), 0xABCD_EF01, file: file, line: line)
            XCTAssertEqual(try reader.decodeArray(T.self), values, file: file, line: line)
        }
    }

    func testSameBytesAsEncodeArrayForEveryWidth() throws {
        for count in [0, 1, 2, 127, 128, 1000, 40_000] {
            try check(Int.self, first: -17, step: 3, count: count)
            try check(Int.self, first: Int.max - 5, step: 2, count: count) // wraps
            try check(UInt.self, first: UInt.max - 100, step: -7, count: count)
            try check(Int64.self, first: Int64.min, step: Int(Int64.max / 999), count: count)
            try check(UInt64.self, first: 12, step: 1, count: count)
            try check(Int32.self, first: -3, step: -100_003, count: count)
            try check(UInt32.self, first: UInt32.max - 3, step: 1, count: count)
            try check(Int16.self, first: 300, step: -1, count: count)
            try check(UInt16.self, first: 65_000, step: 9, count: count)
            try check(Int8.self, first: -128, step: 1, count: count)
            try check(UInt8.self, first: 250, step: 1, count: count)
        }
    }

    func testAppendBytesWritesInPlaceAfterWhatIsThere() {
        var writer = WireWriter(capacity: 3)
        [UInt8(9), 8, 7].withUnsafeBytes { writer.writeRaw($0) }
        writer.appendBytes(count: 0) { _ in XCTFail("called for no bytes") }
        for round in 0..<3 {
            let before = writer.count
            var seen = 0
            writer.appendBytes(count: 5000) { raw in
                seen = raw.count
                for i in raw.indices { raw[i] = UInt8(truncatingIfNeeded: i &* 31 &+ round) }
            }
            XCTAssertEqual(seen, 5000)
            XCTAssertEqual(writer.count, before + 5000)
            XCTAssertEqual(Array(writer.bytes[before...]), (0..<5000).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ round) })
        }
        XCTAssertEqual(Array(writer.bytes.prefix(3)), [9, 8, 7])
    }
}
