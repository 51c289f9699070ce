import KernelsSupport
import Multiprocessing

/// Monte Carlo estimate of π: the fraction of uniform points in the unit square that fall
/// inside the quarter disc, times four (`Benchmarks/README.md`).
///
/// Sample `k` is draw `k` of `RandomStream(seed: seed, stream: 0)` (Philox4x32-10): its low
/// 32 bits are x and its high 32 bits y, in units of 2^-32, and it is a hit when
/// x² + y² < 2^64, tested exactly in integers. A chunk of samples needs no state from the
/// chunks before it, so any chunking gives the same total, bit for bit. The 2^-32 grid biases
/// the estimate by less than 2^-30 relative — far below the statistical error of any feasible
/// run (1.6/√samples). Reference: 20 000 000 samples, seed 12345 → 15 710 491 hits.
public struct MonteCarloPi: Codable, Sendable, Hashable {
    /// The number of points in the whole problem.
    public var samples: Int
    /// The random stream's seed.
    public var seed: UInt64

    public init(samples: Int, seed: UInt64 = 12345) {
        precondition(samples >= 0, "MonteCarloPi: samples must be non-negative")
        self.samples = samples
        self.seed = seed
    }

    /// The number of hits among samples `chunk` (a sub-range of `0..<samples`).
    ///
    /// - Complexity: O(`chunk.count`).
    @inlinable
    public func callAsFunction(_ chunk: Range<Int>) -> Int {
        // With AVX-512 (32 vector registers) four groups per step: twice the independent
        // multiply chains in flight, 0.89× the time of two; with 16 registers (AVX2, SSE2)
        // four spill (1.15×), so those builds keep two.
        hits(chunk, fourGroups: KERNELS_VECTOR_BITS >= 512)
    }

    /// The hits of `chunk`, thirty-two samples per step, or sixty-four (four groups) while
    /// `fourGroups` and at least sixty-four are left.
    @inlinable
    func hits(_ chunk: Range<Int>, fourGroups: Bool) -> Int {
        precondition(
            chunk.lowerBound >= 0 && chunk.upperBound <= samples,
            "MonteCarloPi: chunk \(chunk) outside 0..<\(samples)")
        var k = chunk.lowerBound
        let end = chunk.upperBound
        var hits = 0
        // Up to an even sample, one draw at a time.
        if k & 1 == 1 && k < end {
            hits &+= Self.isHit(RandomStream.draw(seed: seed, stream: 0, index: UInt64(truncatingIfNeeded: k)))
            k += 1
        }
        // Thirty-two samples (sixteen Philox blocks) per step, as two groups of eight blocks
        // in 8-lane registers (one block per 64-bit lane); sixty-four (two pairs of groups)
        // while `fourGroups`.
        typealias Words = SIMD8<UInt64>
        let key = RandomStream.key(seed)
        let lanes = Words(0, 1, 2, 3, 4, 5, 6, 7)
        let one = kernels_opaque8_ulong(Words(repeating: 1))
        var hitLanes = Words.zero
        withUnsafeTemporaryAllocation(of: Words.self, capacity: 20) { keys in
            for r in 0..<10 {
                let round = UInt32(truncatingIfNeeded: r)
                keys[2 * r] = Words(repeating: UInt64(key[0] &+ round &* 0x9E37_79B9))
                keys[2 * r + 1] = Words(repeating: UInt64(key[1] &+ round &* 0xBB67_AE85))
            }
            let keys = UnsafePointer(keys.baseAddress!)
            while fourGroups && end - k >= 64 {
                let first = Words(repeating: UInt64(truncatingIfNeeded: k >> 1)) &+ lanes
                let (x0, x1, x2, x3, y0, y1, y2, y3) = Self.philox(first, first &+ 8, keys: keys)
                let (u0, u1, u2, u3, v0, v1, v2, v3) = Self.philox(first &+ 16, first &+ 24, keys: keys)
                Self.countHits(x0, x1, into: &hitLanes, one: one)
                Self.countHits(x2, x3, into: &hitLanes, one: one)
                Self.countHits(y0, y1, into: &hitLanes, one: one)
                Self.countHits(y2, y3, into: &hitLanes, one: one)
                Self.countHits(u0, u1, into: &hitLanes, one: one)
                Self.countHits(u2, u3, into: &hitLanes, one: one)
                Self.countHits(v0, v1, into: &hitLanes, one: one)
                Self.countHits(v2, v3, into: &hitLanes, one: one)
                k += 64
            }
            while end - k >= 32 {
                let first = Words(repeating: UInt64(truncatingIfNeeded: k >> 1)) &+ lanes
                let second = first &+ 8
                let (x0, x1, x2, x3, y0, y1, y2, y3) = Self.philox(first, second, keys: keys)
                Self.countHits(x0, x1, into: &hitLanes, one: one)
                Self.countHits(x2, x3, into: &hitLanes, one: one)
                Self.countHits(y0, y1, into: &hitLanes, one: one)
                Self.countHits(y2, y3, into: &hitLanes, one: one)
                k += 32
            }
        }
        hits &+= Int(truncatingIfNeeded: hitLanes.wrappedSum())
        while k < end {
            hits &+= Self.isHit(RandomStream.draw(seed: seed, stream: 0, index: UInt64(truncatingIfNeeded: k)))
            k += 1
        }
        return hits
    }

    /// 1 if the sample of `draw` — x its low 32 bits, y its high 32 bits, as fractions of
    /// 2^32 — is inside the quarter disc: x² + y² < 2^64, exactly, in integers.
    @inlinable @inline(__always)
    public static func isHit(_ draw: UInt64) -> Int {
        let x = draw & 0xFFFF_FFFF, y = draw >> 32
        return (x * x).addingReportingOverflow(y * y).overflow ? 0 : 1
    }

    /// `isHit` on eight samples given as their x and y words (< 2^32): adds `one` (1, hidden
    /// from the optimiser) to `counts` in the lanes that hit. No carry out of 64 bits: the sum
    /// did not wrap below one of its terms. Written with `KernelsSupport`'s select and opaque
    /// value so that AVX-512 does it as the C does: two multiplies, an add, a compare into a
    /// mask register and one masked add (`KernelsSupport.h`).
    @inlinable @inline(__always)
    static func countHits(
        _ x: SIMD8<UInt64>, _ y: SIMD8<UInt64>, into counts: inout SIMD8<UInt64>, one: SIMD8<UInt64>
    ) {
        let xx = x &* x
        let sum = kernels_opaque8_ulong(xx &+ y &* y)
        let hit = unsafeBitCast(sum .>= xx, to: SIMD8<Int64>.self)
        counts = kernels_select8_ulong(hit, counts &+ one, counts)
    }

    /// Philox4x32-10 (`Philox4x32.blocks` of Multiprocessing, in 8-lane registers) of the
    /// counters `first` and `second` (block numbers, stream 0), one block per 64-bit lane,
    /// the two groups' rounds interleaved: the four output words of each, each < 2^32.
    /// `keys` holds the round keys broadcast, round r's k0 at 2r and k1 at 2r + 1. Only the
    /// low 32 bits of a lane matter to a product, so hi() is a shift and lo() needs no mask
    /// until the output.
    @inlinable @inline(__always)
    static func philox(
        _ first: SIMD8<UInt64>, _ second: SIMD8<UInt64>,
        keys: UnsafePointer<SIMD8<UInt64>>
    )
        -> (
            SIMD8<UInt64>, SIMD8<UInt64>, SIMD8<UInt64>, SIMD8<UInt64>,
            SIMD8<UInt64>, SIMD8<UInt64>, SIMD8<UInt64>, SIMD8<UInt64>
        )
    {
        typealias W = SIMD8<UInt64>
        let low = W(repeating: 0xFFFF_FFFF)
        let m0 = W(repeating: 0xD251_1F53), m1 = W(repeating: 0xCD9E_8D57)
        var a = (first, first &>> 32, W.zero, W.zero)
        var b = (second, second &>> 32, W.zero, W.zero)
        @inline(__always) func round(_ r: UInt32) {
            let key0 = keys[2 * Int(r)], key1 = keys[2 * Int(r) + 1]
            let pa0 = (a.0 & low) &* m0, pa1 = (a.2 & low) &* m1
            let pb0 = (b.0 & low) &* m0, pb1 = (b.2 & low) &* m1
            a = ((pa1 &>> 32) ^ a.1 ^ key0, pa1, (pa0 &>> 32) ^ a.3 ^ key1, pa0)
            b = ((pb1 &>> 32) ^ b.1 ^ key0, pb1, (pb0 &>> 32) ^ b.3 ^ key1, pb0)
        }
        // Unrolled; the keys come from memory, so they are operands of the XORs instead of
        // registers rebuilt every round.
        round(0); round(1); round(2); round(3); round(4)
        round(5); round(6); round(7); round(8); round(9)
        return (a.0 & low, a.1 & low, a.2 & low, a.3 & low, b.0 & low, b.1 & low, b.2 & low, b.3 & low)
    }

    /// The hits over all samples, computed in one chunk.
    ///
    /// - Complexity: O(`samples`).
    public func serial() -> Int { self(0..<samples) }

    /// π estimated from `hits` among `samples` points: `4 · hits / samples`.
    public func estimate(hits: Int) -> Double {
        samples == 0 ? 0 : 4.0 * Double(hits) / Double(samples)
    }
}
