// How `map`, `mapAsync`, `asyncMap` and the `starmap`s read a sequence of inputs that is not
// an `Array`, compiled in the caller's module (`@inlinable`), where the sequence's type is
// known. Three ways, the first that applies:
//
// 1. An integer `Range`, `ClosedRange`, `stride(from:to:by:)` or `stride(from:through:by:)`
//    (of any `WireRawElement` integer type) is never made into memory: the job keeps its
//    first value, step and count (`_IntegerProgression`), and each chunk's inputs are
//    computed straight into the chunk's message (`WireWriter.writeArithmeticIntegers`) — the
//    same bytes as the chunk of an array, which the worker decodes as an array of plain
//    numbers. Any span of it (a retried piece, a single input) is computed the same way.
// 2. A standard library collection whose elements any thread may read (a `Set`, a slice,
//    a dictionary's keys…, `_ReadableOnAnyThread`) of at least `_CollectionInputs.threshold`
//    inputs is not copied either: the job keeps it, and the pool's thread writes each span
//    it sends straight from the collection into the span's message (`_CollectionInputs`,
//    its code compiled here for the collection's own type), so each element is read once,
//    when its chunk goes out — nothing is read on the calling thread first. A span sent
//    again (a retried piece) is read again, by index.
// 3. Another collection (a `lazy.map`, whose closure may be isolated to the caller's actor,
//    a collection type of the caller's) of at least `_InputProducer.threshold` inputs is
//    written, on the calling thread and in the sequence's order, straight into the job's
//    input buffer after the job is submitted, and published in whole chunks, so that the
//    workers run the first chunks while the rest are read (`_InputProducer`). The buffer is
//    taken from, and given back to, a small cache (`InputBufferCache`), so that a map does
//    not page-fault fresh memory for its inputs.
// 4. Everything else (an `Array`, a short collection, a sequence of unknown length, a
//    checkpointed map) is made an array (an `Array` is used as it is).

/// The inputs of a map over an integer range or stride: `count` values `first`,
/// `first + step`, … of an integer type `byteWidth` bytes wide, kept as 64-bit bit patterns
/// (sign- or zero-extended; wrapping arithmetic gives the narrower type's values).
@usableFromInline
struct _IntegerProgression: Sendable, Equatable {
    @usableFromInline let first: UInt64
    @usableFromInline let step: UInt64
    @usableFromInline let count: Int
    @usableFromInline let byteWidth: Int

    /// The progression of `start`, `start + step`, … up to `end` (excluded, or included if
    /// `inclusive`) — a stride's values, a range's with `step` 1; nil if there are more than
    /// `Int.max`, if `step` is 0, or if `T` is wider than 64 bits.
    @usableFromInline
    init?<T: FixedWidthInteger>(from start: T, to end: T, by step: Int, inclusive: Bool) {
        guard step != 0, T.bitWidth <= 64, [8, 16, 32, 64].contains(T.bitWidth) else { return nil }
        let forward = step > 0
        let count: UInt64
        if forward ? start > end : start < end {
            count = 0
        } else if start == end {
            count = inclusive ? 1 : 0
        } else {
            // |end − start| is exact in 64 bits for two values of a type at most 64 bits wide.
            let low = UInt64(truncatingIfNeeded: start), high = UInt64(truncatingIfNeeded: end)
            let distance = forward ? high &- low : low &- high
            let magnitude = UInt64(step.magnitude)
            if inclusive {
                let steps = distance / magnitude
                guard steps < UInt64.max else { return nil }
                count = steps + 1
            } else {
                count = (distance - 1) / magnitude + 1
            }
        }
        guard count <= UInt64(Int.max) else { return nil }
        self.first = UInt64(truncatingIfNeeded: start)
        self.step = UInt64(bitPattern: Int64(step))
        self.count = Int(count)
        self.byteWidth = T.bitWidth / 8
    }

    /// The progression of `inputs` if it is an integer range or stride of at least one input
    /// whose inputs `F` encodes as `writeArithmeticIntegers` does (a `WireRawElement`
    /// integer type, on a little-endian machine: checked on its first inputs); nil otherwise.
    @inlinable
    init?<F: ParallelFunction, S: Sequence<F.Input>>(_ inputs: S, for _: F.Type) {
        if inputs is [F.Input] { return nil }
        guard let convertible = inputs as? any _IntegerProgressionConvertible,
            let progression = convertible._integerProgression, progression.count > 0,
            progression.encodes(Array(inputs.prefix(2)), as: F.self)
        else { return nil }
        self = progression
    }

    /// Whether `F._encodeInputs(head)` writes what this progression's first `head.count`
    /// inputs are encoded as (so the format and the first values agree).
    @usableFromInline
    func encodes<F: ParallelFunction>(_ head: [F.Input], as _: F.Type) -> Bool {
        guard head.count == min(2, count) else { return false }
        var theirs = WireWriter(capacity: 64)
        do {
            try head.withUnsafeBufferPointer { try F._encodeInputs($0, into: &theirs) }
        } catch {
            return false
        }
        var ours = WireWriter(capacity: 64)
        encode(InputSpan(first: 0, count: head.count), into: &ours)
        return theirs.deferredBlocks.isEmpty && theirs.bytes == ours.bytes
    }

    /// Encodes the inputs at positions `span` (the message a chunk of an array of them gives).
    func encode(_ span: InputSpan, into writer: inout WireWriter) {
        writer.writeArithmeticIntegers(
            first: first &+ UInt64(truncatingIfNeeded: span.first) &* step, step: step, count: span.count,
            byteWidth: byteWidth)
    }
}

/// A sequence that is an integer progression: `Range`, `ClosedRange`, `StrideTo` and
/// `StrideThrough` of `WireRawElement` integers.
@usableFromInline
protocol _IntegerProgressionConvertible {
    /// Its first value, step and count (nil if they cannot be represented).
    var _integerProgression: _IntegerProgression? { get }
}

extension Range: _IntegerProgressionConvertible where Bound: FixedWidthInteger & WireRawElement {
    @usableFromInline
    var _integerProgression: _IntegerProgression? {
        _IntegerProgression(from: lowerBound, to: upperBound, by: 1, inclusive: false)
    }
}

extension ClosedRange: _IntegerProgressionConvertible where Bound: FixedWidthInteger & WireRawElement {
    @usableFromInline
    var _integerProgression: _IntegerProgression? {
        _IntegerProgression(from: lowerBound, to: upperBound, by: 1, inclusive: true)
    }
}

extension StrideTo: _IntegerProgressionConvertible where Element: FixedWidthInteger & WireRawElement, Element.Stride == Int {
    @usableFromInline
    var _integerProgression: _IntegerProgression? {
        _integerStrideProgression(self, Element.self, end: "to", inclusive: false)
    }
}

extension StrideThrough: _IntegerProgressionConvertible
where Element: FixedWidthInteger & WireRawElement, Element.Stride == Int {
    @usableFromInline
    var _integerProgression: _IntegerProgression? {
        _integerStrideProgression(self, Element.self, end: "through", inclusive: true)
    }
}

/// A stride's progression, from its bounds as its `Mirror` shows them (`from`, `to` or
/// `through`, `by`: the standard library keeps them internal); nil if the mirror is not that.
private func _integerStrideProgression<T: FixedWidthInteger>(
    _ stride: Any, _: T.Type, end label: String, inclusive: Bool
) -> _IntegerProgression? {
    var start: T?, end: T?, step: Int?
    for child in Mirror(reflecting: stride).children {
        switch child.label {
        case "from": start = child.value as? T
        case label: end = child.value as? T
        case "by": step = child.value as? Int
        default: break
        }
    }
    guard let start, let end, let step else { return nil }
    return _IntegerProgression(from: start, to: end, by: step, inclusive: inclusive)
}

/// An iterator over `inputs` for `imap` (which reads it on the pool's thread, a few chunks
/// ahead): its `next()` is compiled here, in the caller's module, for the sequence's own type.
/// (`AnyIterator(inputs.makeIterator())` would call the iterator through the standard
/// library's generic box, unspecialised: ~0.1 µs per input over a `Range`, ~0.3 µs over a
/// `ClosedRange`, against ~0.02 µs this way.)
@inlinable
func _specialisedIterator<S: Sequence>(_ inputs: S) -> AnyIterator<S.Element> {
    var iterator = inputs.makeIterator()
    return AnyIterator { iterator.next() }
}

/// Reads a collection that is not an `Array` into a job's input buffer (way 3 above).
@usableFromInline
struct _InputProducer<S: Sequence> {
    /// Shorter collections are made an array: a publication wakes the pool's thread.
    @usableFromInline static var threshold: Int { 1024 }

    @usableFromInline let inputs: S
    @usableFromInline let count: Int

    @inlinable
    init?(_ inputs: S) {
        if inputs is [S.Element] { return nil }
        guard let collection = inputs as? any Collection else { return nil }
        let count = collection.count
        guard count >= Self.threshold else { return nil }
        self.inputs = inputs
        self.count = count
    }

    /// Writes the `count` inputs into `base`, calling `publish(n)` each time `n`, a multiple
    /// of `step`, or `count` are written. Traps, as `Array(_:)` does, if a collection holds
    /// more or fewer elements than its `count` said.
    @inlinable
    @inline(__always)
    func produce(into base: UnsafeMutablePointer<S.Element>, every step: Int, publish: (Int) -> Void) {
        var written = 0
        let contiguous: Void? = inputs.withContiguousStorageIfAvailable { buffer in
            precondition(buffer.count == count, "invalid Collection: its count changed while it was read")
            while written < count {
                let end = min(written + step, count)
                (base + written).initialize(from: buffer.baseAddress! + written, count: end - written)
                written = end
                publish(written)
            }
        }
        if contiguous != nil { return }
        // One counted loop per step, with no test of the step in it: for a `lazy.map` whose
        // closure is known here the compiler vectorises it (200 000 `Int`s of
        // `(0..<n).lazy.map { $0 }` written in ~19 µs instead of ~64 µs with the step and
        // the count tested after every element: `Benchmarks/reports/input-kinds-loops.swift`).
        // The traps are calls out of line: `preconditionFailure` in the loop kept it scalar
        // (~68 µs), and a larger body was no longer inlined where the closure is known (the
        // closure then called per element: ~1 ms per 200 000; hence `@inline(__always)`).
        var iterator = inputs.makeIterator()
        while written < count {
            let end = min(written + step, count)
            for position in written..<end {
                guard let input = iterator.next() else { _collectionCountChanged(more: false) }
                (base + position).initialize(to: input)
            }
            written = end
            publish(written)
        }
        if iterator.next() != nil { _collectionCountChanged(more: true) }
    }
}

/// Traps: a collection held more (`more`) or fewer elements than its `count` said, as
/// `Array(_:)` traps. Out of line, so that the loops that call it stay small.
@usableFromInline
@inline(never)
func _collectionCountChanged(more: Bool) -> Never {
    fatalError("invalid Collection: \(more ? "more" : "less") than 'count' elements in collection")
}

/// A submitted map whose `count` inputs the caller writes at `base`, in order, calling
/// `publish(n)` each time `n`, a multiple of `step`, or all are written (`Pool._submitProducing`).
@usableFromInline
struct _ProducedInputs<Input, Output: Sendable> {
    @usableFromInline let base: UnsafeMutablePointer<Input>
    @usableFromInline let step: Int
    @usableFromInline let publish: (Int) -> Void
    @usableFromInline let result: AsyncResult<[Output]>

    init(base: UnsafeMutablePointer<Input>, step: Int, publish: @escaping (Int) -> Void, result: AsyncResult<[Output]>) {
        self.base = base
        self.step = step
        self.publish = publish
        self.result = result
    }
}

/// The input buffers of maps over collections (way 3 above), kept for the next map once a
/// map is done: memory that a map writes its inputs into for the first time is page-faulted
/// in, a page at a time, which costs about as much as the rest of a map of trivial tasks (a
/// map over a ready `Array` pays none of it). At most `maximumBuffers` buffers, `budget`
/// bytes in all, stay allocated between maps, for the life of the process; a larger buffer
/// is freed at once.
enum InputBufferCache {
    /// The most bytes kept between maps (the inputs of a map of 8 M `Int`s).
    static let budget = 64 << 20
    /// The most buffers kept (one per map running at the same time).
    static let maximumBuffers = 2
    /// Every buffer's alignment (types aligned more strictly are allocated apart).
    static let alignment = 64

    private struct State {
        /// Buffers kept for the next maps: address and size in bytes.
        var kept: [(base: UnsafeMutableRawPointer, byteCount: Int)] = []
        /// The size of each buffer handed out now, by address (a kept buffer may be larger
        /// than what it was taken for).
        var handedOut: [UnsafeMutableRawPointer: Int] = [:]
    }

    /// A process-wide lock, new and unlocked in a child forked while another thread held it
    /// (a worker that maps over a collection in a pool of its own).
    private static let lock = ConditionLock(resetInForkedChild: true)
    nonisolated(unsafe) private static var state = State()

    private static func byteCount<T>(_: T.Type, capacity: Int) -> Int? {
        guard MemoryLayout<T>.alignment <= alignment else { return nil }
        let bytes = max(capacity, 1).multipliedReportingOverflow(by: max(MemoryLayout<T>.stride, 1))
        return bytes.overflow || bytes.partialValue > budget ? nil : bytes.partialValue
    }

    /// Room for `capacity` values of `T`, uninitialized: the smallest kept buffer large
    /// enough, or a new one. Give it back with `give` (with the same type and capacity).
    static func take<T>(_: T.Type, capacity: Int) -> UnsafeMutablePointer<T> {
        guard let bytes = byteCount(T.self, capacity: capacity) else { return .allocate(capacity: max(capacity, 1)) }
        let base = lock.withLock { () -> UnsafeMutableRawPointer in
            var best: Int?
            for (index, buffer) in state.kept.enumerated() where buffer.byteCount >= bytes {
                if best == nil || buffer.byteCount < state.kept[best!].byteCount { best = index }
            }
            let buffer: (base: UnsafeMutableRawPointer, byteCount: Int) =
                best.map { state.kept.remove(at: $0) }
                ?? (UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: alignment), bytes)
            state.handedOut[buffer.base] = buffer.byteCount
            return buffer.base
        }
        return base.bindMemory(to: T.self, capacity: max(capacity, 1))
    }

    /// Takes back what `take(T.self, capacity:)` gave, its values deinitialized: kept for the
    /// next map (the smallest kept buffers freed if that passes the limits).
    static func give<T>(_ pointer: UnsafeMutablePointer<T>, capacity: Int) {
        guard byteCount(T.self, capacity: capacity) != nil else { return pointer.deallocate() }
        let base = UnsafeMutableRawPointer(pointer)
        let free = lock.withLock { () -> [UnsafeMutableRawPointer] in
            guard let size = state.handedOut.removeValue(forKey: base) else { return [base] }
            state.kept.append((base, size))
            state.kept.sort { $0.byteCount > $1.byteCount }
            var total = state.kept.reduce(0) { $0 + $1.byteCount }
            var free: [UnsafeMutableRawPointer] = []
            while state.kept.count > maximumBuffers || total > budget {
                let smallest = state.kept.removeLast()
                total -= smallest.byteCount
                free.append(smallest.base)
            }
            return free
        }
        for base in free { base.deallocate() }
    }

    /// Frees the kept buffers (for tests).
    static func freeKept() {
        let free = lock.withLock { () -> [UnsafeMutableRawPointer] in
            defer { state.kept.removeAll() }
            return state.kept.map(\.base)
        }
        for base in free { base.deallocate() }
    }

    /// How many buffers, and bytes, are kept now (for tests).
    static var keptNow: (buffers: Int, bytes: Int) {
        lock.withLock { (state.kept.count, state.kept.reduce(0) { $0 + $1.byteCount }) }
    }
}

/// The inputs of a map over a standard library collection that any thread may read (a
/// `Set`, a slice, a dictionary's keys…; way 2 above): never copied into memory of ours. The job keeps the collection, and the
/// pool's thread writes each span it sends straight from the collection into the span's
/// message (`encode`), so that each element is read once, when its chunk goes out, by a
/// thread that would otherwise wait for the workers. The fresh chunks, sent in order, are
/// read with one iterator that goes on from where the last chunk ended, compiled in the
/// caller's module for the collection's own type (`_LiveIterator`: ~1 ns per element of a
/// `Set`); a span sent again (a retried piece) is read by index (`_CollectionSpans`:
/// generic code, ~10× slower per element, from the nearest known index before it; random
/// access collections jump to it).
@usableFromInline
struct _CollectionInputs: @unchecked Sendable {
    /// Shorter collections are made an array.
    @usableFromInline static var threshold: Int { 1024 }

    @usableFromInline let count: Int
    /// Writes the inputs at positions `first ..< first + count` as `F._encodeInputs` writes
    /// an array of them (the plain numbers' raw form when `plain`, `PlainTransport`). Called
    /// on the pool's thread only.
    @usableFromInline let encode: (_ first: Int, _ count: Int, _ plain: Bool, _ writer: inout WireWriter) throws -> Void

    /// `inputs` as spans of a collection, if it is a collection of at least `threshold`
    /// inputs other than an `Array`; nil otherwise.
    @inlinable
    init?<F: ParallelFunction, S: Sequence<F.Input>>(_ inputs: S, for _: F.Type) {
        if inputs is [F.Input] { return nil }
        guard inputs is any _ReadableOnAnyThread, let collection = inputs as? any Collection<F.Input>,
            let (count, byIndex) = Self.byIndex(collection, for: F.self)
        else { return nil }
        let live = _LiveIterator(inputs.makeIterator())
        let total = count
        self.init(count: count) { first, count, plain, writer in
            // A slice or a contiguous array: the span where it is, as an `Array`'s.
            let contiguous: Void? = try inputs.withContiguousStorageIfAvailable { all in
                guard first + count <= all.count else { throw _CollectionInputs.shorter(than: total) }
                let span = UnsafeBufferPointer(rebasing: all[first..<(first + count)])
                if plain {
                    writer._appendRawElements(F.Input.self, count: count, block: UnsafeRawBufferPointer(span), owner: inputs)
                } else {
                    try F._encodeInputs(span, into: &writer)
                }
            }
            if contiguous != nil { return }
            guard first == live.position, var iterator = live.iterator else {
                return try byIndex(first, count, plain, &writer)
            }
            // Taken: given back once the span is read whole (else later spans go by index).
            live.iterator = nil
            var short = false
            if plain {
                let stride = MemoryLayout<F.Input>.stride
                writer._appendRawElements(F.Input.self, count: count) { raw in
                    // A copy of our own, which the optimizer keeps in registers: the captured
                    // `iterator` stays in memory, every element storing and reloading its
                    // position — which made the loop 2× slower than the same loop alone.
                    var elements = iterator
                    defer { iterator = elements }
                    for k in 0..<count {
                        guard let input = elements.next() else {
                            short = true
                            // Every byte must be written: zeros, in a message that is not sent.
                            UnsafeMutableRawBufferPointer(rebasing: raw[(k &* stride)...])
                                .initializeMemory(as: UInt8.self, repeating: 0)
                            return
                        }
                        raw.storeBytes(of: input, toByteOffset: k &* stride, as: F.Input.self)
                    }
                }
            } else {
                var inputs: [F.Input] = []
                inputs.reserveCapacity(count)
                while inputs.count < count, let input = iterator.next() { inputs.append(input) }
                short = inputs.count < count
                if !short { try inputs.withUnsafeBufferPointer { try F._encodeInputs($0, into: &writer) } }
            }
            if short { throw _CollectionInputs.shorter(than: total) }
            live.iterator = iterator
            live.position = first + count
        }
    }

    @usableFromInline
    init(count: Int, encode: @escaping (Int, Int, Bool, inout WireWriter) throws -> Void) {
        self.count = count
        self.encode = encode
    }

    /// `collection`'s count and its spans read by index, if it has at least `threshold`.
    @usableFromInline
    static func byIndex<F: ParallelFunction, C: Collection<F.Input>>(
        _ collection: C, for _: F.Type
    ) -> (Int, (Int, Int, Bool, inout WireWriter) throws -> Void)? {
        let count = collection.count
        guard count >= threshold else { return nil }
        let spans = _CollectionSpans(collection, count: count)
        return (count, { first, count, plain, writer in try spans.encode(first: first, count: count, plain: plain, F.self, into: &writer) })
    }

    @usableFromInline
    static func shorter(than count: Int) -> PoolError {
        PoolError(
            .invalidArgument,
            "invalid Collection: fewer elements than its 'count' (\(count)) said; pass an Array of its elements instead")
    }
}

/// A standard library collection whose elements can be read on any thread, running no code
/// of the caller's: its iteration and indices are the library's own, and copying an element
/// runs no code (a map's inputs are `Sendable`). A `lazy.map` is not one: its closure may be
/// isolated to the caller's actor (Swift 6 checks that at run time, and traps on another
/// thread), as may a collection type of the caller's.
@usableFromInline
protocol _ReadableOnAnyThread {}

extension Set: _ReadableOnAnyThread {}
extension ArraySlice: _ReadableOnAnyThread {}
extension ContiguousArray: _ReadableOnAnyThread {}
extension Array: _ReadableOnAnyThread {}
extension Dictionary.Keys: _ReadableOnAnyThread {}
extension Dictionary.Values: _ReadableOnAnyThread {}
extension Slice: _ReadableOnAnyThread where Base: _ReadableOnAnyThread {}
extension ReversedCollection: _ReadableOnAnyThread where Base: _ReadableOnAnyThread {}

/// The iterator that reads a collection's fresh chunks, in order (`_CollectionInputs`), and
/// the position of its next element; nil once a span failed to read.
@usableFromInline
final class _LiveIterator<I: IteratorProtocol> {
    @usableFromInline var iterator: I?
    @usableFromInline var position = 0

    @inlinable
    init(_ iterator: I) { self.iterator = iterator }
}

/// A collection read by index (`_CollectionInputs`, for spans sent again): the index where
/// each span so read ended is kept, so that the next walks from the nearest known index
/// before it (a random-access collection jumps there).
final class _CollectionSpans<C: Collection> {
    let base: C
    let count: Int
    /// Known (position, index) pairs, by position; the first is (0, startIndex).
    private var marks: [(position: Int, index: C.Index)]

    init(_ base: C, count: Int) {
        self.base = base
        self.count = count
        marks = [(0, base.startIndex)]
    }

    /// The index of the input at `position` (< `count`): from the nearest known one before it.
    private func index(at position: Int) throws -> C.Index {
        var low = 0, high = marks.count
        while high - low > 1 {
            let middle = (low + high) / 2
            if marks[middle].position <= position { low = middle } else { high = middle }
        }
        // O(1) for a random-access collection, a walk otherwise.
        guard let index = base.index(marks[low].index, offsetBy: position - marks[low].position, limitedBy: base.endIndex)
        else { throw _CollectionInputs.shorter(than: count) }
        return index
    }

    /// Records that the input at `position` is at `index`.
    private func remember(_ position: Int, _ index: C.Index) {
        guard position < count else { return }
        var low = 0, high = marks.count
        while low < high {
            let middle = (low + high) / 2
            if marks[middle].position < position { low = middle + 1 } else { high = middle }
        }
        if low < marks.count, marks[low].position == position { return }
        marks.insert((position, index), at: low)
    }

    /// Writes the inputs at `first ..< first + count` as `F._encodeInputs` writes them.
    func encode<F: ParallelFunction>(
        first: Int, count: Int, plain: Bool, _: F.Type, into writer: inout WireWriter
    ) throws where C.Element == F.Input {
        var index = try self.index(at: first)
        remember(first, index)
        var inputs: [F.Input] = []
        inputs.reserveCapacity(count)
        while inputs.count < count {
            guard index != base.endIndex else { throw _CollectionInputs.shorter(than: self.count) }
            inputs.append(base[index])
            base.formIndex(after: &index)
        }
        try inputs.withUnsafeBufferPointer {
            try encodeInputs(F.self, $0, owner: inputs, plain: plain, into: &writer)
        }
        remember(first + count, index)
    }
}
