import XCTest

@testable import Multiprocessing

#if canImport(Glibc)
import Glibc
#endif

/// x ↦ 3x + 1, wrapping, for any integer type (the inputs of narrow ranges and strides).
struct ThreeXPlusOne<T: FixedWidthInteger & Codable & Sendable>: ParallelFunction {
    func callAsFunction(_ x: T) -> T { x &* 3 &+ 1 }
}

/// A result whose every bit depends on the input: x / 7 + x · 1e-3 as a `Double`.
struct ScaledDouble: ParallelFunction {
    func callAsFunction(_ x: Int) -> Double { Double(x) / 7 + Double(x) * 1e-3 }
}

/// Encodes its inputs its own way (each as a string): an integer range must not be
/// computed into its messages as plain numbers.
struct OwnInputEncoding: ParallelFunction {
    func callAsFunction(_ x: Int) -> Int { x &+ 5 }
    static func _encodeInputs(_ inputs: UnsafeBufferPointer<Int>, into writer: inout WireWriter) throws {
        try writer.encode(inputs.map { String($0) })
    }
    static func _decodeInputs(from reader: inout WireReader) throws -> [Int] {
        try reader.decode([String].self).map { Int($0)! }
    }
}

/// Integer ranges and strides are never stored: each chunk's inputs are computed from the
/// sequence's bounds into the chunk's message (`_IntegerProgression`). The results are those
/// of the same map over `Array(sequence)`, bit for bit and in order, for every kind of input
/// at every chunk size; and the engine's per-input accounting holds for computed spans.
final class PoolIntegerProgressionTests: TimeLimitedTestCase {
    /// What `F` encodes for `Array(s)[span]` is what the progression computes, for spans
    /// anywhere in it (a fresh chunk, a retried piece, one input), for every integer width.
    private func checkEncoding<F: ParallelFunction>(
        _ s: some Sequence<F.Input>, _: F.Type, file: StaticString = #filePath, line: UInt = #line
    ) throws {
        let elements = Array(s)
        guard let progression = _IntegerProgression(s, for: F.self) else {
            return XCTFail("\(s) is not taken for a progression", file: file, line: line)
        }
        XCTAssertEqual(progression.count, elements.count, "\(s)", file: file, line: line)
        let n = elements.count
        let spans = [(0, n), (0, 1), (n - 1, 1), (n / 3, n / 2), (n / 2, 1), (1, n - 1)].filter { $0.0 >= 0 && $0.1 >= 1 && $0.0 + $0.1 <= n }
        for (first, count) in spans {
            var expected = WireWriter()
            try elements[first..<(first + count)].withUnsafeBufferPointer { try F._encodeInputs($0, into: &expected) }
            var computed = WireWriter()
            progression.encode(InputSpan(first: first, count: count), into: &computed)
            XCTAssertEqual(computed.bytes, expected.bytes, "\(s) span \(first)..<\(first + count)", file: file, line: line)
        }
    }

    func testRangesAndStridesOfEveryIntegerTypeEncodeAsTheirArrays() throws {
        try checkEncoding(0..<3000, ThreeXPlusOne<Int>.self)
        try checkEncoding(-5...2994, ThreeXPlusOne<Int>.self)
        try checkEncoding((Int.max - 9)...Int.max, ThreeXPlusOne<Int>.self)
        try checkEncoding(Int.min..<(Int.min + 7), ThreeXPlusOne<Int>.self)
        try checkEncoding(stride(from: 1000, to: -1000, by: -7), ThreeXPlusOne<Int>.self)
        try checkEncoding(stride(from: Int.max, through: Int.max - 1000, by: -100), ThreeXPlusOne<Int>.self)
        try checkEncoding(UInt8(0)...UInt8.max, ThreeXPlusOne<UInt8>.self)
        try checkEncoding(stride(from: UInt8(250), through: 5, by: -5), ThreeXPlusOne<UInt8>.self)
        try checkEncoding(Int8.min..<Int8.max, ThreeXPlusOne<Int8>.self)
        try checkEncoding(stride(from: Int16(-30_000), to: 30_000, by: 17), ThreeXPlusOne<Int16>.self)
        try checkEncoding(UInt16(60_000)..<UInt16.max, ThreeXPlusOne<UInt16>.self)
        try checkEncoding(stride(from: Int32.max, to: Int32.min, by: -4_000_001), ThreeXPlusOne<Int32>.self)
        try checkEncoding(UInt32(7)...UInt32(4000), ThreeXPlusOne<UInt32>.self)
        try checkEncoding(stride(from: Int64.min, to: Int64.max, by: Int(Int64.max / 500)), ThreeXPlusOne<Int64>.self)
        try checkEncoding((UInt64.max - 3000)...UInt64.max, ThreeXPlusOne<UInt64>.self)
        try checkEncoding(stride(from: UInt.max, to: 0, by: -Int.max / 300), ThreeXPlusOne<UInt>.self)
    }

    func testWhatIsNotAnIntegerProgression() {
        XCTAssertNil(_IntegerProgression(Array(0..<10), for: ThreeXPlusOne<Int>.self), "an array")
        XCTAssertNil(_IntegerProgression((0..<10).lazy.map { $0 }, for: ThreeXPlusOne<Int>.self), "a lazy map")
        XCTAssertNil(_IntegerProgression(Set(0..<10), for: ThreeXPlusOne<Int>.self), "a set")
        XCTAssertNil(_IntegerProgression(3..<3, for: ThreeXPlusOne<Int>.self), "empty")
        XCTAssertNil(_IntegerProgression(stride(from: 0, to: 10, by: -1), for: ThreeXPlusOne<Int>.self), "empty stride")
        XCTAssertNil(_IntegerProgression(Int.min...Int.max, for: ThreeXPlusOne<Int>.self), "more than Int.max inputs")
        XCTAssertNil(_IntegerProgression(0..<10, for: OwnInputEncoding.self), "a function that encodes its inputs its own way")
    }

    /// Every kind of input sequence, as its own type, and the same map over its elements as
    /// an array: bit-identical results in order, at chunk sizes 1, 7, 100 and the default.
    func testEveryInputKindGivesBitIdenticalResultsAtEveryChunkSizeOnFork() throws {
        let n = 1500
        let kinds: [(String, any Sequence<Int>)] = [
            ("array", Array(0..<n).map { $0 * 5 - 7 }), ("range", 0..<n), ("closedRange", -5...(n - 6)),
            ("rangeNearMax", (Int.max - n + 1)...Int.max), ("strideTo", stride(from: 3, to: 3 + 2 * n, by: 2)),
            ("strideToNegative", stride(from: n, to: -2 * n, by: -3)), ("strideThrough", stride(from: -n, through: n, by: 1)),
            ("lazyMap", (0..<n).lazy.map { $0 &* 31 &+ 1 }), ("set", Set((0..<n).map { $0 * 7 - 3 })),
            ("arraySlice", Array(0..<(n + 40))[17..<(n + 17)]), ("short range", 10..<20),
        ]
        try Pool.with(processes: 2, startMethod: .fork) { pool in
            for (name, sequence) in kinds {
                let elements = Array(sequence)
                let expected = elements.map { ThreeXPlusOne<Int>()($0) }
                let expectedBits = elements.map { ScaledDouble()($0).bitPattern }
                for chunk in [1, 7, 100, nil] as [Int?] {
                    func run(_ s: some Sequence<Int>) throws {
                        XCTAssertTrue(try pool.map(ThreeXPlusOne<Int>(), s, chunkSize: chunk) == expected, "map \(name) chunk \(chunk ?? 0)")
                        guard chunk != 1 else { return } // the longest: map alone
                        let doubles = try pool.mapAsync(ScaledDouble(), s, chunkSize: chunk).get(timeout: 60)
                        XCTAssertTrue(doubles.map(\.bitPattern) == expectedBits, "mapAsync \(name) chunk \(chunk ?? 0)")
                    }
                    try run(sequence)
                }
            }
            // Narrow integer types, and starmap over a range (its one-argument tuples).
            XCTAssertEqual(try pool.map(ThreeXPlusOne<UInt8>(), UInt8(0)...UInt8.max, chunkSize: 7), (0...255).map { UInt8(truncatingIfNeeded: $0 * 3 + 1) })
            XCTAssertEqual(
                try pool.map(ThreeXPlusOne<Int16>(), stride(from: Int16(-30_000), to: 30_000, by: 17)),
                stride(from: Int16(-30_000), to: 30_000, by: 17).map { $0 &* 3 &+ 1 })
            XCTAssertEqual(
                try pool.map(ThreeXPlusOne<UInt64>(), (UInt64.max - 999)...UInt64.max, chunkSize: 100), ((UInt64.max - 999)...UInt64.max).map { $0 &* 3 &+ 1 })
            XCTAssertEqual(try pool.map(OwnInputEncoding(), 0..<3000, chunkSize: 100), (0..<3000).map { $0 + 5 })
            XCTAssertEqual(try pool.starmap(Add(), zip(0..<n, 0..<n)), (0..<n).map { 2 * $0 })
        }
    }

    func testAsyncMapOfARange() async throws {
        let pool = try Pool(processes: 2, startMethod: .fork)
        defer { pool.terminate() }
        let got = try await pool.asyncMap(ThreeXPlusOne<Int>(), stride(from: 7, through: 70_007, by: 7))
        XCTAssertEqual(got, stride(from: 7, through: 70_007, by: 7).map { $0 &* 3 &+ 1 })
    }

    /// A stride computed into its chunks (positions ≠ values), one of whose inputs kills its
    /// worker: that input alone fails, named by its position, at every chunk size; retried,
    /// it runs alone; and when it dies only once, the chunk's other inputs — lost with the
    /// worker — run again, computed at their own positions, and the results are exact.
    func testComputedChunkWithACrashingInputFailsOnlyThatInput() throws {
        let inputs = stride(from: 1000, to: 1000 + 3 * 300, by: 3)
        let position = 123, victim = 1000 + 3 * 123
        XCTAssertNotNil(_IntegerProgression(inputs, for: CrashOn.self), "the stride is computed, not stored")
        try Pool.with(processes: 2, startMethod: .fork) { pool in
            for chunk in [7, 100, nil] as [Int?] {
                XCTAssertThrowsError(try pool.map(CrashOn(victims: [victim]), inputs, chunkSize: chunk)) { error in
                    XCTAssertEqual((error as? WorkerDied)?.inputIndex, position, "chunk \(chunk ?? 0): \(error)")
                }
                let retry = RetryPolicy(attempts: 2, on: [.workerDied])
                XCTAssertThrowsError(try pool.map(CrashOn(victims: [victim]), inputs, chunkSize: chunk, retry: retry)) { error in
                    let exhausted = error as? RetriesExhausted
                    XCTAssertEqual(exhausted?.inputIndex, position, "chunk \(chunk ?? 0): \(error)")
                    XCTAssertEqual(exhausted?.failures.count, 2, "chunk \(chunk ?? 0): \(error)")
                }
                var template = Array("/tmp/swiftmp-progression-XXXXXX".utf8CString)
                let directory = try XCTUnwrap(template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!).map { String(cString: $0) } })
                defer {
                    unlink("\(directory)/\(victim)")
                    rmdir(directory)
                }
                let results = try pool.map(CrashOnceOn(directory: directory, victims: [victim]), inputs, chunkSize: chunk, retry: retry)
                XCTAssertEqual(access("\(directory)/\(victim)", F_OK), 0, "chunk \(chunk ?? 0): the victim never crashed")
                XCTAssertEqual(results, inputs.map { $0 * 10 }, "chunk \(chunk ?? 0)")
            }
        }
    }

    /// The input buffers of maps over collections are kept for the next map, within limits.
    func testInputBuffersAreReusedWithinTheBudget() throws {
        InputBufferCache.freeKept()
        let first = InputBufferCache.take(Int.self, capacity: 10_000)
        InputBufferCache.give(first, capacity: 10_000)
        let again = InputBufferCache.take(Int.self, capacity: 5_000)
        XCTAssertEqual(UnsafeMutableRawPointer(again), UnsafeMutableRawPointer(first), "a kept buffer large enough is reused")
        let second = InputBufferCache.take(Int32.self, capacity: 10_000)
        XCTAssertNotEqual(UnsafeMutableRawPointer(second), UnsafeMutableRawPointer(first))
        let third = InputBufferCache.take(UInt8.self, capacity: 100)
        InputBufferCache.give(again, capacity: 5_000)
        InputBufferCache.give(second, capacity: 10_000)
        InputBufferCache.give(third, capacity: 100)
        XCTAssertLessThanOrEqual(InputBufferCache.keptNow.buffers, InputBufferCache.maximumBuffers)
        XCTAssertLessThanOrEqual(InputBufferCache.keptNow.bytes, InputBufferCache.budget)
        // The two largest are kept: 80 000 bytes (the first, reused) and 40 000.
        XCTAssertEqual(InputBufferCache.keptNow.bytes, 80_000 + 40_000)
        let huge = InputBufferCache.take(UInt8.self, capacity: InputBufferCache.budget + 1)
        InputBufferCache.give(huge, capacity: InputBufferCache.budget + 1)
        XCTAssertEqual(InputBufferCache.keptNow.bytes, 80_000 + 40_000, "a buffer over the budget is freed, not kept")
        // A map over a lazy map gives its buffer back once the job is gone (here, with the pool).
        InputBufferCache.freeKept()
        let lazy = (0..<50_000).lazy.map { $0 * 2 }
        XCTAssertEqual(try Pool.with(processes: 1) { try $0.map(ThreeXPlusOne<Int>(), lazy) }, lazy.map { $0 &* 3 &+ 1 })
        let end = monotonicNanoseconds() + 10_000_000_000
        while InputBufferCache.keptNow.bytes < 50_000 * 8, monotonicNanoseconds() < end { usleep(1000) }
        XCTAssertEqual(InputBufferCache.keptNow.bytes, 50_000 * 8, "the map's input buffer was not given back")
    }
}
