import Synchronization
import XCTest

@testable import Multiprocessing

/// Reads `table[input]`; its `encode(to:)` counts how often this process encodes one.
struct CountedTable: ParallelFunction {
    static let encodes = Atomic<Int>(0)
    let table: [Double]

    init(table: [Double]) { self.table = table }

    init(from decoder: any Decoder) throws {
        table = try decoder.singleValueContainer().decode([Double].self)
    }

    func encode(to encoder: any Encoder) throws {
        Self.encodes.add(1, ordering: .relaxed)
        var container = encoder.singleValueContainer()
        try container.encode(table)
    }

    func callAsFunction(_ input: Int) -> Double { table[input] }
}

/// Reads `table[input]` (synthesized Codable).
struct TableAt: ParallelFunction {
    var table: [Double]
    var label = "table"
    func callAsFunction(_ input: Int) -> Double { table[input] }
}

/// A class instance a function value can hold: it can change behind the same reference.
final class Knob: Codable, @unchecked Sendable {
    var value: Double
    init(_ value: Double) { self.value = value }
}

/// `knob.value + table[input]`.
struct ReadsKnob: ParallelFunction {
    let knob: Knob
    let table: [Double]
    func callAsFunction(_ input: Int) -> Double { knob.value + table[input] }
}

/// The sum of the knobs' values.
struct ReadsKnobs: ParallelFunction {
    let knobs: [Knob]
    func callAsFunction(_: Int) -> Double { knobs.reduce(0) { $0 + $1.value } }
}

struct PlainPoint: Codable, Equatable { var x: Double, y: Double }
struct NamedPoint: Codable { var name: String, point: PlainPoint }
enum Shade: Codable { case light, dark }
indirect enum Chain { case end, link(Int, Chain) }
enum Tagged: Codable { case number(Int), knob(Knob) }
struct WithKnob: Codable { var knob: Knob }
struct WithOptionalKnob: Codable { var knob: Knob? }
struct WithMirror: CustomReflectable {
    var hidden: Knob
    var customMirror: Mirror { Mirror(self, children: [:]) }
}
struct WithPointer { var pointer: UnsafeMutablePointer<Double> }
struct WithClosure { var body: @Sendable () -> Int }
struct WithAny { var any: Any }
struct WithPair { var pair: (Knob, Int) }
struct Nested { var inner: TableAt, scale: Double, names: [String: [Int]] }

final class FunctionEncodingTests: TimeLimitedTestCase {
    /// Issue 13: 20 calls with one value capturing a table encode it once (on today's main,
    /// 20 times: every call encoded it, then hashed and compared the bytes).
    func testTwentyCallsWithOneValueEncodeItOnce() throws {
        let table = (0..<200_000).map(Double.init)
        let function = CountedTable(table: table)
        try Pool.with(processes: 2) { pool in
            let before = CountedTable.encodes.load(ordering: .relaxed)
            let results = try (0..<20).map { try pool.applyAsync(function, $0 * 1000) }.map { try $0.get(timeout: 60) }
            XCTAssertEqual(results, (0..<20).map { Double($0 * 1000) })
            XCTAssertEqual(try pool.apply(function, 7), 7)
            XCTAssertEqual(try pool.map(function, [1, 2, 3]), [1, 2, 3])
            XCTAssertEqual(CountedTable.encodes.load(ordering: .relaxed) - before, 1, "encoded once, not once per call")
        }
    }

    /// A captured array mutated between calls: the new contents are sent (a mutation of an
    /// array the pool still holds copies it, so the new value has other bits).
    func testMutatingACapturedArrayBetweenCallsSendsTheNewContents() throws {
        var table = [Double](repeating: 1, count: 100_000)
        try Pool.with(processes: 2) { pool in
            XCTAssertEqual(try pool.apply(TableAt(table: table), 5), 1)
            table[5] = 42
            XCTAssertEqual(try pool.apply(TableAt(table: table), 5), 42)
            table.withUnsafeMutableBufferPointer { $0[5] = 7 }
            XCTAssertEqual(try pool.apply(TableAt(table: table), 5), 7)
            // Mutated in place through the function value itself.
            var function = TableAt(table: table)
            XCTAssertEqual(try pool.apply(function, 5), 7)
            function.table[5] = 9
            XCTAssertEqual(try pool.apply(function, 5), 9)
            function.label = "other"
            function.table.append(3)
            XCTAssertEqual(try pool.apply(function, 100_000), 3)
            // Back to an earlier value: still that value's contents.
            XCTAssertEqual(try pool.apply(TableAt(table: table), 5), 7)
            // Asynchronous calls submitted around a mutation each see their own contents.
            let first = try pool.applyAsync(TableAt(table: table), 5)
            table[5] = 11
            let second = try pool.applyAsync(TableAt(table: table), 5)
            XCTAssertEqual(try first.get(timeout: 60), 7)
            XCTAssertEqual(try second.get(timeout: 60), 11)
        }
    }

    /// A class instance mutated between calls behind the same reference: the new state is
    /// sent, so such a value is encoded on every call.
    func testMutatingACapturedClassInstanceBetweenCallsSendsTheNewState() throws {
        let table = [Double](repeating: 1, count: 100_000)
        let knob = Knob(10)
        let function = ReadsKnob(knob: knob, table: table)
        let knobs = ReadsKnobs(knobs: [Knob(1), Knob(2)])
        try Pool.with(processes: 2) { pool in
            let before = FunctionEncodings.encodings.load(ordering: .relaxed)
            XCTAssertEqual(try pool.apply(function, 3), 11)
            knob.value = 20
            XCTAssertEqual(try pool.apply(function, 3), 21)
            XCTAssertEqual(try (0..<4).map { try pool.applyAsync(function, $0) }.map { try $0.get(timeout: 60) }, [21, 21, 21, 21])
            knob.value = 30
            XCTAssertEqual(try pool.map(function, [0, 1]), [31, 31])
            XCTAssertEqual(FunctionEncodings.encodings.load(ordering: .relaxed) - before, 7, "encoded on every call")

            XCTAssertEqual(try pool.apply(knobs, 0), 3)
            knobs.knobs[1].value = 5
            XCTAssertEqual(try pool.apply(knobs, 0), 6)
        }
    }

    /// What `FunctionEncodings` may identify by its bits, and what it may not.
    func testOnlyValuesWithoutReferencesToMutableStateAreIdentifiedByTheirBits() {
        let knob = Knob(1)
        var x = 1.0
        let stable: [(String, Any)] = [
            ("Int", 3), ("String", "some text that is longer than fifteen bytes"),
            ("[Double]", [1.0, 2.0]), ("[[Int]]", [[1], [2, 3]]), ("[String]", ["a", "b"]),
            ("Set<Int>", Set([1, 2])), ("[String: [Double]]", ["a": [1.0]]),
            ("[PlainPoint]", [PlainPoint(x: 1, y: 2)]), ("[Knob] empty", [Knob]()),
            ("Optional nil", Optional<Knob>.none as Any), ("[Int?]", [Optional(1), nil]),
            ("struct", TableAt(table: [1, 2])), ("NamedPoint", NamedPoint(name: "p", point: PlainPoint(x: 0, y: 0))),
            ("enum", Shade.dark), ("enum payload", Tagged.number(3)),
            ("tuple", (1, "two", [3.0])), ("ArraySlice", [1.0, 2.0, 3.0][1...]),
            ("ContiguousArray", ContiguousArray([1, 2])),
        ]
        for (name, value) in stable {
            XCTAssertTrue(ValueStability.isStableValue(value), name)
        }
        let unstable: [(String, Any)] = [
            ("class", knob), ("struct with class", WithKnob(knob: knob)),
            ("optional class", WithOptionalKnob(knob: knob)), ("[Knob]", [knob]),
            ("[WithKnob]", [WithKnob(knob: knob)]), ("[String: Knob]", ["k": knob]),
            ("enum with class payload", Tagged.knob(knob)), ("[Tagged]", [Tagged.number(1)]),
            ("custom mirror", WithMirror(hidden: knob)),
            ("pointer", withUnsafeMutablePointer(to: &x) { WithPointer(pointer: $0) }),
            ("closure", WithClosure(body: { 1 })), ("function value with class", ReadsKnob(knob: knob, table: [])),
        ]
        for (name, value) in unstable {
            XCTAssertFalse(ValueStability.isStableValue(value), name)
        }
        // Too large to look through: encoded each time instead.
        XCTAssertFalse(ValueStability.isStableValue((0..<300).reduce(Chain.end) { .link($1, $0) }))
    }

    /// A type's verdict comes from its fields' types, once per type; where it depends on the
    /// value (an existential, an optional, an enum), each value is looked at — a type with
    /// a stable value first is not taken as stable for the next.
    func testTypeVerdictsComeFromFieldTypesAndDeferToValuesWhereTheyMust() {
        let knob = Knob(1)
        XCTAssertEqual(ValueStability.verdict(for: TableAt.self), .stable)
        XCTAssertEqual(ValueStability.verdict(for: CountedTable.self), .stable)
        XCTAssertEqual(ValueStability.verdict(for: Nested.self), .stable)
        XCTAssertEqual(ValueStability.verdict(for: ReadsKnob.self), .unstable)
        XCTAssertEqual(ValueStability.verdict(for: WithMirror.self), .unstable, "the fields, not the custom mirror")
        XCTAssertEqual(ValueStability.verdict(for: WithPointer.self), .unstable)
        XCTAssertEqual(ValueStability.verdict(for: WithClosure.self), .unstable)
        XCTAssertEqual(ValueStability.verdict(for: WithAny.self), .perInstance)
        XCTAssertEqual(ValueStability.verdict(for: WithOptionalKnob.self), .perInstance)
        XCTAssertEqual(ValueStability.verdict(for: Tagged.self), .perInstance)
        XCTAssertEqual(ValueStability.verdict(for: Shade.self), .perInstance)
        XCTAssertNotEqual(ValueStability.verdict(for: WithPair.self), .stable)
        XCTAssertNotEqual(ValueStability.verdict(for: (Knob, Int).self), .stable)
        XCTAssertNotEqual(ValueStability.verdict(for: [Knob].self), .stable)

        XCTAssertTrue(ValueStability.isStable(TableAt(table: [1])))
        XCTAssertFalse(ValueStability.isStable(ReadsKnob(knob: knob, table: [])))
        XCTAssertTrue(ValueStability.isStable(WithAny(any: 3)))
        XCTAssertFalse(ValueStability.isStable(WithAny(any: knob)), "after a stable value of the same type")
        XCTAssertTrue(ValueStability.isStable(WithAny(any: [1.0, 2.0])))
        XCTAssertFalse(ValueStability.isStable(WithAny(any: WithKnob(knob: knob))))
        XCTAssertTrue(ValueStability.isStable(WithOptionalKnob(knob: nil)))
        XCTAssertFalse(ValueStability.isStable(WithOptionalKnob(knob: knob)))
        XCTAssertTrue(ValueStability.isStable(Tagged.number(2)))
        XCTAssertFalse(ValueStability.isStable(Tagged.knob(knob)))
        XCTAssertFalse(ValueStability.isStable(WithPair(pair: (knob, 1))))
    }

    /// A value holding a class instance is encoded on every call and matched by content: equal
    /// to an encoding still held, it takes those bytes (one buffer for the pool's cache to
    /// recognise); changed, it gets its own. The buffer kept between calls never leaks into
    /// a result: every definition's bytes are its value's encoding, exactly sized.
    func testValuesHoldingAClassAreMatchedByContent() throws {
        let knob = Knob(1)
        let function = ReadsKnob(knob: knob, table: (0..<500_000).map(Double.init))
        let before = FunctionEncodings.encodings.load(ordering: .relaxed)
        let a = try FunctionEncodings.definition(of: function)
        let b = try FunctionEncodings.definition(of: function)
        XCTAssertTrue(a.source != nil && a.source === b.source)
        XCTAssertTrue(a.bytes.withUnsafeBytes { x in b.bytes.withUnsafeBytes { $0.baseAddress == x.baseAddress } })
        XCTAssertEqual(a.contentHash, b.contentHash)
        knob.value = 2
        let c = try FunctionEncodings.definition(of: function)
        XCTAssertFalse(c.source === a.source)
        XCTAssertTrue(c.bytes == (try Wire.encode(function)), "c: the encoding of its value")
        XCTAssertNotEqual(c.contentHash, a.contentHash)
        let d = try FunctionEncodings.definition(of: function)
        XCTAssertTrue(d.source === c.source)
        XCTAssertTrue(d.bytes == (try Wire.encode(function)), "d: the encoding of its value")
        knob.value = 1
        let e = try FunctionEncodings.definition(of: function)
        XCTAssertTrue(e.source === a.source, "a is still held")
        XCTAssertTrue(e.bytes == (try Wire.encode(function)), "e: the encoding of its value")
        XCTAssertEqual(FunctionEncodings.encodings.load(ordering: .relaxed) - before, 5)
        // A small value after a large one: its own bytes, not the large kept buffer.
        let small = ReadsKnob(knob: Knob(3), table: [1])
        let f = try FunctionEncodings.definition(of: small)
        XCTAssertTrue(f.bytes == (try Wire.encode(small)), "f: the encoding of its value")
        XCTAssertLessThan(f.bytes.capacity, 1 << 20)
        // A stable value equal to another in content (built anew): one buffer for both.
        let g = try FunctionEncodings.definition(of: TableAt(table: (0..<1000).map(Double.init)))
        let h = try FunctionEncodings.definition(of: TableAt(table: (0..<1000).map(Double.init)))
        XCTAssertTrue(g.bytes.withUnsafeBytes { x in h.bytes.withUnsafeBytes { $0.baseAddress == x.baseAddress } })
        XCTAssertFalse(g.source === h.source)
    }

    /// The pool's cache tells contents apart by hash and bytes: equal bytes in separate buffers
    /// are one function, the same length with other bytes another; the hash of a buffer and
    /// of its copy agree, and one changed byte changes it.
    func testFunctionCacheMatchesContentsNotBuffers() {
        var bytes = [UInt8](repeating: 0, count: 1000)
        for i in bytes.indices { bytes[i] = UInt8(truncatingIfNeeded: i &* 31) }
        var copy = [UInt8](repeating: 0, count: bytes.count)
        for i in bytes.indices { copy[i] = bytes[i] }
        var changed = copy
        changed[999] ^= 1
        XCTAssertEqual(FunctionCache.contentHash(bytes), FunctionCache.contentHash(copy))
        XCTAssertNotEqual(FunctionCache.contentHash(bytes), FunctionCache.contentHash(changed))
        XCTAssertNotEqual(FunctionCache.contentHash(Array(bytes[0..<999])), FunctionCache.contentHash(bytes))

        var cache = FunctionCache(workers: 1)
        let a = cache.adopt(FunctionDefinition(typeName: "T", bytes: bytes)).definition
        let b = cache.adopt(FunctionDefinition(typeName: "T", bytes: copy)).definition
        let c = cache.adopt(FunctionDefinition(typeName: "T", bytes: changed)).definition
        let d = cache.adopt(FunctionDefinition(typeName: "U", bytes: bytes)).definition
        XCTAssertTrue(a === b)
        XCTAssertFalse(a === c)
        XCTAssertFalse(a === d)
        XCTAssertNotEqual(a.id, c.id)
    }

    /// Idle definitions beyond the byte budget are dropped, least recently used first; one in
    /// use is kept however large.
    func testFunctionCacheDropsIdleDefinitionsBeyondItsByteBudget() {
        var cache = FunctionCache(workers: 1, byteBudget: 2500)
        func definition(_ fill: UInt8) -> FunctionDefinition {
            FunctionDefinition(typeName: "T", bytes: [UInt8](repeating: fill, count: 1000))
        }
        let a = cache.adopt(definition(1))
        XCTAssertEqual(a.evicted, [])
        _ = cache.release(a.definition)
        let b = cache.adopt(definition(2))
        _ = cache.release(b.definition)
        XCTAssertEqual(b.evicted, [])
        let c = cache.adopt(definition(3))
        XCTAssertEqual(c.evicted, [a.definition.id], "3000 bytes: the oldest idle one goes")
        let d = cache.adopt(definition(4))
        XCTAssertEqual(d.evicted, [b.definition.id], "c is in use")
        let e = cache.adopt(definition(5))
        XCTAssertEqual(e.evicted, [], "all in use: nothing to drop")
        // `a` again: not cached any more, a new id.
        let again = cache.adopt(definition(1))
        XCTAssertNotEqual(again.definition.id, a.definition.id)
    }
}
