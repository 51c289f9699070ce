/// How `map`, `mapAsync`, `asyncMap` and the `starmap`s read a sequence of inputs that is
/// not an `Array`, compiled in the caller's module (`@inlinable`), where the sequence's type
/// is known: a collection (a range, a `Set`, a `lazy.map`, a slice, any `Collection`) of at
/// least `threshold` inputs, or a `stride` of `Int`s (counted from its bounds, which its
/// `Mirror` shows, and computed: the standard library's `underestimatedCount` of a stride
/// reads it whole). Its inputs are written, on the calling thread and in the sequence's
/// order, straight into the job's input buffer after the job is submitted, and published in
/// whole chunks, so that the workers run the first chunks while the rest are read — rather
/// than read into an array first (for a `Set` or a `lazy.map` that pass costs about 1 ns
/// per input: as much as a whole map of trivial tasks at its default chunk size).
/// Everything else (an `Array`, a short collection, a sequence of unknown length) is made
/// an array as before.
@usableFromInline
struct _InputProducer<S: Sequence> {
    /// Shorter collections are made an array: a publication wakes the pool's thread.
    @usableFromInline static var threshold: Int { 1024 }

    @usableFromInline let inputs: S
    @usableFromInline let count: Int
    /// An integer stride's first value and step (its values are computed, not iterated).
    @usableFromInline let arithmetic: (start: Int, step: Int)?

    @inlinable
    init?(_ inputs: S) {
        if inputs is [S.Element] { return nil }
        if let stride = Self.integerStride(inputs) {
            guard stride.count >= Self.threshold else { return nil }
            self.inputs = inputs
            count = stride.count
            arithmetic = (stride.start, stride.step)
            return
        }
        guard let collection = inputs as? any Collection else { return nil }
        let count = collection.count
        guard count >= Self.threshold else { return nil }
        self.inputs = inputs
        self.count = count
        arithmetic = nil
    }

    /// `stride(from:to:by:)` and `stride(from:through:by:)` over `Int`: first value, step
    /// and count, from the stride's bounds as its `Mirror` shows them (`from`, `to` or
    /// `through`, `by`); nil for any other sequence, or if the mirror is not that.
    @inlinable
    static func integerStride(_ inputs: S) -> (start: Int, step: Int, count: Int)? {
        let inclusive: Bool
        if S.self == StrideTo<Int>.self {
            inclusive = false
        } else if S.self == StrideThrough<Int>.self {
            inclusive = true
        } else {
            return nil
        }
        var start: Int?, end: Int?, step: Int?
        for child in Mirror(reflecting: inputs).children {
            switch child.label {
            case "from": start = child.value as? Int
            case "to" where !inclusive, "through" where inclusive: end = child.value as? Int
            case "by": step = child.value as? Int
            default: break
            }
        }
        guard let start, let end, let step, step != 0 else { return nil }
        // |end - start| as a UInt is exact for any two Ints.
        let forward = step > 0
        let magnitude = UInt(step.magnitude)
        let count: UInt
        if forward ? start > end : start < end {
            count = 0
        } else if start == end {
            count = inclusive ? 1 : 0
        } else {
            let distance = forward ? UInt(bitPattern: end &- start) : UInt(bitPattern: start &- end)
            count = inclusive ? distance / magnitude + 1 : (distance - 1) / magnitude + 1
        }
        guard count <= UInt(Int.max) else { return nil }
        // The stride's own first value must be `start` (a check of the fields' meaning).
        if count > 0 {
            var iterator = inputs.makeIterator()
            guard let first = iterator.next(), (first as? Int) == start else { return nil }
        }
        return (start, step, Int(count))
    }

    /// Writes the `count` inputs into `base`, calling `publish(n)` each time `n`, a multiple
    /// of `step`, or `count` are written. Traps, as `Array(_:)` does, if a collection holds
    /// more or fewer elements than its `count` said.
    @inlinable
    func produce(into base: UnsafeMutablePointer<S.Element>, every step: Int, publish: (Int) -> Void) {
        var written = 0
        if let arithmetic {
            let start = arithmetic.start, stride = arithmetic.step
            // S.Element is Int (integerStride).
            let ints = UnsafeMutableRawPointer(base).assumingMemoryBound(to: Int.self)
            while written < count {
                let end = min(written + step, count)
                for k in written..<end { (ints + k).initialize(to: start &+ k &* stride) }
                written = end
                publish(written)
            }
            return
        }
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
        var next = min(step, count)
        for input in inputs {
            precondition(written < count, "invalid Collection: more than 'count' elements in collection")
            (base + written).initialize(to: input)
            written += 1
            if written == next {
                publish(written)
                next = min(next + step, count)
            }
        }
        precondition(written == count, "invalid Collection: less than 'count' elements in collection")
    }
}
