import XCTest

@testable import Multiprocessing

#if canImport(Glibc)
import Glibc
#endif

/// A collection with no contiguous storage and its own iterator (the generic path).
struct PlainCollection: Collection, Sendable {
    var values: [Int]
    var startIndex: Int { 0 }
    var endIndex: Int { values.count }
    func index(after i: Int) -> Int { i + 1 }
    subscript(position: Int) -> Int { values[position] }
    func withContiguousStorageIfAvailable<R>(_ body: (UnsafeBufferPointer<Int>) throws -> R) rethrows -> R? { nil }
}

/// A sequence that is not a collection, of unknown length.
struct PlainSequence: Sequence, Sendable {
    var values: [Int]
    func makeIterator() -> IndexingIterator<[Int]> { values.makeIterator() }
    var underestimatedCount: Int { 0 }
}

/// `count` Ints 0…count−1 whose iterator, before it yields the last one, waits (at most
/// 20 s) until `flag` is 1: set by `MarkInput` in a worker.
struct WaitingCollection: Collection {
    var count: Int
    var flag: SharedValue<Int32>
    var startIndex: Int { 0 }
    var endIndex: Int { count }
    func index(after i: Int) -> Int { i + 1 }
    subscript(position: Int) -> Int { position }

    struct Iterator: IteratorProtocol {
        var position = 0
        let count: Int
        let flag: SharedValue<Int32>
        mutating func next() -> Int? {
            guard position < count else { return nil }
            if position == count - 1 {
                let end = monotonicNanoseconds() + 20_000_000_000
                while flag.value == 0 && monotonicNanoseconds() < end { usleep(1000) }
            }
            defer { position += 1 }
            return position
        }
    }

    func makeIterator() -> Iterator { Iterator(count: count, flag: flag) }
}

/// x² with wrapping (inputs near Int.min and Int.max).
struct WrappingSquare: ParallelFunction {
    func callAsFunction(_ x: Int) -> Int { x &* x }
}

/// Returns its input; sets `flag` to 1 when it runs input 0.
struct MarkInput: ParallelFunction {
    var flag: SharedValue<Int32>
    func callAsFunction(_ x: Int) -> Int {
        if x == 0 { flag.withLock { $0 = 1 } }
        return x
    }
}

final class PoolInputKindsTests: TimeLimitedTestCase {
    /// Runs `body` with every kind of input sequence, short (made an array) and long (written
    /// into the job while it runs), as its own type, with its elements in its own order
    /// (as `Array(_:)` reads them: the standard library's iteration, not ours).
    private func withEachKind(_ n: Int, _ body: (String, [Int], any Sequence<Int> & Sendable) throws -> Void) rethrows {
        let sequences: [(String, any Sequence<Int> & Sendable)] = [
            ("range", 0..<n), ("closedRange", -5...(n - 6)), ("emptyRange", 5..<5),
            ("strideTo", stride(from: 3, to: 3 + 2 * n, by: 2)), ("strideToNegative", stride(from: n, to: -n, by: -3)),
            ("strideThroughNegative", stride(from: 2 * n, through: 0, by: -2)),
            ("strideThroughExact", stride(from: -n, through: n, by: 1)),
            ("strideEmpty", stride(from: 0, to: 10, by: -1)),
            ("strideExtremes", stride(from: Int.min, to: Int.max, by: Int.max / Int(n) * 2 + 1)),
            // No lazy map here: `LazyMapSequence` is not `Sendable`, so written as one of these
            // `(0..<n).lazy.map { … }` becomes the eager map's `Array` (it did, unnoticed).
            // PoolCollectionInputsTests passes real lazy maps to every entry point.
            ("set", Set((0..<n).map { $0 * 7 - 3 })),
            ("plainSequence", PlainSequence(values: (0..<n).map { $0 - 100 })),
            ("plainCollection", PlainCollection(values: (0..<n).map { $0 ^ 0x55 })),
            ("arraySlice", Array(0..<(n + 40))[17..<(n + 17)]),
        ]
        for (name, sequence) in sequences {
            try body(name, Array(sequence), sequence)
        }
    }

    func testMapOfEveryInputKindIsTheMapOfItsElements() throws {
        try Pool.with(processes: 2) { pool in
            for n in [5, 3000] {
                try withEachKind(n) { name, elements, sequence in
                    let expected = elements.map { $0 &* $0 }
                    for chunk in (n < 100 ? [nil, 1, 7] : [nil, 7]) as [Int?] {
                        func run(_ s: some Sequence<Int>) throws -> [Int] { try pool.map(WrappingSquare(), s, chunkSize: chunk) }
                        XCTAssertTrue(try run(sequence) == expected, "map \(name) n=\(n) chunk=\(String(describing: chunk))")
                    }
                }
            }
        }
    }

    func testMapAsyncAsyncMapAndImapOfEveryInputKind() async throws {
        let pool = try Pool(processes: 2)
        defer { pool.terminate() }
        for n in [5, 3000] {
            for (name, elements, sequence) in collect(n) {
                let expected = elements.map { $0 &* $0 }
                func mapAsync(_ s: some Sequence<Int>) throws -> [Int] { try pool.mapAsync(WrappingSquare(), s, chunkSize: 5).get() }
                XCTAssertTrue(try mapAsync(sequence) == expected, "mapAsync \(name) n=\(n)")
                func asyncMap(_ s: some Sequence<Int>) async throws -> [Int] { try await pool.asyncMap(WrappingSquare(), s) }
                let awaited = try await asyncMap(sequence)
                XCTAssertTrue(awaited == expected, "asyncMap \(name) n=\(n)")
                func imap(_ s: some Sequence<Int> & Sendable) throws -> [Int] {
                    try pool.imap(WrappingSquare(), s, chunkSize: 64).map { try $0.get() }
                }
                XCTAssertTrue(try imap(sequence) == expected, "imap \(name) n=\(n)")
                func imapUnordered(_ s: some Sequence<Int> & Sendable) throws -> [Int] {
                    try pool.imapUnordered(WrappingSquare(), s, chunkSize: 64).map { try $0.get() }
                }
                XCTAssertTrue(try imapUnordered(sequence).sorted() == expected.sorted(), "imapUnordered \(name) n=\(n)")
            }
        }
    }

    private func collect(_ n: Int) -> [(String, [Int], any Sequence<Int> & Sendable)] {
        var all: [(String, [Int], any Sequence<Int> & Sendable)] = []
        withEachKind(n) { all.append(($0, $1, $2)) }
        return all
    }

    func testStarmapOfEveryInputKind() throws {
        try Pool.with(processes: 2) { pool in
            for n in [5, 3000] {
                let pairs = (0..<n).map { ($0, 3 * $0 - 1) }
                let expected = pairs.map { $0 + $1 }
                XCTAssertEqual(try pool.starmap(Add(), pairs), expected, "array n=\(n)")
                XCTAssertEqual(try pool.starmap(Add(), (0..<n).lazy.map { ($0, 3 * $0 - 1) }), expected, "lazy n=\(n)")
                XCTAssertEqual(try pool.starmap(Add(), pairs[...]), expected, "slice n=\(n)")
                XCTAssertEqual(
                    try pool.starmap(Add(), zip(0..<n, stride(from: -1, to: 3 * n - 1, by: 3))), expected,
                    "zip n=\(n)")
                XCTAssertEqual(
                    try pool.starmapAsync(Add(), (0..<n).lazy.map { ($0, 3 * $0 - 1) }, chunkSize: 9).get(),
                    expected, "starmapAsync n=\(n)")
            }
        }
    }

    /// Integer strides are counted from their bounds (not read twice, as `Array(_:)` reads
    /// them), whatever their direction, and computed, never stored (`_IntegerProgression`);
    /// other sequences are not taken for strides.
    func testIntegerStridesAreCountedFromTheirBounds() {
        let cases: [(any Sequence<Int>, Int)] = [
            (stride(from: 0, to: 5000, by: 1), 5000), (stride(from: 0, to: 5000, by: 3), 1667),
            (stride(from: 5000, to: 0, by: -3), 1667), (stride(from: 5000, through: 0, by: -4), 1251),
            (stride(from: -3000, through: 3000, by: 2), 3001), (stride(from: Int.min, to: Int.max, by: Int.max / 1000), 2001),
            (stride(from: 0, to: 10, by: 1), 10),
        ]
        for (sequence, count) in cases {
            func check(_ s: some Sequence<Int>) {
                XCTAssertEqual(_IntegerProgression(s, for: WrappingSquare.self)?.count, count, "\(s)")
                XCTAssertNil(_InputProducer(s), "\(s): not read into a buffer")
                XCTAssertEqual(Array(s).count, count, "\(s)")
            }
            check(sequence)
        }
        XCTAssertNil(_InputProducer(Array(0..<5000)), "an array is used as it is")
        XCTAssertNil(_IntegerProgression(Array(0..<5000), for: WrappingSquare.self), "an array is used as it is")
        XCTAssertNil(_InputProducer(PlainSequence(values: Array(0..<5000))), "unknown length: made an array")
        XCTAssertNil(_IntegerProgression(stride(from: 0, to: 0, by: 1), for: WrappingSquare.self), "empty: made an array")
        XCTAssertNotNil(_InputProducer((0..<5000).lazy.map { $0 }), "a lazy map is read into a buffer")
    }

    /// `_InputProducer.produce` writes every input in order and publishes each whole step and
    /// the end, exactly once each, for a collection with its own iterator, a `lazy.map` (of
    /// `Int`s, whose loop the compiler vectorises, and of `String`s, which need copying) and
    /// a contiguous one, whatever the count's remainder.
    func testProduceWritesEveryInputAndPublishesWholeSteps() {
        func check<S: Sequence>(_ inputs: S, step: Int, _ label: String) where S.Element: Equatable {
            guard let producer = _InputProducer(inputs) else { return XCTFail("\(label): not produced") }
            let base = UnsafeMutablePointer<S.Element>.allocate(capacity: producer.count)
            defer { base.deinitialize(count: producer.count).deallocate() }
            var published: [Int] = []
            producer.produce(into: base, every: step) { published.append($0) }
            let expected = Array(stride(from: step, to: producer.count, by: step)) + [producer.count]
            XCTAssertEqual(published, expected, label)
            XCTAssertEqual(Array(UnsafeBufferPointer(start: base, count: producer.count)), Array(inputs), label)
        }
        for (count, step) in [(10_001, 4096), (8192, 4096), (1024, 5000), (3000, 1)] {
            check(PlainCollection(values: Array((0..<count).reversed())), step: step, "own iterator \(count)/\(step)")
            check((0..<count).lazy.map { $0 &* 3 &- 7 }, step: step, "lazy map of Int \(count)/\(step)")
            check((0..<count).lazy.map { "input \($0)" }, step: step, "lazy map of String \(count)/\(step)")
            check(ContiguousArray(0..<count), step: step, "contiguous \(count)/\(step)")
        }
    }

    /// A long collection is not read whole before the work starts: its last element is read
    /// only after a worker ran input 0 (on a pool that read it all first, the iterator would
    /// wait its 20 s and the call would take that long).
    func testLongCollectionRunsWhileItIsRead() throws {
        let flag = try SharedValue<Int32>(0)
        try Pool.with(processes: 2) { pool in
            let start = monotonicNanoseconds()
            let got = try pool.map(MarkInput(flag: flag), WaitingCollection(count: 20_000, flag: flag), chunkSize: 100)
            let seconds = Double(monotonicNanoseconds() - start) / 1e9
            XCTAssertEqual(got, Array(0..<20_000))
            XCTAssertLessThan(seconds, 15, "the map read all its inputs before it sent the first chunk")
        }
    }
}
