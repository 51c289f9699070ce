/// Escape-time Mandelbrot set over the rectangle [−2, 1] × [−1.2, 1.2]
/// (definition and checksums: `Benchmarks/README.md`).
///
/// Pixel (px, py) sits at c = (−2 + px·(3/width), −1.2 + py·(2.4/height)); its value is the
/// number of iterations z ← z² + c, at most `maxIterations`, before |z|² > 4. Plain IEEE
/// double without fused multiply-add, so the counts match the C reference exactly:
/// Σn = 113 169 525 at 1600 × 1200 × 256 and 7 077 920 at 400 × 300 × 256.
///
/// A chunk is a range of rows; its result is their iteration counts, row-major. Sixteen
/// pixels run at once in two 8-lane SIMD groups.
public struct Mandelbrot: Codable, Sendable, Hashable {
    public var width: Int
    public var height: Int
    public var maxIterations: Int

    public init(width: Int = 1600, height: Int = 1200, maxIterations: Int = 256) {
        precondition(width > 0 && height > 0, "Mandelbrot: empty image \(width)×\(height)")
        precondition((0...Int(UInt16.max)).contains(maxIterations),
                     "Mandelbrot: maxIterations \(maxIterations) does not fit UInt16")
        self.width = width
        self.height = height
        self.maxIterations = maxIterations
    }

    /// The iteration counts of rows `rows` (a sub-range of `0..<height`), row-major,
    /// `rows.count × width` values.
    ///
    /// - Complexity: O(`rows.count · width · maxIterations`).
    @inlinable
    public func callAsFunction(_ rows: Range<Int>) -> [UInt16] {
        precondition(rows.lowerBound >= 0 && rows.upperBound <= height,
                     "Mandelbrot: rows \(rows) outside 0..<\(height)")
        let width = self.width
        return [UInt16](unsafeUninitializedCapacity: rows.count * width) { buffer, count in
            for (offset, row) in rows.enumerated() {
                let out = UnsafeMutableBufferPointer(rebasing: buffer[(offset * width)...])
                computeRow(row, into: out.baseAddress!)
            }
            count = rows.count * width
        }
    }

    /// The iteration counts of the whole image, row-major.
    ///
    /// - Complexity: O(`width · height · maxIterations`).
    public func serial() -> [UInt16] { self(0..<height) }

    /// Σn over `counts`, the reference checksum.
    ///
    /// - Complexity: O(`counts.count`).
    public static func checksum(_ counts: [UInt16]) -> Int {
        counts.reduce(0) { $0 &+ Int($1) }
    }

    /// One row, sixteen pixels per step as two 8-lane groups whose dependency chains
    /// interleave. Each lane runs exactly the scalar recurrence, so the counts are those of the
    /// one-pixel-at-a-time loop; a group stops when all of its lanes have escaped.
    @inlinable
    func computeRow(_ row: Int, into out: UnsafeMutablePointer<UInt16>) {
        typealias Lanes = SIMD8<Double>
        typealias Mask = SIMDMask<SIMD8<Int64>>
        let width = self.width
        let limit = self.maxIterations
        let dx = 3.0 / Double(width)
        let ci = Lanes(repeating: -1.2 + Double(row) * (2.4 / Double(self.height)))
        let laneOffsets = Lanes(0, 1, 2, 3, 4, 5, 6, 7)
        let four = Lanes(repeating: 4.0)
        let one = SIMD8<Int64>(repeating: 1)
        var px = 0
        while px < width {
            // Lanes past the right edge compute pixels that are never stored.
            let cra = Lanes(repeating: -2.0) + (Lanes(repeating: Double(px)) + laneOffsets) * dx
            let crb = Lanes(repeating: -2.0)
                + (Lanes(repeating: Double(px + 8)) + laneOffsets) * dx
            var zra = Lanes(), zia = Lanes(), zrb = Lanes(), zib = Lanes()
            var na = SIMD8<Int64>(), nb = SIMD8<Int64>()
            var activeA = Mask(repeating: true), activeB = Mask(repeating: true)
            var iteration = 0
            while iteration < limit {
                let zra2 = zra * zra, zia2 = zia * zia
                let zrb2 = zrb * zrb, zib2 = zib * zib
                activeA .&= zra2 + zia2 .<= four
                activeB .&= zrb2 + zib2 .<= four
                if !any(activeA .| activeB) { break }
                na &+= one.replacing(with: 0, where: .!activeA)
                nb &+= one.replacing(with: 0, where: .!activeB)
                zia = 2.0 * zra * zia + ci
                zra = zra2 - zia2 + cra
                zib = 2.0 * zrb * zib + ci
                zrb = zrb2 - zib2 + crb
                iteration += 1
            }
            for lane in 0..<min(16, width - px) {
                out[px + lane] = UInt16(truncatingIfNeeded: lane < 8 ? na[lane] : nb[lane - 8])
            }
            px += 16
        }
    }
}
