/// Philox4x32-10, the counter-based generator of Salmon, Moraes, Dror and Shaw, "Parallel
/// random numbers: as easy as 1, 2, 3" (SC '11, doi:10.1145/2063384.2063405): a keyed
/// bijection of 128-bit counters, ten rounds of two 32×32→64-bit multiplications with a
/// Weyl-sequence key schedule. The authors report that it passes all of TestU01's SmallCrush,
/// Crush and BigCrush (with seven rounds already; ten is their recommended safety margin).
/// Checked here against the Random123 known-answer vectors.
public enum Philox4x32 {
    /// The round multipliers.
    public static let multipliers: (UInt32, UInt32) = (0xD251_1F53, 0xCD9E_8D57)
    /// The key schedule's increments (the golden ratio and √3 − 1, in 32-bit fixed point).
    public static let weyl: (UInt32, UInt32) = (0x9E37_79B9, 0xBB67_AE85)

    /// The 128-bit output for `counter` under `key` after `rounds` rounds (10 is Philox4x32-10).
    @inlinable
    public static func block(_ counter: SIMD4<UInt32>, key: SIMD2<UInt32>, rounds: Int = 10) -> SIMD4<UInt32> {
        var (c0, c1, c2, c3) = (counter[0], counter[1], counter[2], counter[3])
        var (k0, k1) = (key[0], key[1])
        for round in 0..<rounds {
            if round > 0 {
                k0 &+= weyl.0
                k1 &+= weyl.1
            }
            let p0 = UInt64(c0) &* UInt64(multipliers.0)
            let p1 = UInt64(c2) &* UInt64(multipliers.1)
            (c0, c1, c2, c3) = (
                UInt32(truncatingIfNeeded: p1 >> 32) ^ c1 ^ k0, UInt32(truncatingIfNeeded: p1),
                UInt32(truncatingIfNeeded: p0 >> 32) ^ c3 ^ k1, UInt32(truncatingIfNeeded: p0)
            )
        }
        return SIMD4(c0, c1, c2, c3)
    }

    /// The ten round keys of `key` (Philox's key schedule): round `r` uses
    /// `(key[0] + r·weyl.0, key[1] + r·weyl.1)` modulo 2^32, as 64-bit words for `blocks`.
    @inlinable @inline(__always)
    public static func roundKeys(_ key: SIMD2<UInt32>) -> RoundKeys {
        let round = SIMD16<UInt64>(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15)
        let low = SIMD16<UInt64>(repeating: 0xFFFF_FFFF)
        var keys = RoundKeys()
        keys.k0 = (SIMD16(repeating: UInt64(key[0])) &+ round &* UInt64(weyl.0)) & low
        keys.k1 = (SIMD16(repeating: UInt64(key[1])) &+ round &* UInt64(weyl.1)) & low
        return keys
    }

    /// Philox4x32-10's round keys, from `roundKeys(_:)`: round `r` (0…9) uses `k0[r]` and
    /// `k1[r]` (lanes 10…15 are unused).
    public struct RoundKeys: Sendable {
        public var k0 = SIMD16<UInt64>.zero
        public var k1 = SIMD16<UInt64>.zero
        public init() {}
    }

    /// Sixteen blocks at once: lane `i` holds the 32-bit words of the counter
    /// `(c0[i], c1[i], c2[i], c3[i])` in 64-bit lanes (the high halves are ignored) and gets
    /// the output words of `block` (high halves zero). The same function as `block`, in vector
    /// registers: 64-bit lanes let each 32×32→64-bit product be one instruction (`vpmuludq`)
    /// and need no widening or narrowing between rounds; the ten rounds are unrolled.
    @inlinable @inline(__always)
    public static func blocks(
        _ c0: SIMD16<UInt64>, _ c1: SIMD16<UInt64>, _ c2: SIMD16<UInt64>, _ c3: SIMD16<UInt64>,
        keys: RoundKeys
    )
        -> (SIMD16<UInt64>, SIMD16<UInt64>, SIMD16<UInt64>, SIMD16<UInt64>)
    {
        typealias Lanes = SIMD16<UInt64>
        let low = Lanes(repeating: 0xFFFF_FFFF)
        let m0 = Lanes(repeating: UInt64(multipliers.0)), m1 = Lanes(repeating: UInt64(multipliers.1))
        var state = (c0, c1, c2, c3)
        // Only the low 32 bits of each word matter: the products read only those, and the
        // high halves of c1 and c3 (the previous products' high words) end up in the high
        // halves of the XORs, which the next products ignore again.
        @inline(__always) func round(_ k0: UInt64, _ k1: UInt64) {
            let p0 = (state.0 & low) &* m0
            let p1 = (state.2 & low) &* m1
            state = ((p1 &>> 32) ^ state.1 ^ Lanes(repeating: k0), p1, (p0 &>> 32) ^ state.3 ^ Lanes(repeating: k1), p0)
        }
        round(keys.k0[0], keys.k1[0])
        round(keys.k0[1], keys.k1[1])
        round(keys.k0[2], keys.k1[2])
        round(keys.k0[3], keys.k1[3])
        round(keys.k0[4], keys.k1[4])
        round(keys.k0[5], keys.k1[5])
        round(keys.k0[6], keys.k1[6])
        round(keys.k0[7], keys.k1[7])
        round(keys.k0[8], keys.k1[8])
        round(keys.k0[9], keys.k1[9])
        return (state.0 & low, state.1 & low, state.2 & low, state.3 & low)
    }
}

/// A reproducible stream of random numbers: Philox4x32-10 (`Philox4x32`) keyed by `seed`,
/// with `stream` selecting one of 2^64 independent streams, each 2^64 `UInt64` draws long (it
/// then starts again).
///
/// Draw `n` of stream `s` is a pure function of `(seed, s, n)`: Philox's 128-bit block for the
/// counter `(n / 2 as two 32-bit words, s as two 32-bit words)` under the key `seed`, whose
/// four 32-bit outputs `x0…x3` give draw `2b` = `x0 | x1 << 32` and draw `2b + 1` =
/// `x2 | x3 << 32`. Nothing depends on which process, thread or chunk computes it: give input
/// `i` of a parallel map its own stream, `RandomStream(seed: seed, stream: UInt64(i))`, and the
/// results are the same for every worker count, chunk size, backend and retry —
/// `Pool.map(_:_:seed:)` does that for a `RandomizedFunction`. `jump(by:)` skips draws in
/// constant time.
///
/// Quality: Salmon et al. (SC '11) report that Philox4x32 passes all of TestU01's SmallCrush,
/// Crush and BigCrush with as few as seven rounds; ten is their recommended default, with a
/// safety margin. Streams never overlap: for one seed, every (stream, draw) pair is a distinct
/// counter of one keyed bijection. It is not a cryptographic generator.
///
/// Speed: thirty-two blocks (64 draws) are made at once in vector registers; `swiftmp bench
/// random` measures it (BENCHMARKS.md).
///
/// ```swift
/// var random = RandomStream(seed: 42, stream: 7)
/// let u = Double.random(in: 0..<1, using: &random)
/// let k = Int.random(in: 1...6, using: &random)
/// ```
public struct RandomStream: RandomNumberGenerator, Sendable, Hashable, Codable {
    /// The key: one seed names a family of streams.
    public let seed: UInt64
    /// Which stream of the seed's family.
    public let stream: UInt64

    /// The buffered draws and what a refill needs (see `Generator`).
    @usableFromInline var generator: Generator
    /// The next draw in the buffer, 0…64 (64: the buffer is used up). Invariant:
    /// `position == 2 · generator.base + index` (wrapping).
    @usableFromInline var index: Int

    /// Blocks made per refill: two groups of sixteen, computed side by side (two independent
    /// chains of multiplications keep the vector unit busy while each waits on its products).
    @usableFromInline static let width = 32

    /// Sixty-four draws, contiguous in memory.
    @usableFromInline struct Draws: Sendable {
        @usableFromInline var low: SIMD32<UInt64>
        @usableFromInline var high: SIMD32<UInt64>
        @usableFromInline init(low: SIMD32<UInt64>, high: SIMD32<UInt64>) {
            self.low = low
            self.high = high
        }
    }

    /// The buffer and everything a refill reads, in memory: the round keys, and the words
    /// that the first three rounds compute alike for every block of a refill (a refill's
    /// blocks differ only in the counter's low word, unless they cross a change of its high
    /// word). Read from memory, they cost the vector unit nothing (broadcast loads) where
    /// values in general registers would each cost a broadcast.
    @usableFromInline struct Generator: Sendable {
        /// Thirty-two blocks of output, in draw order: draw `2 · base + j` is word `j`.
        @usableFromInline var buffer: Draws
        /// The block of the buffer's first two draws.
        @usableFromInline var base: UInt64
        /// The stream (the counter's words 2 and 3).
        let stream: UInt64
        /// Philox's round keys of the seed.
        let keys: Philox4x32.RoundKeys
        /// The counter's high word (block >> 32) that `early` is for.
        var high: UInt64
        /// Words of the first three rounds shared by all blocks of counter high word `high`
        /// (`prepare`).
        var early: SIMD4<UInt64>

        init(seed: UInt64, stream: UInt64) {
            buffer = Draws(low: .zero, high: .zero)
            base = 0 &- UInt64(RandomStream.width)
            self.stream = stream
            keys = Philox4x32.roundKeys(RandomStream.key(seed))
            high = 0
            early = .zero
            prepare(high: 0)
        }

        /// Computes `early` for the blocks whose counter high word is `high`. Philox's first
        /// round multiplies counter word 2 (the stream) and XORs word 1 (`high`): the same for
        /// all of them; its output word 0 then makes the second round's first product the
        /// same too, whose low word is the third round's word 3.
        mutating func prepare(high: UInt64) {
            let low: UInt64 = 0xFFFF_FFFF
            let m0 = UInt64(Philox4x32.multipliers.0), m1 = UInt64(Philox4x32.multipliers.1)
            let q1 = (stream & low) &* m1
            let a0 = (q1 >> 32) ^ high ^ keys.k0[0]
            let q0 = a0 &* m0
            self.high = high
            early = SIMD4(
                (stream >> 32) ^ keys.k1[0], (q1 & low) ^ keys.k0[1], (q0 >> 32) ^ keys.k1[1], (q0 & low) ^ keys.k1[2])
        }

        /// The 64 draws of blocks `base…base + 31`, in draw order.
        @inline(__always)
        mutating func draws(_ base: UInt64) -> Draws {
            let high = base >> 32
            guard _fastPath(high == (base &+ 31) >> 32) else { return Self.crossing(base, stream: stream, keys: keys) }
            if _slowPath(high != self.high) { prepare(high: high) }
            return Draws(low: group(base), high: group(base &+ 16))
        }

        /// Thirty-two draws: blocks `base…base + 15`, which share the counter's high word
        /// `self.high`. The ten rounds of `Philox4x32.blocks`, less what `early` holds, and
        /// the last one packed: draw 2b = x0 | x1 << 32 is the last first product rotated by
        /// 32 bits with its low word XORed.
        @inline(__always)
        func group(_ base: UInt64) -> SIMD32<UInt64> {
            typealias Lanes = SIMD16<UInt64>
            let low = Lanes(repeating: 0xFFFF_FFFF)
            let m0 = Lanes(repeating: UInt64(Philox4x32.multipliers.0))
            let m1 = Lanes(repeating: UInt64(Philox4x32.multipliers.1))
            // Counter word 0 (the block's low word; the high halves are ignored).
            let c0 = Lanes(repeating: base) &+ Lanes(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15)
            // Round 0: words 0 and 1 come out the same in every block.
            var p0 = (c0 & low) &* m0
            var s2 = (p0 &>> 32) ^ Lanes(repeating: early[0])
            var s3 = p0
            // Round 1: word 0 is the same in every block (its product is in `early`).
            var p1 = (s2 & low) &* m1
            var s0 = (p1 &>> 32) ^ Lanes(repeating: early[1])
            var s1 = p1
            s2 = s3 ^ Lanes(repeating: early[2])
            // Round 2: word 3 is the same in every block.
            p0 = (s0 & low) &* m0
            p1 = (s2 & low) &* m1
            s0 = (p1 &>> 32) ^ s1 ^ Lanes(repeating: keys.k0[2])
            s1 = p1
            s2 = (p0 &>> 32) ^ Lanes(repeating: early[3])
            s3 = p0
            @inline(__always) func round(_ r: Int) {
                let p0 = (s0 & low) &* m0
                let p1 = (s2 & low) &* m1
                (s0, s1, s2, s3) = (
                    (p1 &>> 32) ^ s1 ^ Lanes(repeating: keys.k0[r]), p1, (p0 &>> 32) ^ s3 ^ Lanes(repeating: keys.k1[r]), p0
                )
            }
            round(3)
            round(4)
            round(5)
            round(6)
            round(7)
            round(8)
            p0 = (s0 & low) &* m0
            p1 = (s2 & low) &* m1
            let even = (p1 &>> 32 | p1 &<< 32) ^ ((s1 ^ Lanes(repeating: keys.k0[9])) & low)
            let odd = (p0 &>> 32 | p0 &<< 32) ^ ((s3 ^ Lanes(repeating: keys.k1[9])) & low)
            return interleave(even, odd)
        }

        /// The draws of 32 blocks whose counter's high word changes among them (once every
        /// 2^32 blocks): all four counter words in every lane.
        @inline(never)
        static func crossing(_ base: UInt64, stream: UInt64, keys: Philox4x32.RoundKeys) -> Draws {
            let lanes = SIMD16<UInt64>(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15)
            let blocks = SIMD16<UInt64>(repeating: base) &+ lanes, more = blocks &+ 16
            let s0 = SIMD16<UInt64>(repeating: stream), s1 = SIMD16<UInt64>(repeating: stream >> 32)
            let (x0, x1, x2, x3) = Philox4x32.blocks(blocks, blocks &>> 32, s0, s1, keys: keys)
            let (y0, y1, y2, y3) = Philox4x32.blocks(more, more &>> 32, s0, s1, keys: keys)
            return Draws(
                low: interleave(x0 | x1 &<< 32, x2 | x3 &<< 32), high: interleave(y0 | y1 &<< 32, y2 | y3 &<< 32))
        }
    }

    /// Stream `stream` (default 0) of `seed`, at its first draw.
    public init(seed: UInt64, stream: UInt64 = 0) {
        self.seed = seed
        self.stream = stream
        generator = Generator(seed: seed, stream: stream)
        index = 2 * Self.width
    }

    /// Another stream of the same seed, at its first draw.
    public func stream(_ stream: UInt64) -> RandomStream {
        RandomStream(seed: seed, stream: stream)
    }

    /// The index of the next draw in this stream.
    public var position: UInt64 {
        generator.base &* 2 &+ UInt64(index)
    }

    /// Skips `draws` draws (constant time): the next draw is draw `position + draws`.
    public mutating func jump(by draws: UInt64) {
        jump(to: position &+ draws)
    }

    /// Moves to draw `position` (constant time).
    public mutating func jump(to position: UInt64) {
        generator.base = position >> 1
        generator.buffer = generator.draws(generator.base)
        index = Int(position & 1)
    }

    @inlinable
    public mutating func next() -> UInt64 {
        // The index is read once and written once (see `refill`).
        var i = index
        if _slowPath(i == 2 * Self.width) {
            Self.refill(&generator)
            i = 0
        }
        // A load from memory: a dynamic index into a vector kept in registers is slow.
        let draw = withUnsafeBytes(of: &generator.buffer) { $0.load(fromByteOffset: i &* 8, as: UInt64.self) }
        index = i &+ 1
        return draw
    }

    /// Writes the next `buffer.count` draws into `buffer`: the same values as that many
    /// `next()` calls, made 64 at a time straight into the buffer.
    public mutating func fill(_ buffer: UnsafeMutableBufferPointer<UInt64>) {
        guard var out = buffer.baseAddress else { return }
        var remaining = buffer.count
        while remaining > 0 && index < 2 * Self.width {
            out.pointee = next()
            out += 1
            remaining -= 1
        }
        let raw = UnsafeMutableRawPointer(out)
        var offset = 0
        while remaining >= 2 * Self.width {
            generator.base &+= UInt64(Self.width)
            raw.storeBytes(of: generator.draws(generator.base), toByteOffset: offset, as: Draws.self)
            offset += 2 * Self.width * 8
            remaining -= 2 * Self.width
        }
        out += offset / 8
        // The buffer now ends where the draws written end; the rest comes from it.
        while remaining > 0 {
            out.pointee = next()
            out += 1
            remaining -= 1
        }
    }

    /// `fill` for an array: overwrites every element with the next draws.
    public mutating func fill(_ array: inout [UInt64]) {
        array.withUnsafeMutableBufferPointer { fill($0) }
    }

    /// `next()`'s refill: the following 32 blocks into the buffer. Static, and given only the
    /// generator (not the index), so that a loop of `next()` calls may keep the index in a
    /// register (a mutating call that may read it would need it stored at every draw).
    @usableFromInline @inline(never)
    static func refill(_ generator: inout Generator) {
        generator.base &+= UInt64(width)
        generator.buffer = generator.draws(generator.base)
    }

    /// first[0], second[0], first[1], … (the compiler makes it one shuffle per half).
    @inline(__always)
    static func interleave(_ first: SIMD16<UInt64>, _ second: SIMD16<UInt64>) -> SIMD32<UInt64> {
        SIMD32(
            first[0], second[0], first[1], second[1], first[2], second[2], first[3], second[3],
            first[4], second[4], first[5], second[5], first[6], second[6], first[7], second[7],
            first[8], second[8], first[9], second[9], first[10], second[10], first[11], second[11],
            first[12], second[12], first[13], second[13], first[14], second[14], first[15], second[15])
    }

    /// The Philox key of `seed`: its low and high 32-bit words.
    @inlinable
    public static func key(_ seed: UInt64) -> SIMD2<UInt32> {
        SIMD2(UInt32(truncatingIfNeeded: seed), UInt32(truncatingIfNeeded: seed >> 32))
    }

    /// Draw `n` of stream `stream` of `seed`, computed alone (no buffer): the same value as the
    /// `n`-th `next()` of `RandomStream(seed: seed, stream: stream)`.
    public static func draw(seed: UInt64, stream: UInt64, index n: UInt64) -> UInt64 {
        let block = n >> 1
        let x = Philox4x32.block(
            SIMD4(
                UInt32(truncatingIfNeeded: block), UInt32(truncatingIfNeeded: block >> 32),
                UInt32(truncatingIfNeeded: stream), UInt32(truncatingIfNeeded: stream >> 32)),
            key: key(seed))
        return n & 1 == 0 ? UInt64(x[0]) | UInt64(x[1]) << 32 : UInt64(x[2]) | UInt64(x[3]) << 32
    }

    // MARK: equality and coding: the identity of a stream is (seed, stream, position).

    public static func == (a: RandomStream, b: RandomStream) -> Bool {
        a.seed == b.seed && a.stream == b.stream && a.position == b.position
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(seed)
        hasher.combine(stream)
        hasher.combine(position)
    }

    private enum CodingKeys: String, CodingKey { case seed, stream, position }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        self.init(seed: try container.decode(UInt64.self, forKey: .seed), stream: try container.decode(UInt64.self, forKey: .stream))
        let position = try container.decode(UInt64.self, forKey: .position)
        if position != 0 { jump(to: position) }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(seed, forKey: .seed)
        try container.encode(stream, forKey: .stream)
        try container.encode(position, forKey: .position)
    }
}
