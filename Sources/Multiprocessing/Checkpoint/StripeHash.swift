/// The checkpoint journal's 64-bit hash: of the function value and of the inputs (which tell
/// a journal's work apart) and of each frame of records (which finds a torn or damaged
/// frame). Not a cryptographic hash.
///
/// Bytes are read as little-endian 64-bit words in stripes of 64 bytes, words 2*i* and
/// 2*i* + 1 of each stripe into lane *i*: a lane is one chain of dependent steps, each the
/// 128-bit product of (lane ⊕ first word) and (second word ⊕ a constant, made odd), its
/// halves folded together and the second word xored in (wyhash's `mum`, made so that no
/// word can zero the product and wipe the lane's history). Four lanes keep the multiplier
/// busy: about 20 GB/s here, so millions of inputs hash in a millisecond or so. A last
/// partial stripe is padded with zeros; then the lanes and the length are folded together
/// and the result mixed (MurmurHash3's finaliser).
///
/// Why this and not a 64-bit product per word (FNV-like, the first format's): LLVM
/// vectorises eight such chains with SSE2 into three 32-bit multiplies and shuffles per
/// pair of lanes, at half this speed; a 128-bit product is one scalar `mul` it leaves alone.
func stripeHash(_ raw: UnsafeRawBufferPointer, seed: UInt64 = 0) -> UInt64 {
    var hasher = StripeHasher(seed: seed)
    hasher.add(raw)
    return hasher.finish()
}

func stripeHash(_ bytes: [UInt8], seed: UInt64 = 0) -> UInt64 {
    bytes.withUnsafeBytes { stripeHash($0, seed: seed) }
}

/// `stripeHash` of the concatenation of byte buffers added one after the other (the same
/// value as `stripeHash` of all of them copied into one).
struct StripeHasher {
    static let multiplier: UInt64 = 0x9E37_79B9_7F4A_7C15

    private var lanes: (UInt64, UInt64, UInt64, UInt64)
    /// Bytes of a stripe not complete yet (the first `carried`).
    private var carry: (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0, 0, 0, 0, 0)
    private var carried = 0
    private var total = 0
    private let seed: UInt64

    init(seed: UInt64 = 0) {
        self.seed = seed
        let s = seed ^ 0x243F_6A88_85A3_08D3
        lanes = (s, s &+ 0x1319_8A2E_0370_7344, s &+ 0xA409_3822_299F_31D0, s &+ 0x082E_FA98_EC4E_6C89)
    }

    /// One step of a lane with the words `x` and `y` (as loaded: little-endian).
    @inline(__always)
    private static func step(_ lane: UInt64, _ x: UInt64, _ y: UInt64) -> UInt64 {
        let (x, y) = (UInt64(littleEndian: x), UInt64(littleEndian: y))
        let product = (lane ^ x).multipliedFullWidth(by: (y ^ multiplier) | 1)
        return product.high ^ product.low ^ y
    }

    /// Hashes `count` whole stripes at `base`.
    @inline(__always)
    private mutating func absorb(_ base: UnsafeRawPointer, stripes count: Int) {
        lanes = Self.absorb(lanes.0, lanes.1, lanes.2, lanes.3, base, count)
    }

    /// The lanes after `count` stripes at `base`. Not inlined: with the lanes in memory
    /// (`self`) around the loop, LLVM's SLP vectoriser moves pairs of them through SSE
    /// registers at every step (half the speed); as arguments and results they stay in
    /// general registers.
    @inline(never)
    private static func absorb(
        _ a: UInt64, _ b: UInt64, _ c: UInt64, _ d: UInt64, _ base: UnsafeRawPointer, _ count: Int
    ) -> (UInt64, UInt64, UInt64, UInt64) {
        var (a, b, c, d) = (a, b, c, d)
        var p = base
        for _ in 0..<count {
            a = step(a, p.loadUnaligned(as: UInt64.self), p.loadUnaligned(fromByteOffset: 8, as: UInt64.self))
            b = step(b, p.loadUnaligned(fromByteOffset: 16, as: UInt64.self), p.loadUnaligned(fromByteOffset: 24, as: UInt64.self))
            c = step(c, p.loadUnaligned(fromByteOffset: 32, as: UInt64.self), p.loadUnaligned(fromByteOffset: 40, as: UInt64.self))
            d = step(d, p.loadUnaligned(fromByteOffset: 48, as: UInt64.self), p.loadUnaligned(fromByteOffset: 56, as: UInt64.self))
            p += 64
        }
        return (a, b, c, d)
    }

    mutating func add(_ raw: UnsafeRawBufferPointer) {
        guard let base = raw.baseAddress, raw.count > 0 else { return }
        total += raw.count
        var index = 0
        if carried > 0 {
            let take = min(64 - carried, raw.count)
            withUnsafeMutableBytes(of: &carry) { $0.baseAddress!.advanced(by: carried).copyMemory(from: base, byteCount: take) }
            carried += take
            index = take
            guard carried == 64 else { return }
            withUnsafeBytes(of: carry) { absorb($0.baseAddress!, stripes: 1) }
            carried = 0
        }
        let stripes = (raw.count - index) / 64
        absorb(base + index, stripes: stripes)
        index += 64 * stripes
        if index < raw.count {
            withUnsafeMutableBytes(of: &carry) { $0.baseAddress!.copyMemory(from: base + index, byteCount: raw.count - index) }
            carried = raw.count - index
        }
    }

    func finish() -> UInt64 {
        var copy = self
        if carried > 0 {
            // The partial stripe, padded with zeros (the length, folded in below, tells it apart).
            withUnsafeMutableBytes(of: &copy.carry) { stripe in
                _ = stripe.baseAddress!.advanced(by: carried).initializeMemory(as: UInt8.self, repeating: 0, count: 64 - carried)
            }
            withUnsafeBytes(of: copy.carry) { copy.absorb($0.baseAddress!, stripes: 1) }
        }
        let (a, b, c, d) = copy.lanes
        var hash = Self.step(UInt64(total) ^ seed, a.littleEndian, b.littleEndian)
        hash = Self.step(hash, c.littleEndian, d.littleEndian)
        hash ^= hash >> 33
        hash &*= 0xFF51_AFD7_ED55_8CCD
        hash ^= hash >> 33
        hash &*= 0xC4CE_B9FE_1A85_EC53
        return hash ^ (hash >> 33)
    }
}
