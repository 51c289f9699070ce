import Foundation
import Synchronization
import XCTest

@testable import Multiprocessing

#if canImport(Glibc)
import Glibc
#endif

/// Appends "!" to a string (inputs that do not travel as plain numbers).
struct Exclaim: ParallelFunction {
    func callAsFunction(_ s: String) -> String { s + "!" }
}

/// `base`, taken for `Sendable` (a `lazy.map` is not), for `imap`: read by one thread at a time.
struct UncheckedSendableSequence<Base: Sequence>: Sequence, @unchecked Sendable {
    var base: Base
    func makeIterator() -> Base.Iterator { base.makeIterator() }
}

/// Maps over collections that are neither arrays nor integer progressions: a `Set`, a slice,
/// a dictionary's keys, read by position on the pool's thread as each span goes out
/// (`_CollectionInputs`), and a `lazy.map` or a collection type of the caller's, read on the
/// calling thread (`_InputProducer`) — through every entry point, with the results of the
/// same call over an array of the same elements.
final class PoolCollectionInputsTests: TimeLimitedTestCase {
    private var directory = ""

    override func setUp() {
        super.setUp()
        var template = Array("/tmp/swiftmp-collection-XXXXXX".utf8CString)
        directory = template.withUnsafeMutableBufferPointer { String(cString: mkdtemp($0.baseAddress!)) }
    }

    override func tearDown() {
        _ = try? FileManager.default.removeItem(atPath: directory)
        super.tearDown()
    }

    /// Each as its own type (not `& Sendable`: a `lazy.map` is not, and would be taken for
    /// the `Array` of the eager `map`).
    private func kinds(_ n: Int) -> [(String, any Collection<Int>)] {
        [
            ("set", Set((0..<n).map { $0 &* 7 &- 3 })), ("lazyMap", (0..<n).lazy.map { $0 &* 31 &+ 1 }),
            ("lazyMapOfSet", Set(0..<n).lazy.map { $0 &- 11 }),
            ("arraySlice", Array(0..<(n + 40))[17..<(n + 17)]),
            ("plainCollection", PlainCollection(values: (0..<n).map { $0 ^ 0x55 })),
            ("reversed", Array(0..<n).reversed()), ("dictionaryKeys", Dictionary(uniqueKeysWithValues: (0..<n).map { ($0 * 3, $0) }).keys),
            ("dictionaryValues", Dictionary(uniqueKeysWithValues: (0..<n).map { ($0, $0 * 5) }).values),
            ("slice", Set(0..<(n + 100)).dropFirst(100)),
        ]
    }

    /// Standard library collections that any thread may read are read by position on the
    /// pool's thread; a `lazy.map` or a collection type of the caller's is not (it may run
    /// code isolated to the caller's actor), nor an array, a short collection or a sequence.
    func testWhichCollectionsAreReadByPosition() {
        for (name, collection) in kinds(3000) {
            XCTAssertFalse(collection is [Int], name)
            func check(_ c: some Collection<Int>) {
                let readByPosition = ["set", "arraySlice", "reversed", "dictionaryKeys", "dictionaryValues", "slice"]
                XCTAssertEqual(_CollectionInputs(c, for: WrappingSquare.self)?.count, readByPosition.contains(name) ? 3000 : nil, name)
            }
            check(collection)
        }
        XCTAssertNil(_CollectionInputs(Array(0..<5000), for: WrappingSquare.self), "an array is used as it is")
        XCTAssertNil(_CollectionInputs(Set(0..<1000), for: WrappingSquare.self), "short: made an array")
        XCTAssertNil(_CollectionInputs(PlainSequence(values: Array(0..<5000)), for: WrappingSquare.self), "not a collection")
    }

    /// A `lazy.map`'s closure runs on the calling thread, once per input, whichever the
    /// call (Swift 6 traps when a closure isolated to the caller's actor runs elsewhere).
    func testALazyMapsClosureRunsOnTheCallingThreadOncePerInput() async throws {
        let pool = try Pool(processes: 2)
        defer { pool.terminate() }
        let caller = pthread_self()
        let elsewhere = Atomic<Int>(0), calls = Atomic<Int>(0)
        func lazy() -> LazyMapSequence<Range<Int>, Int> {
            (0..<5000).lazy.map {
                if pthread_equal(pthread_self(), caller) == 0 { elsewhere.add(1, ordering: .relaxed) }
                calls.add(1, ordering: .relaxed)
                return $0
            }
        }
        XCTAssertEqual(try pool.map(WrappingSquare(), lazy(), chunkSize: 100), (0..<5000).map { $0 * $0 })
        XCTAssertEqual(try pool.mapAsync(WrappingSquare(), lazy(), chunkSize: 100).get(), (0..<5000).map { $0 * $0 })
        XCTAssertEqual(elsewhere.load(ordering: .relaxed), 0, "the closure ran on another thread")
        XCTAssertEqual(calls.load(ordering: .relaxed), 10_000)
    }

    /// Spans encoded in any order — fresh chunks, pieces of them again, single inputs — are
    /// the bytes of the same spans of an array of the collection's elements, plain or not.
    func testAnySpanEncodesAsTheSameSpanOfTheArray() throws {
        let set = Set((0..<5000).map { $0 * 13 })
        let elements = Array(set)
        let spans = [(0, 1000), (1000, 1000), (2000, 3000), (1500, 1), (1200, 333), (0, 5000), (4999, 1), (10, 20), (2500, 2500)]
        for plain in [true, false] {
            // The first three in order (read by the one iterator), the others by index.
            let inputs = try XCTUnwrap(_CollectionInputs(set, for: WrappingSquare.self))
            for (first, count) in spans {
                var ours = WireWriter(capacity: 64)
                try inputs.encode(first, count, plain, &ours)
                var theirs = WireWriter(capacity: 64)
                try elements[first..<(first + count)].withUnsafeBufferPointer {
                    try encodeInputs(WrappingSquare.self, $0, owner: elements, plain: plain, into: &theirs)
                }
                XCTAssertEqual(ours.bytes, theirs.bytes, "plain \(plain) span \(first)..<\(first + count)")
            }
        }
        let slice = Array(0..<6000)[1000..<6000]
        let sliceInputs = try XCTUnwrap(_CollectionInputs(slice, for: WrappingSquare.self))
        for plain in [true, false] {
            for (first, count) in spans {
                var ours = WireWriter(capacity: 64)
                try sliceInputs.encode(first, count, plain, &ours)
                var theirs = WireWriter(capacity: 64)
                try Array(slice)[first..<(first + count)].withUnsafeBufferPointer {
                    try encodeInputs(WrappingSquare.self, $0, owner: slice, plain: plain, into: &theirs)
                }
                XCTAssertEqual(ours.bytes, theirs.bytes, "slice, plain \(plain) span \(first)..<\(first + count)")
            }
        }
        let strings = Set((0..<3000).map { "s\($0)" })
        let stringInputs = try XCTUnwrap(_CollectionInputs(strings, for: Exclaim.self))
        let stringElements = Array(strings)
        for (first, count) in [(0, 1000), (1000, 1000), (700, 600), (2999, 1), (2000, 1000)] {
            var ours = WireWriter(capacity: 64)
            try stringInputs.encode(first, count, false, &ours)
            var theirs = WireWriter(capacity: 64)
            try stringElements[first..<(first + count)].withUnsafeBufferPointer { try Exclaim._encodeInputs($0, into: &theirs) }
            XCTAssertEqual(ours.bytes, theirs.bytes, "strings \(first)..<\(first + count)")
        }
    }

    /// Every collection kind through every entry point (and a checkpointed map): the results
    /// of the same call over an array of its elements, in order, plain numbers and strings.
    func testEveryKindThroughEveryEntryPointGivesTheArraysResults() async throws {
        let pool = try Pool(processes: 2, startMethod: .fork)
        defer { pool.terminate() }
        for (name, collection) in kinds(3000) {
            let elements = Array(collection)
            let expected = elements.map { $0 &* $0 }
            func all(_ c: some Collection<Int>) async throws {
                for chunk in [nil, 7, 1000] as [Int?] {
                    let label = "\(name) chunk \(chunk ?? 0)"
                    XCTAssertTrue(try pool.map(WrappingSquare(), c, chunkSize: chunk) == expected, "map \(label)")
                    XCTAssertTrue(try pool.mapAsync(WrappingSquare(), c, chunkSize: chunk).get() == expected, "mapAsync \(label)")
                    let awaited = try await pool.asyncMap(WrappingSquare(), c, chunkSize: chunk)
                    XCTAssertTrue(awaited == expected, "asyncMap \(label)")
                }
                let sendable = UncheckedSendableSequence(base: c)
                XCTAssertTrue(try pool.imap(WrappingSquare(), sendable, chunkSize: 64).map { try $0.get() } == expected, "imap \(name)")
                XCTAssertTrue(
                    try pool.imapUnordered(WrappingSquare(), sendable, chunkSize: 64).map { try $0.get() }.sorted() == expected.sorted(),
                    "imapUnordered \(name)")
                let journal = directory + "/\(name).journal"
                XCTAssertTrue(try pool.map(WrappingSquare(), c, chunkSize: 100, checkpoint: journal) == expected, "checkpointed \(name)")
                XCTAssertTrue(try pool.map(WrappingSquare(), c, chunkSize: 100, checkpoint: journal) == expected, "resumed \(name)")
            }
            try await all(collection)
        }
        // starmap of a lazy map of pairs, and inputs that are not plain numbers.
        let pairs = Set(0..<3000).lazy.map { ($0, 2 * $0) }
        XCTAssertEqual(try pool.starmap(Add(), pairs), pairs.map { $0 + $1 })
        let awaitedPairs = try await pool.asyncStarmap(Add(), pairs, chunkSize: 9)
        XCTAssertEqual(awaitedPairs, pairs.map { $0 + $1 })
        let strings = Set((0..<3000).map { "s\($0)" })
        XCTAssertEqual(try pool.map(Exclaim(), strings, chunkSize: 7), strings.map { $0 + "!" })
        XCTAssertEqual(try pool.map(Exclaim(), strings.lazy.map { $0 + "?" }), strings.map { $0 + "?!" })
    }

    /// One input of a `Set` and of a `lazy.map` kills its worker: that input alone fails,
    /// named by its position in the collection's order; retried it runs alone; when it dies
    /// only once, the chunk's other inputs — lost with the worker — are read again at their
    /// own positions, and the results are exact.
    func testAWorkerCrashMidMapFailsOnlyItsInputAndRetriesReadTheRightInputs() throws {
        let set = Set((0..<3000).map { $0 * 3 + 1000 })
        let lazy = (0..<3000).lazy.map { $0 * 3 + 1000 }
        try Pool.with(processes: 2, startMethod: .fork) { pool in
            func check(_ name: String, _ inputs: some Collection<Int>) throws {
                let elements = Array(inputs)
                let position = 1234, victim = elements[position]
                for chunk in [7, 100, nil] as [Int?] {
                    let label = "\(name) chunk \(chunk ?? 0)"
                    XCTAssertThrowsError(try pool.map(CrashOn(victims: [victim]), inputs, chunkSize: chunk)) { error in
                        XCTAssertEqual((error as? WorkerDied)?.inputIndex, position, "\(label): \(error)")
                    }
                    let retry = RetryPolicy(attempts: 2, on: [.workerDied])
                    XCTAssertThrowsError(try pool.map(CrashOn(victims: [victim]), inputs, chunkSize: chunk, retry: retry)) { error in
                        XCTAssertEqual((error as? RetriesExhausted)?.inputIndex, position, "\(label): \(error)")
                        XCTAssertEqual((error as? RetriesExhausted)?.failures.count, 2, "\(label): \(error)")
                    }
                    unlink("\(directory)/\(victim)")
                    let results = try pool.map(CrashOnceOn(directory: directory, victims: [victim]), inputs, chunkSize: chunk, retry: retry)
                    XCTAssertEqual(access("\(directory)/\(victim)", F_OK), 0, "\(label): the victim never crashed")
                    XCTAssertEqual(results, elements.map { $0 * 10 }, label)
                }
            }
            try check("set", set)
            try check("lazyMap", lazy)
        }
    }

    /// A map over a `Set` or a dictionary's keys copies its inputs nowhere: no input buffer is taken.
    func testAMapOverASetTakesNoInputBuffer() throws {
        try Pool.with(processes: 2) { pool in
            InputBufferCache.freeKept()
            _ = try pool.map(WrappingSquare(), Set(0..<50_000))
            _ = try pool.mapAsync(WrappingSquare(), Dictionary(uniqueKeysWithValues: (0..<50_000).map { ($0, $0) }).keys).get()
            usleep(100_000)
            XCTAssertEqual(InputBufferCache.keptNow.bytes, 0, "an input buffer was used")
        }
    }
}
