import XCTest

@testable import Wire

#if canImport(Glibc)
import Glibc
#endif

/// A custom `encode(to:)` with an unkeyed container of 200 small values then a large array:
/// closing the container inserts the second byte of its count varint in front of the
/// array's deferred block, which must move with it.
private struct ManyThenLarge: Codable, Equatable {
    var small: [Int]
    var large: [UInt8]
    var name: String

    init(small: [Int], large: [UInt8], name: String) {
        self.small = small
        self.large = large
        self.name = name
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.unkeyedContainer()
        for value in small { try container.encode(value) }
        try container.encode(large)
        try container.encode(name)
    }

    init(from decoder: any Decoder) throws {
        var container = try decoder.unkeyedContainer()
        small = []
        for _ in 0..<200 { small.append(try container.decode(Int.self)) }
        large = try container.decode([UInt8].self)
        name = try container.decode(String.self)
    }
}

private struct Record: Codable, Equatable {
    var doubles: [Double]
    var tag: Int
    var inner: ManyThenLarge
    var ints: [Int]
}

/// Encodes a large array, then throws.
private struct ThrowsAfterLargeArray: Encodable {
    struct Failure: Error {}
    func encode(to encoder: any Encoder) throws {
        var container = encoder.unkeyedContainer()
        try container.encode([UInt8](repeating: 9, count: 1 << 20))
        throw Failure()
    }
}

private func bytes(_ count: Int, seed: Int) -> [UInt8] {
    (0..<count).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ seed &+ ($0 >> 9)) }
}

/// Large raw arrays referenced by the writer instead of copied (`defersLargeBlocks`), and
/// decoded out of a shared mapping a piece at a time.
final class WireLargeBlockTests: XCTestCase {
    func gathered(_ writer: WireWriter, from offset: Int = 0) -> [UInt8] {
        writer.withParts(from: offset) { parts in parts.flatMap { Array($0) } }
    }

    private func record() -> Record {
        Record(
            doubles: (0..<40_000).map { Double($0) * 0.5 }, tag: 7,
            inner: ManyThenLarge(small: Array(0..<200), large: bytes(300_001, seed: 3), name: "né"),
            ints: Array(0..<10))
    }

    /// The gathered parts are exactly the bytes a plain writer writes, the large arrays were
    /// referenced rather than copied, and they decode back.
    func testDeferredBlocksGatherToThePlainEncoding() throws {
        let value = [record(), record()]
        let large = bytes(1 << 20, seed: 5)
        var plain = WireWriter()
        plain.write(UInt64(42))
        try plain.encode(value)
        try plain.encodeArray(large)
        plain.write(UInt8(1))

        var deferring = WireWriter()
        deferring.defersLargeBlocks = true
        deferring.write(UInt64(42))
        try deferring.encode(value)
        try deferring.encodeArray(large)
        deferring.write(UInt8(1))

        XCTAssertEqual(deferring.deferredBlocks.count, 5, "2 × (320 000 doubles + 300 001 bytes) and 1 MiB")
        XCTAssertEqual(deferring.deferredByteCount, 2 * (320_000 + 300_001) + (1 << 20))
        XCTAssertEqual(deferring.totalCount, plain.count)
        XCTAssertLessThan(deferring.bytes.count, 10_000, "the large arrays were copied into the writer")
        XCTAssertEqual(gathered(deferring), plain.bytes)
        XCTAssertEqual(gathered(deferring, from: 8), Array(plain.bytes[8...]))

        var materialized = deferring
        materialized.materializeDeferredBlocks()
        XCTAssertEqual(materialized.bytes, plain.bytes)
        XCTAssertTrue(materialized.deferredBlocks.isEmpty)

        try plain.bytes.withUnsafeBytes { raw in
            var reader = WireReader(raw)
            XCTAssertEqual(try reader.read(UInt64.self), 42)
            XCTAssertEqual(try reader.decode([Record].self), value)
            XCTAssertEqual(try reader.decodeArray(UInt8.self), large)
            XCTAssertEqual(try reader.read(UInt8.self), 1)
        }

        deferring.removeAll()
        XCTAssertEqual(deferring.totalCount, 0)
        XCTAssertTrue(deferring.deferredBlocks.isEmpty)
        XCTAssertTrue(deferring.defersLargeBlocks)
    }

    /// Small arrays, arrays of non-raw elements and writers without the flag copy as before.
    func testOnlyLargeRawArraysOfAnOptedInWriterAreDeferred() throws {
        var deferring = WireWriter()
        deferring.defersLargeBlocks = true
        try deferring.encode(bytes(WireDeferredBlock.minimumSize - 1, seed: 1))
        try deferring.encode([String](repeating: "x", count: 300_000))
        XCTAssertTrue(deferring.deferredBlocks.isEmpty)

        var plain = WireWriter()
        try plain.encode(bytes(2 << 20, seed: 1))
        XCTAssertTrue(plain.deferredBlocks.isEmpty)
        XCTAssertEqual(plain.totalCount, plain.count)
    }

    /// A value that fails half-way leaves neither bytes nor blocks behind.
    func testFailedEncodingForgetsItsDeferredBlocks() throws {
        var writer = WireWriter()
        writer.defersLargeBlocks = true
        try writer.encode(bytes(1 << 20, seed: 2))
        let before = (writer.bytes, writer.deferredBlocks.count, writer.totalCount)
        XCTAssertThrowsError(try writer.encode(ThrowsAfterLargeArray()))
        XCTAssertEqual(writer.bytes, before.0)
        XCTAssertEqual(writer.deferredBlocks.count, before.1)
        XCTAssertEqual(writer.totalCount, before.2)
    }

    /// The writer holds the array: changing the caller's copy afterwards changes nothing sent.
    func testDeferredBlockKeepsTheArrayAsItWas() throws {
        var array = bytes(1 << 20, seed: 4)
        let original = array
        var writer = WireWriter()
        writer.defersLargeBlocks = true
        try writer.encode(array)
        array[12] &+= 1
        array.append(0)
        array = []
        var plain = WireWriter()
        try plain.encode(original)
        XCTAssertEqual(gathered(writer), plain.bytes)
    }

    /// A large array decoded out of a registered shared mapping (copied in pieces, each
    /// piece's pages dropped from the mapping) is intact, at an odd offset and across pieces.
    func testLargeArrayDecodesIntactFromASharedMapping() throws {
        let doubles = (0..<(3 << 20) + 5).map { Double($0) * 1.25 - 7 } // 24 MiB: three pieces and a bit
        var writer = WireWriter()
        writer.write(UInt8(3))
        try writer.encode(doubles)
        // A shared memory file (what a memfd is), unlinked at once.
        let name = "/swiftmp-wire-test-\(getpid())"
        let fd = shm_open(name, O_RDWR | O_CREAT | O_EXCL, 0o600)
        XCTAssertGreaterThanOrEqual(fd, 0, "shm_open failed: errno \(errno)")
        shm_unlink(name)
        defer { close(fd) }
        let written = writer.bytes.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, 0) }
        XCTAssertEqual(written, writer.count)
        guard let pointer = mmap(nil, writer.count, PROT_READ, MAP_SHARED, fd, 0), pointer != MAP_FAILED else {
            return XCTFail("mmap failed: errno \(errno)")
        }
        let view = UnsafeRawBufferPointer(start: pointer, count: writer.count)
        defer { munmap(pointer, writer.count) }
        WireSharedMappings.register(view)
        XCTAssertTrue(WireSharedMappings.contains(UnsafeRawBufferPointer(rebasing: view[1...])))
        var reader = WireReader(view)
        XCTAssertEqual(try reader.read(UInt8.self), 3)
        let decoded = try reader.decode([Double].self)
        XCTAssertTrue(reader.isAtEnd)
        XCTAssertEqual(decoded, doubles)
        // Read again after its pages were dropped: the same bytes (they stay in the file).
        var again = WireReader(view)
        _ = try again.read(UInt8.self)
        XCTAssertEqual(try again.decode([Double].self), doubles)
        WireSharedMappings.unregister(view)
        XCTAssertFalse(WireSharedMappings.contains(view))
    }
}
