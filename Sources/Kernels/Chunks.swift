/// Splitting an index range into contiguous chunks, the unit of work every kernel's
/// `callAsFunction(_:)` computes. Python's `Pool.map(chunksize:)` makes the same cut.
public enum Chunks {
    /// `range` cut into `count` contiguous, non-empty pieces whose sizes differ by at most one
    /// (the first `range.count % count` pieces are one longer). Fewer pieces come back when
    /// `range` has fewer than `count` elements; an empty range gives no pieces.
    ///
    /// - Complexity: O(`count`).
    public static func split(_ range: Range<Int>, into count: Int) -> [Range<Int>] {
        precondition(count > 0, "Chunks.split: count must be positive, got \(count)")
        let total = range.count
        let pieces = min(count, total)
        guard pieces > 0 else { return [] }
        let base = total / pieces
        let longer = total % pieces
        var result: [Range<Int>] = []
        result.reserveCapacity(pieces)
        var start = range.lowerBound
        for piece in 0..<pieces {
            let end = start + base + (piece < longer ? 1 : 0)
            result.append(start..<end)
            start = end
        }
        return result
    }

    /// `range` cut into pieces of `size` elements (the last may be shorter).
    ///
    /// - Complexity: O(`range.count / size`).
    public static func split(_ range: Range<Int>, size: Int) -> [Range<Int>] {
        precondition(size > 0, "Chunks.split: size must be positive, got \(size)")
        return stride(from: range.lowerBound, to: range.upperBound, by: size).map {
            $0..<min($0 + size, range.upperBound)
        }
    }
}
