import KernelsSupport

/// Escape-time Mandelbrot set over the rectangle [−2, 1] × [−1.2, 1.2]
/// (definition and checksums: `Benchmarks/README.md`).
///
/// Pixel (px, py) sits at c = (−2 + px·(3/width), −1.2 + py·(2.4/height)); its value is the
/// number of iterations z ← z² + c, at most `maxIterations`, before |z|² > 4. IEEE double,
/// each operation rounded as the C reference rounds it, so the counts match it exactly:
/// Σn = 113 169 525 at 1600 × 1200 × 256 and 7 077 920 at 400 × 300 × 256. (With FMA the
/// new zi, (2·zr)·zi + ci, is one fused 2·(zr·zi) + ci, bit for bit the same: see `counts`.)
///
/// A chunk is a range of rows; its result is their iteration counts, row-major. Pixels run in
/// 8-lane SIMD groups, one group per row of a tile: tiles of 8 × 5 pixels over five rows at a
/// time with AVX-512 (forty pixels at once), else tiles of 8 × 4 over four rows; then 8 × 4
/// tiles, then 32 pixels of one row for the rows left over.
public struct Mandelbrot: Codable, Sendable, Hashable {
    public var width: Int
    public var height: Int
    public var maxIterations: Int

    public init(width: Int = 1600, height: Int = 1200, maxIterations: Int = 256) {
        precondition(width > 0 && height > 0, "Mandelbrot: empty image \(width)×\(height)")
        precondition(
            (0...Int(UInt16.max)).contains(maxIterations),
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
        precondition(
            rows.lowerBound >= 0 && rows.upperBound <= height,
            "Mandelbrot: rows \(rows) outside 0..<\(height)")
        return [UInt16](unsafeUninitializedCapacity: rows.count * width) { buffer, count in
            render(rows, into: buffer)
            count = buffer.count
        }
    }

    /// Writes the iteration counts of rows `rows` (a sub-range of `0..<height`) into `out`,
    /// row-major: exactly `rows.count × width` values. For a caller that renders again and
    /// again (frames, benchmarks) into memory it keeps: a new array's fresh pages cost the
    /// kernel's zeroing on first touch (~1 ms of 26 at 1600 × 1200 × 256 here). A buffer of
    /// 1 MiB or more whose last page is not yet in memory is advised huge pages and mapped in
    /// one call first (`madvise`: `MADV_HUGEPAGE`, `MADV_POPULATE_WRITE`, on its whole pages).
    ///
    /// - Complexity: O(`rows.count · width · maxIterations`).
    @inlinable
    public func render(_ rows: Range<Int>, into out: UnsafeMutableBufferPointer<UInt16>) {
        // With AVX-512 (32 vector registers) five groups in flight, 0.96× the time of four
        // at 1600 × 1200 × 256 (the steps' chains of dependent operations overlap better, for
        // 0.8 % more steps on escaped lanes); a plain build's sixteen 128-bit registers hold
        // fewer, and it keeps four.
        render(rows, into: out, fiveRowTiles: KERNELS_VECTOR_BITS >= 512)
    }

    /// `render(_:into:)` in tiles of five rows while `fiveRowTiles` and five rows are left,
    /// then of four, then row by row.
    @inlinable
    func render(_ rows: Range<Int>, into out: UnsafeMutableBufferPointer<UInt16>, fiveRowTiles: Bool) {
        precondition(
            rows.lowerBound >= 0 && rows.upperBound <= height,
            "Mandelbrot: rows \(rows) outside 0..<\(height)")
        precondition(
            out.count == rows.count * width,
            "Mandelbrot: \(out.count) values of room for \(rows.count) rows of \(width)")
        guard let base = out.baseAddress, !rows.isEmpty else { return }
        // A large image's fresh pages mapped in one call rather than fault by fault
        // (advice only; nothing done for memory already in use).
        _ = kernels_prefault_for_writing(base, out.count * MemoryLayout<UInt16>.stride)
        // Five rows at a time in tiles of 8 × 5 pixels (when `fiveRowTiles`), then four rows in
        // tiles of 8 × 4, the rows left over one at a time.
        var row = rows.lowerBound
        while fiveRowTiles && rows.upperBound - row >= 5 {
            computeFiveRows(row, into: base + (row - rows.lowerBound) * width)
            row += 5
        }
        while rows.upperBound - row >= 4 {
            computeFourRows(row, into: base + (row - rows.lowerBound) * width)
            row += 4
        }
        while row < rows.upperBound {
            computeRow(row, into: base + (row - rows.lowerBound) * width)
            row += 1
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

    @usableFromInline typealias Lanes = SIMD8<Double>
    @usableFromInline typealias Counts = SIMD8<Int16>

    /// The real parts of pixels `px..<px + 8`.
    @inlinable @inline(__always)
    func real(_ px: Int) -> Lanes {
        Lanes(repeating: -2.0) + (Lanes(repeating: Double(px)) + Lanes(0, 1, 2, 3, 4, 5, 6, 7))
            * (3.0 / Double(width))
    }

    /// The imaginary part of row `row`, in every lane.
    @inlinable @inline(__always)
    func imaginary(_ row: Int) -> Lanes {
        Lanes(repeating: -1.2 + Double(row) * (2.4 / Double(height)))
    }

    /// The counts of the first `count` lanes of `n` (all eight when `count` ≥ 8) to `out`.
    @inlinable @inline(__always)
    func store(_ n: Counts, _ out: UnsafeMutablePointer<UInt16>, _ count: Int) {
        if count >= 8 {
            UnsafeMutableRawPointer(out).storeBytes(of: n, as: Counts.self)
        } else {
            for lane in 0..<max(0, count) {
                out[lane] = UInt16(truncatingIfNeeded: n[lane])
            }
        }
    }

    /// Rows `row..<row + 5` into `out` (row after row, `width` apart), in tiles of 8 × 5
    /// pixels: one 8-lane group per row, as `computeFourRows`.
    @inlinable
    func computeFiveRows(_ row: Int, into out: UnsafeMutablePointer<UInt16>) {
        let width = self.width
        let ci0 = imaginary(row), ci1 = imaginary(row + 1), ci2 = imaginary(row + 2)
        let ci3 = imaginary(row + 3), ci4 = imaginary(row + 4)
        var px = 0
        while px < width {
            let cr = real(px)
            let (n0, n1, n2, n3, n4) = counts(cr, ci0, ci1, ci2, ci3, ci4)
            let left = width - px
            store(n0, out + px, left)
            store(n1, out + width + px, left)
            store(n2, out + 2 * width + px, left)
            store(n3, out + 3 * width + px, left)
            store(n4, out + 4 * width + px, left)
            px += 8
        }
    }

    /// Rows `row..<row + 4` into `out` (row after row, `width` apart), in tiles of 8 × 4
    /// pixels: one 8-lane group per row. The 32 pixels of a step run until the last of them
    /// escapes; a compact tile's pixels escape closer together than 32 of one row, so fewer
    /// steps are wasted on escaped lanes (at 1600 × 1200 × 256, 4.4 % fewer group steps).
    @inlinable
    func computeFourRows(_ row: Int, into out: UnsafeMutablePointer<UInt16>) {
        let width = self.width
        let ci0 = imaginary(row), ci1 = imaginary(row + 1)
        let ci2 = imaginary(row + 2), ci3 = imaginary(row + 3)
        var px = 0
        while px < width {
            let cr = real(px)
            let (n0, n1, n2, n3) = counts(cr, cr, cr, cr, ci0, ci1, ci2, ci3)
            let left = width - px
            store(n0, out + px, left)
            store(n1, out + width + px, left)
            store(n2, out + 2 * width + px, left)
            store(n3, out + 3 * width + px, left)
            px += 8
        }
    }

    /// Row `row` into `out`, thirty-two pixels per step (four groups of eight side by side).
    @inlinable
    func computeRow(_ row: Int, into out: UnsafeMutablePointer<UInt16>) {
        let width = self.width
        let ci = imaginary(row)
        var px = 0
        while px < width {
            let (n0, n1, n2, n3) = counts(
                real(px), real(px + 8), real(px + 16), real(px + 24), ci, ci, ci, ci)
            store(n0, out + px, width - px)
            store(n1, out + px + 8, width - px - 8)
            store(n2, out + px + 16, width - px - 16)
            store(n3, out + px + 24, width - px - 24)
            px += 32
        }
    }

    /// The counts of four 8-lane groups of pixels, c = cr + ci·i, whose dependency chains
    /// interleave. Each lane runs exactly the scalar recurrence, so the counts are those of the
    /// one-pixel-at-a-time loop. The steps run in blocks of two, as the AVX-512 C runs one
    /// step: a lane's mask (still counting) is, at the start of a block, its count equal to the
    /// steps so far; each step narrows it by |z|² ≤ 4 and adds one to the counts under it. With
    /// AVX-512 the mask then lives in a mask register — the compare takes the previous mask as
    /// its write mask, the count is one masked add of 16-bit lanes — where a mask carried in a
    /// vector from step to step costs two more instructions per step (the helpers:
    /// `KernelsSupport.h`). A lane stops counting at its first |z|² > 4, so the test for "all
    /// 32 escaped" runs only after each block: the step after the last escape changes no count.
    /// The counts are 16-bit (`maxIterations` fits `UInt16`, held as its bit pattern).
    ///
    /// The new zi is `kernels_twice_plus8(zr·zi, ci)`: 2·p + ci rounded once, one fused
    /// multiply-add where the target has FMA (an operation fewer per step: 5 % faster at
    /// 1600 × 1200 × 256 with AVX-512), (p + p) + ci otherwise. It has the bits of the
    /// definition's (2·zr)·zi + ci whenever 2·round(zr·zi) = round(2·zr·zi), that is unless
    /// 0 < |zr·zi| < 2⁻¹⁰²¹, where p would lose bits to gradual underflow. That never happens
    /// while a lane counts (|z|² ≤ 4): cr and ci are 0 or at least 2⁻⁵³ in magnitude
    /// (−2 + x and −1.2 + x round to 0 or to a multiple of x's ulp), so a nonzero zr or zi after
    /// "+ cr" or "+ ci" is at least 2⁻¹⁰⁶; with ci = 0, zi stays +0; with cr = 0, a nonzero
    /// zr² − zi² after a nonzero zi is at least 2⁻²⁶⁵ and after a zero zi (never two in a row)
    /// at least 2⁻⁵³⁰: a nonzero product is above 2⁻⁶⁴⁰. Escaped lanes no longer count.
    @inlinable @inline(__always)
    func counts(
        _ cr0: Lanes, _ cr1: Lanes, _ cr2: Lanes, _ cr3: Lanes,
        _ ci0: Lanes, _ ci1: Lanes, _ ci2: Lanes, _ ci3: Lanes
    ) -> (Counts, Counts, Counts, Counts) {
        typealias Mask = SIMDMask<SIMD8<Int64>>
        let limit = self.maxIterations
        let four = Lanes(repeating: 4.0)
        let one = kernels_opaque8_short(Counts(repeating: 1))
        @inline(__always) func step(
            _ zr: inout Lanes, _ zi: inout Lanes, _ cr: Lanes, _ ci: Lanes, _ active: inout Mask,
            _ n: inout Counts
        ) {
            let zr2 = zr * zr, zi2 = zi * zi
            active .&= zr2 + zi2 .<= four
            n = kernels_select8_short(unsafeBitCast(active, to: SIMD8<Int64>.self), n &+ one, n)
            zi = kernels_twice_plus8(zr * zi, ci)
            zr = zr2 - zi2 + cr
        }
        @inline(__always) func eq(_ a: Counts, _ b: Counts) -> Mask {
            unsafeBitCast(kernels_equal8_short(a, b), to: Mask.self)
        }
        var zr0 = Lanes(), zi0 = Lanes(), zr1 = Lanes(), zi1 = Lanes()
        var zr2 = Lanes(), zi2 = Lanes(), zr3 = Lanes(), zi3 = Lanes()
        var n0 = Counts(), n1 = Counts(), n2 = Counts(), n3 = Counts()
        var iteration = 0
        while limit - iteration >= 2 {
            // The lanes still counting after `iteration` steps: those that counted every step.
            let t = Counts(repeating: Int16(truncatingIfNeeded: iteration))
            var a0 = eq(n0, t), a1 = eq(n1, t), a2 = eq(n2, t), a3 = eq(n3, t)
            // Two steps, written out: a loop here would carry the masks as vectors. (The
            // compiler lays out each group's steps of a block one after the other, and the
            // core's scheduler then sees fewer groups at once: blocks of four steps ran 4 %
            // slower, of three 2 %, of one step 3 %, its test dominating.)
            step(&zr0, &zi0, cr0, ci0, &a0, &n0); step(&zr1, &zi1, cr1, ci1, &a1, &n1)
            step(&zr2, &zi2, cr2, ci2, &a2, &n2); step(&zr3, &zi3, cr3, ci3, &a3, &n3)
            step(&zr0, &zi0, cr0, ci0, &a0, &n0); step(&zr1, &zi1, cr1, ci1, &a1, &n1)
            step(&zr2, &zi2, cr2, ci2, &a2, &n2); step(&zr3, &zi3, cr3, ci3, &a3, &n3)
            iteration += 2
            if !any((a0 .| a1) .| (a2 .| a3)) { break }
        }
        if iteration < limit && limit - iteration < 2 {
            // The last step of an odd limit.
            let t = Counts(repeating: Int16(truncatingIfNeeded: iteration))
            var a0 = eq(n0, t), a1 = eq(n1, t), a2 = eq(n2, t), a3 = eq(n3, t)
            while iteration < limit {
                step(&zr0, &zi0, cr0, ci0, &a0, &n0); step(&zr1, &zi1, cr1, ci1, &a1, &n1)
                step(&zr2, &zi2, cr2, ci2, &a2, &n2); step(&zr3, &zi3, cr3, ci3, &a3, &n3)
                iteration += 1
            }
        }
        return (n0, n1, n2, n3)
    }

    /// The counts of five 8-lane groups of pixels, c = cr + ci·i (the five rows of a tile):
    /// `counts` with a fifth group, the same steps.
    @inlinable @inline(__always)
    func counts(
        _ cr: Lanes, _ ci0: Lanes, _ ci1: Lanes, _ ci2: Lanes, _ ci3: Lanes, _ ci4: Lanes
    ) -> (Counts, Counts, Counts, Counts, Counts) {
        typealias Mask = SIMDMask<SIMD8<Int64>>
        let limit = self.maxIterations
        let four = Lanes(repeating: 4.0)
        let one = kernels_opaque8_short(Counts(repeating: 1))
        @inline(__always) func step(
            _ zr: inout Lanes, _ zi: inout Lanes, _ cr: Lanes, _ ci: Lanes, _ active: inout Mask,
            _ n: inout Counts
        ) {
            let zr2 = zr * zr, zi2 = zi * zi
            active .&= zr2 + zi2 .<= four
            n = kernels_select8_short(unsafeBitCast(active, to: SIMD8<Int64>.self), n &+ one, n)
            zi = kernels_twice_plus8(zr * zi, ci)
            zr = zr2 - zi2 + cr
        }
        @inline(__always) func eq(_ a: Counts, _ b: Counts) -> Mask {
            unsafeBitCast(kernels_equal8_short(a, b), to: Mask.self)
        }
        var zr0 = Lanes(), zi0 = Lanes(), zr1 = Lanes(), zi1 = Lanes(), zr2 = Lanes(), zi2 = Lanes()
        var zr3 = Lanes(), zi3 = Lanes(), zr4 = Lanes(), zi4 = Lanes()
        var n0 = Counts(), n1 = Counts(), n2 = Counts(), n3 = Counts(), n4 = Counts()
        var iteration = 0
        while limit - iteration >= 2 {
            let t = Counts(repeating: Int16(truncatingIfNeeded: iteration))
            var a0 = eq(n0, t), a1 = eq(n1, t), a2 = eq(n2, t), a3 = eq(n3, t), a4 = eq(n4, t)
            step(&zr0, &zi0, cr, ci0, &a0, &n0); step(&zr1, &zi1, cr, ci1, &a1, &n1)
            step(&zr2, &zi2, cr, ci2, &a2, &n2); step(&zr3, &zi3, cr, ci3, &a3, &n3)
            step(&zr4, &zi4, cr, ci4, &a4, &n4)
            step(&zr0, &zi0, cr, ci0, &a0, &n0); step(&zr1, &zi1, cr, ci1, &a1, &n1)
            step(&zr2, &zi2, cr, ci2, &a2, &n2); step(&zr3, &zi3, cr, ci3, &a3, &n3)
            step(&zr4, &zi4, cr, ci4, &a4, &n4)
            iteration += 2
            if !any(((a0 .| a1) .| (a2 .| a3)) .| a4) { break }
        }
        if iteration < limit && limit - iteration < 2 {
            // The last step of an odd limit. (A loop that runs once: written as one straight
            // step, it changed how the compiler laid out the main loop, 1.13× the time.)
            let t = Counts(repeating: Int16(truncatingIfNeeded: iteration))
            var a0 = eq(n0, t), a1 = eq(n1, t), a2 = eq(n2, t), a3 = eq(n3, t), a4 = eq(n4, t)
            while iteration < limit {
                step(&zr0, &zi0, cr, ci0, &a0, &n0); step(&zr1, &zi1, cr, ci1, &a1, &n1)
                step(&zr2, &zi2, cr, ci2, &a2, &n2); step(&zr3, &zi3, cr, ci3, &a3, &n3)
                step(&zr4, &zi4, cr, ci4, &a4, &n4)
                iteration += 1
            }
        }
        return (n0, n1, n2, n3, n4)
    }
}
