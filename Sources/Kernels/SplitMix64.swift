/// SplitMix64 in counter form (see `Benchmarks/README.md`): draw `n` (0-based) of the
/// stream with seed `s` is `mix(s &+ (n + 1) &* 0x9E3779B97F4A7C15)`. Any chunking of the
/// draws gives the same numbers, so every backend and worker count agrees bit for bit.
public enum SplitMix64 {
    public static let gamma: UInt64 = 0x9E37_79B9_7F4A_7C15

    @inlinable @inline(__always)
    public static func mix(_ value: UInt64) -> UInt64 {
        var z = value
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// Draw `n` of the stream with `seed`.
    @inlinable @inline(__always)
    public static func draw(seed: UInt64, index n: UInt64) -> UInt64 {
        mix(seed &+ (n &+ 1) &* gamma)
    }

    /// A uniform double in [0, 1) from the top 53 bits of a draw.
    @inlinable @inline(__always)
    public static func unit(_ z: UInt64) -> Double {
        Double(z >> 11) * 0x1.0p-53
    }
}
