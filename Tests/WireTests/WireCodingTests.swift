import Wire
import XCTest

final class WireCodingTests: XCTestCase {
    func roundTrip<T: Codable & Equatable>(_ value: T, file: StaticString = #filePath, line: UInt = #line) throws {
        let bytes = try Wire.encode(value)
        let decoded = try Wire.decode(T.self, from: bytes)
        XCTAssertEqual(decoded, value, file: file, line: line)
    }

    struct Empty: Codable, Equatable {}
    struct HoldsEmpty: Codable, Equatable {
        var before: Int
        var empty: Empty
        var optionalEmpty: Empty?
        var after: String
    }

    /// A value that encodes nothing (an empty struct) between keyed entries: the entries
    /// after it must still be found.
    func testEmptyValuesBetweenEntriesRoundTrip() throws {
        try roundTrip(HoldsEmpty(before: 1, empty: Empty(), optionalEmpty: Empty(), after: "x"))
        try roundTrip(HoldsEmpty(before: 2, empty: Empty(), optionalEmpty: nil, after: "y"))
        try roundTrip([Empty(), Empty()])
    }

    func testScalarsRoundTrip() throws {
        try roundTrip(0)
        try roundTrip(Int.min)
        try roundTrip(UInt64.max)
        try roundTrip(Int8.min)
        try roundTrip(Float.greatestFiniteMagnitude)
        try roundTrip(Double.leastNonzeroMagnitude)
        try roundTrip(true)
        try roundTrip(false)
        try roundTrip("")
        try roundTrip("NUL \u{0} inside, emoji 🇨🇭🧑🏽‍🚀, combining e\u{301}")
        XCTAssertEqual(try Wire.encode(Int32(1)), [1, 0, 0, 0])
        XCTAssertEqual(try Wire.encode("ab"), [2, 0x61, 0x62])
        XCTAssertTrue(try Wire.decode(Double.self, from: Wire.encode(Double.nan)).isNaN)
    }

    func testEverythingRoundTrips() throws {
        try roundTrip(Everything())
        var other = Everything()
        other.none = 5
        other.nested = nil
        other.nestedSome = .some(.none)
        other.shapes = []
        other.byName = [:]
        try roundTrip(other)
    }

    func testOptionalsRoundTrip() throws {
        try roundTrip(Int?.none)
        try roundTrip(Int?.some(3))
        try roundTrip(Int??.some(nil))
        try roundTrip(Int???.some(.some(nil)))
        try roundTrip([String?]([nil, "a", nil]))
        try roundTrip(Wrapper<Point?>(value: nil))
        try roundTrip(Wrapper<[Point?]>(value: [nil, Point(x: 1, y: 2, z: 3)]))
        XCTAssertEqual(try Wire.encode(Int8?.some(5)), [1, 5])
        XCTAssertEqual(try Wire.encode(Int8?.none), [0])
    }

    func testEnumsRoundTrip() throws {
        for shape in Everything().shapes { try roundTrip(shape) }
        try roundTrip(Shape.maybe(.maybe(.group([.labeled("👍", -1)]))))
        try roundTrip(Color.red)
        try roundTrip(Wrapper(value: Shape.rect(width: 1, height: 2)))
    }

    func testClassesWithSuperEncoderRoundTrip() throws {
        let dog = Dog(name: "Rex", breed: "collie", friend: Dog(name: "Fido", breed: "pug"))
        let decoded = try Wire.decode(Dog.self, from: Wire.encode(dog))
        XCTAssertEqual(decoded, dog)
        XCTAssertEqual(decoded.friend?.name, "Fido")
    }

    func testCustomNestedContainersRoundTrip() throws {
        try roundTrip(Custom(values: Array(0..<300), label: "many"))
        try roundTrip(Custom(values: [], label: ""))
        try roundTrip([Custom(values: [1], label: "a"), Custom(values: [2, 3], label: "b")])
    }

    func testCollectionsRoundTrip() throws {
        try roundTrip([[Int]]([[1], [], [2, 3]]))
        try roundTrip(Set([1, 5, 9]))
        let nested: [String: [String: Int]] = ["a": ["b": 1], "c": [:]]
        try roundTrip(nested)
        try roundTrip([Int: Point](uniqueKeysWithValues: (0..<200).map { ($0, Point(x: $0, y: 0, z: -$0)) }))
        try roundTrip(ContiguousArray<Int16>([1, -1]))
        let byColor: [Color: Int] = [.red: 1, .green: 2]
        try roundTrip(byColor)
    }

    func testRawPathIsLengthThenBytes() throws {
        let bytes = try Wire.encode([Int16(1), 2, -1])
        XCTAssertEqual(bytes, [3, 1, 0, 2, 0, 0xFF, 0xFF])
        var writer = WireWriter()
        try writer.encodeArray([Int16(1), 2, -1])
        XCTAssertEqual(writer.bytes, bytes)
        try writer.encodeArray([Int16(1), 2, -1][1...])
        try writer.encodeArray(Set([Int16(7)]))
        try writer.encodeArray([Point(x: 1, y: 2, z: 3)])
        try [Int16(4), 5].withUnsafeBufferPointer { try writer.encodeArray($0) }
        try writer.bytes.withUnsafeBytes { raw in
            var reader = WireReader(raw)
            XCTAssertEqual(try reader.decodeArray(Int16.self), [1, 2, -1])
            XCTAssertEqual(try reader.decodeArray(Int16.self), [2, -1])
            XCTAssertEqual(try reader.decodeArray(Int16.self), [7])
            XCTAssertEqual(try reader.decodeArray(Point.self), [Point(x: 1, y: 2, z: 3)])
            XCTAssertEqual(try reader.decode([Int16].self), [4, 5])
            XCTAssertTrue(reader.isAtEnd)
        }
    }

    func testMillionDoublesUseTheRawPath() throws {
        let doubles = (0..<1_000_000).map { Double($0) * 0.5 }
        let bytes = try Wire.encode(Wrapper(value: doubles))
        // before (key + 8) + value (key + count varint + 8 MB) + after: nothing per element.
        XCTAssertLessThan(bytes.count, doubles.count * 8 + 64)
        XCTAssertEqual(try Wire.decode(Wrapper<[Double]>.self, from: bytes).value, doubles)
    }

    func testBoolArraysAreCheckedNotCopied() throws {
        try roundTrip([true, false, true])
        var bytes = try Wire.encode([true, false])
        XCTAssertEqual(bytes, [2, 1, 0])
        bytes[2] = 2
        XCTAssertThrowsError(try Wire.decode([Bool].self, from: bytes)) { error in
            XCTAssertEqual((error as? WireError)?.code, .corrupt)
        }
    }

    func testTrailingBytesAreRejected() throws {
        let bytes = try Wire.encode(Point(x: 1, y: 2, z: 3)) + [0]
        XCTAssertThrowsError(try Wire.decode(Point.self, from: bytes)) { error in
            XCTAssertEqual((error as? WireError)?.code, .corrupt)
        }
    }

    func testTruncationNamesTheType() throws {
        let bytes = try Wire.encode(Point(x: 1, y: 2, z: 3))
        XCTAssertThrowsError(try Wire.decode(Point.self, from: Array(bytes.dropLast()))) { error in
            let wire = error as? WireError
            XCTAssertEqual(wire?.code, .truncated)
            XCTAssertTrue(wire?.message.hasPrefix("cannot decode Point: Int for key \"z\"") ?? false, "\(error)")
        }
    }

    func testInvalidUTF8IsRejected() {
        XCTAssertThrowsError(try Wire.decode(String.self, from: [2, 0xC3, 0x28]))
    }

    func testUserEncodingErrorsPropagateUnchanged() {
        XCTAssertNoThrow(try Wire.encode(Wrapper<Int>(value: 1)))
        XCTAssertThrowsError(try Wire.encode([FailsToEncode()])) { error in
            XCTAssertEqual(error as? UserError, UserError())
        }
        var writer = WireWriter()
        writer.write(UInt8(9))
        XCTAssertThrowsError(try writer.encode([FailsToEncode()]))
        XCTAssertEqual(writer.bytes, [9], "a failed encode leaves no partial value")
    }

    func testNestingIsLimited() throws {
        try roundTrip(Tree.chain(depth: 100))
        XCTAssertThrowsError(try Wire.encode(Tree.chain(depth: 1000))) { error in
            XCTAssertEqual((error as? WireError)?.code, .unsupported)
        }
        // Hand-made bytes nesting far deeper than any encoder would write.
        let level: [UInt8] = [1, 9] + Array("children".utf8) + [1]
        var bytes: [UInt8] = []
        for _ in 0..<20_000 { bytes += level }
        bytes += [1, 9] + Array("children".utf8) + [0]
        XCTAssertThrowsError(try Wire.decode(Tree.self, from: bytes)) { error in
            XCTAssertEqual((error as? WireError)?.code, .corrupt)
        }
    }

    func testHugeCountsAreRejectedBeforeAllocating() {
        // count = 2^62 doubles, 4 bytes of payload
        var writer = WireWriter()
        writer.writeVarint(1 << 62)
        writer.write(UInt32(0))
        XCTAssertThrowsError(try Wire.decode([Double].self, from: writer.bytes)) { error in
            XCTAssertEqual((error as? WireError)?.code, .truncated)
        }
        XCTAssertThrowsError(try Wire.decode([Point].self, from: writer.bytes))
        XCTAssertThrowsError(try Wire.decode([String: Int].self, from: writer.bytes))
        XCTAssertThrowsError(try Wire.decode(String.self, from: writer.bytes))
        XCTAssertThrowsError(try Wire.decode(Point.self, from: writer.bytes))
        XCTAssertThrowsError(try Wire.decode([UInt8].self, from: [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01]))
    }

    func testOutOfOrderKeyedReads() throws {
        struct Forward: Encodable { var a = 1, b = 2 }
        struct Backward: Decodable, Equatable {
            var a: Int, b: Int, again: Int
            enum CodingKeys: CodingKey { case a, b }
            init(a: Int, b: Int, again: Int) { (self.a, self.b, self.again) = (a, b, again) }
            init(from decoder: any Decoder) throws {
                let c = try decoder.container(keyedBy: CodingKeys.self)
                a = try c.decode(Int.self, forKey: .a)
                b = try c.decode(Int.self, forKey: .b)
                again = try c.decode(Int.self, forKey: .a) // an entry already passed
            }
        }
        struct Reversed: Decodable {
            enum CodingKeys: CodingKey { case a, b }
            init(from decoder: any Decoder) throws {
                let c = try decoder.container(keyedBy: CodingKeys.self)
                _ = try c.decode(Int.self, forKey: .b)
                _ = try c.decode(Int.self, forKey: .a)
            }
        }
        struct Partial: Decodable {
            enum CodingKeys: CodingKey { case a }
            init(from decoder: any Decoder) throws {
                _ = try decoder.container(keyedBy: CodingKeys.self).decode(Int.self, forKey: .a)
            }
        }
        let bytes = try Wire.encode(Forward())
        // Backward reads a, b, then a again: every value is the encoded one.
        XCTAssertEqual(try Wire.decode(Backward.self, from: bytes), Backward(a: 1, b: 2, again: 1))
        XCTAssertThrowsError(try Wire.decode(Reversed.self, from: bytes))
        XCTAssertThrowsError(try Wire.decode(Partial.self, from: bytes)) { error in
            XCTAssertEqual((error as? WireError)?.code, .unsupported)
        }
    }

    func testWritingToAClosedContainerThrows() {
        struct Interleaved: Encodable {
            enum Keys: CodingKey { case a, b }
            func encode(to encoder: any Encoder) throws {
                var outer = encoder.container(keyedBy: Keys.self)
                var inner = outer.nestedContainer(keyedBy: Keys.self, forKey: .a)
                try outer.encode(1, forKey: .b)
                try inner.encode(2, forKey: .a)
            }
        }
        XCTAssertThrowsError(try Wire.encode(Interleaved())) { error in
            XCTAssertEqual((error as? WireError)?.code, .unsupported)
        }
    }

    func testRawArrayThroughput() throws {
        let values = Array(0..<25_000)
        var best = Double.infinity
        for _ in 0..<20 {
            let start = ContinuousClock.now
            let bytes = try Wire.encode(values)
            let decoded = try Wire.decode([Int].self, from: bytes)
            let elapsed = ContinuousClock.now - start
            XCTAssertEqual(decoded.count, values.count)
            best = min(best, Double(elapsed.components.attoseconds) / 1e18 + Double(elapsed.components.seconds))
        }
        let gigabytesPerSecond = Double(values.count * 8 * 2) / best / 1e9
        // A per-element path runs at well under 0.1 GB/s in debug builds.
        XCTAssertGreaterThan(gigabytesPerSecond, 0.5, "encode+decode of [Int] ran at \(gigabytesPerSecond) GB/s")
    }
}
