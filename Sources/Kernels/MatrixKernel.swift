import KernelsSupport

/// The blocked inner loops of ``MatrixMultiply``: C += A·B on raw row-major storage.
///
/// Goto/BLIS layout: a `depth × width` panel of B is packed into strips as wide as the register
/// tile (so the tile reads it sequentially), a sliver of A as tall as the tile is packed
/// k-major, and the tile of C lives in vector registers while the kernel runs down the depth.
///
/// Two tiles, chosen when the module is compiled (``Path/native``, from the target's vector
/// width — no flag and no run-time test):
/// - ``Path/wide``, for AVX-512 builds: 8 × 16, sixteen 8-lane registers of C;
/// - ``Path/narrow``, for everything else (the x86-64 baseline of a plain `swift build`, with
///   sixteen 128-bit registers): 4 × 4, four 4-lane values (eight SSE registers).
/// Both multiply-add with `kernels_muladd` (fused exactly when the target has FMA); the
/// reference matrices are small integers, so every product and partial sum is exact and both
/// paths give the same C, bit for bit, in any build.
public enum MatrixKernel {
    /// A register tile and its packing.
    public enum Path: Sendable, CaseIterable {
        /// 8 × 16 tile in `SIMD8<Double>` registers (AVX-512).
        case wide
        /// 4 × 4 tile in `SIMD4<Double>` values (SSE2 / AVX2).
        case narrow

        /// The tile this build uses: ``wide`` when compiled for AVX-512, else ``narrow``.
        public static let native = Path(vectorBits: Int(KERNELS_VECTOR_BITS))

        /// The tile for a target whose widest double vector has `vectorBits` bits.
        public init(vectorBits: Int) { self = vectorBits >= 512 ? .wide : .narrow }

        /// Rows of the register tile.
        public var tileRows: Int { self == .wide ? 8 : 4 }
        /// Columns of the register tile.
        public var tileColumns: Int { self == .wide ? 16 : 4 }
    }

    /// The size of a transparent huge page on x86-64 and most Linux systems: 2 MiB.
    @usableFromInline static let hugePage = 2 << 20

    /// Depth (k) of a packed panel: a 16-column strip of B (32 KiB) stays in L1 beside the
    /// A sliver.
    public static let panelDepth = 256
    /// Width (j) of a packed panel. A whole row of B at the reference size (n = 1024): the A
    /// sliver is packed once per depth panel and used against every strip (measured ~8 %
    /// faster than 512 columns on a Zen 4 core, where the 2 MiB panel sits in L2 and L3).
    public static let panelWidth = 1024

    /// C[rows × n] += A[rows × n] · B[n × n], all row-major with leading dimension `n`, with
    /// the register tile of `path` and panels of `panelDepth × panelWidth` (tests use small
    /// ones to cross panel edges on small matrices). With `overwrite`, C = A·B instead, and C
    /// may start uninitialised: the first depth panel stores its tiles without reading C.
    ///
    /// - Complexity: O(`rows · n²`) time, O(`min(panelDepth, n) · min(panelWidth, n)`) scratch.
    @inlinable
    public static func multiplyAdd(
        a: UnsafePointer<Double>, b: UnsafePointer<Double>, c: UnsafeMutablePointer<Double>,
        rows: Int, n: Int, path: Path = .native,
        panelDepth: Int = MatrixKernel.panelDepth, panelWidth: Int = MatrixKernel.panelWidth,
        overwrite: Bool = false
    ) {
        precondition(rows >= 0 && n >= 0 && panelDepth > 0 && panelWidth > 0)
        let tileRows = path.tileRows, tileColumns = path.tileColumns
        // A panel's strips are padded to whole tiles.
        let depthMax = max(1, min(panelDepth, n))
        let stripsMax = (max(1, min(panelWidth, n)) + tileColumns - 1) / tileColumns
        // The packed panel (2 MiB at the reference size) on a huge-page boundary, in huge pages
        // where the system gives them (kernels_advise_huge_pages; otherwise normal pages).
        let packedBCount = depthMax * stripsMax * tileColumns
        let packedBBytes = packedBCount * MemoryLayout<Double>.stride
        let packedBRaw = UnsafeMutableRawPointer.allocate(
            byteCount: packedBBytes,
            alignment: packedBBytes >= hugePage ? hugePage : MemoryLayout<Double>.alignment)
        _ = kernels_advise_huge_pages(packedBRaw, packedBBytes)
        let packedB = packedBRaw.bindMemory(to: Double.self, capacity: packedBCount)
        let packedA = UnsafeMutablePointer<Double>.allocate(capacity: depthMax * tileRows)
        let edge = UnsafeMutablePointer<Double>.allocate(capacity: tileRows * tileColumns)
        defer {
            packedBRaw.deallocate()
            packedA.deallocate()
            edge.deallocate()
        }
        var column = 0
        while column < n {
            let width = min(panelWidth, n - column)
            let strips = (width + tileColumns - 1) / tileColumns
            var depthStart = 0
            while depthStart < n {
                let depth = min(panelDepth, n - depthStart)
                packB(
                    b + depthStart * n + column, n: n, depth: depth, width: width,
                    tileColumns: tileColumns, into: packedB)
                var row = 0
                while row < rows {
                    let height = min(tileRows, rows - row)
                    packA(
                        a + row * n + depthStart, n: n, height: height, depth: depth,
                        tileRows: tileRows, into: packedA)
                    for strip in 0..<strips {
                        let j = strip * tileColumns
                        let tileWidth = min(tileColumns, width - j)
                        let target = c + row * n + column + j
                        let panel = UnsafePointer(packedB + strip * depth * tileColumns)
                        let full = height == tileRows && tileWidth == tileColumns
                        let out = full ? target : edge, ldc = full ? n : tileColumns
                        // The first panel of an overwrite, and every edge tile, start from 0.
                        let load = full && !(overwrite && depthStart == 0)
                        switch path {
                        case .wide:
                            wideTile(a: packedA, b: panel, depth: depth, c: out, ldc: ldc, load: load)
                        case .narrow:
                            narrowTile(a: packedA, b: panel, depth: depth, c: out, ldc: ldc, load: load)
                        }
                        if !full {
                            let first = overwrite && depthStart == 0
                            for r in 0..<height {
                                for s in 0..<tileWidth {
                                    let value = edge[r * tileColumns + s]
                                    if first { target[r * n + s] = value } else { target[r * n + s] += value }
                                }
                            }
                        }
                    }
                    row += tileRows
                }
                depthStart += depth
            }
            column += width
        }
    }

    /// Copies B[0..<depth][0..<width] (leading dimension `n`) into strips of `tileColumns`
    /// columns, each strip k-major; columns past `width` are zero.
    @inlinable
    static func packB(
        _ b: UnsafePointer<Double>, n: Int, depth: Int, width: Int, tileColumns: Int,
        into packed: UnsafeMutablePointer<Double>
    ) {
        var out = packed
        var j = 0
        // Whole 16-column strips as two 8-lane copies per k (a memmove call each cost ~2 %).
        while tileColumns == 16 && width - j >= 16 {
            var source = UnsafeRawPointer(b + j)
            let rowBytes = n &* MemoryLayout<Double>.stride
            for _ in 0..<depth {
                let raw = UnsafeMutableRawPointer(out)
                raw.storeBytes(of: source.loadUnaligned(as: SIMD8<Double>.self), as: SIMD8<Double>.self)
                raw.storeBytes(
                    of: source.loadUnaligned(fromByteOffset: 64, as: SIMD8<Double>.self),
                    toByteOffset: 64, as: SIMD8<Double>.self)
                source += rowBytes
                out += 16
            }
            j += 16
        }
        while j < width {
            let count = min(tileColumns, width - j)
            for k in 0..<depth {
                let source = b + k * n + j
                out.update(from: source, count: count)
                if count < tileColumns {
                    (out + count).update(repeating: 0, count: tileColumns - count)
                }
                out += tileColumns
            }
            j += tileColumns
        }
    }

    /// Copies A[0..<height][0..<depth] (leading dimension `n`) k-major, `tileRows` values
    /// per k; rows past `height` are zero.
    @inlinable
    static func packA(
        _ a: UnsafePointer<Double>, n: Int, height: Int, depth: Int, tileRows: Int,
        into packed: UnsafeMutablePointer<Double>
    ) {
        // Full slivers k by k, reading the rows side by side and writing in order (the
        // r-by-r loop wrote with a stride and spent ~5 % of a 1024 product here).
        if height == 8 && tileRows == 8 {
            var source = a, out = packed
            for _ in 0..<depth {
                out[0] = source[0]; out[1] = source[n]; out[2] = source[2 &* n]
                out[3] = source[3 &* n]; out[4] = source[4 &* n]; out[5] = source[5 &* n]
                out[6] = source[6 &* n]; out[7] = source[7 &* n]
                source += 1
                out += 8
            }
            return
        }
        if height == 4 && tileRows == 4 {
            var source = a, out = packed
            for _ in 0..<depth {
                out[0] = source[0]; out[1] = source[n]; out[2] = source[2 &* n]
                out[3] = source[3 &* n]
                source += 1
                out += 4
            }
            return
        }
        if height < tileRows { packed.update(repeating: 0, count: depth * tileRows) }
        for r in 0..<height {
            let source = a + r * n
            for k in 0..<depth { packed[k * tileRows + r] = source[k] }
        }
    }

    /// c + x·y, fused exactly when the build's target has FMA (`KernelsSupport.h`).
    @inlinable @inline(__always)
    static func muladd(_ x: SIMD8<Double>, _ y: SIMD8<Double>, _ c: SIMD8<Double>) -> SIMD8<Double> {
        kernels_muladd8(x, y, c)
    }

    @inlinable @inline(__always)
    static func muladd(_ x: SIMD4<Double>, _ y: SIMD4<Double>, _ c: SIMD4<Double>) -> SIMD4<Double> {
        kernels_muladd4(x, y, c)
    }

    /// The wide register tile: C[8 × 16] += Apacked[depth × 8]ᵀ · Bstrip[depth × 16] (C taken
    /// as 0 without `load`).
    @inlinable @inline(__always)
    static func wideTile(
        a: UnsafePointer<Double>, b: UnsafePointer<Double>, depth: Int,
        c: UnsafeMutablePointer<Double>, ldc: Int, load loadC: Bool
    ) {
        typealias V = SIMD8<Double>
        let raw = UnsafeMutableRawPointer(c)
        let stride = ldc * MemoryLayout<Double>.stride
        @inline(__always) func load(_ r: Int, _ half: Int) -> V {
            loadC ? raw.loadUnaligned(fromByteOffset: r * stride + half * 64, as: V.self) : V()
        }
        @inline(__always) func store(_ v: V, _ r: Int, _ half: Int) {
            raw.storeBytes(of: v, toByteOffset: r * stride + half * 64, as: V.self)
        }
        var c00 = load(0, 0), c01 = load(0, 1), c10 = load(1, 0), c11 = load(1, 1)
        var c20 = load(2, 0), c21 = load(2, 1), c30 = load(3, 0), c31 = load(3, 1)
        var c40 = load(4, 0), c41 = load(4, 1), c50 = load(5, 0), c51 = load(5, 1)
        var c60 = load(6, 0), c61 = load(6, 1), c70 = load(7, 0), c71 = load(7, 1)
        let bRaw = UnsafeRawPointer(b)
        var pa = a
        var offset = 0
        for _ in 0..<depth {
            let b0 = bRaw.loadUnaligned(fromByteOffset: offset, as: V.self)
            let b1 = bRaw.loadUnaligned(fromByteOffset: offset + 64, as: V.self)
            var x = V(repeating: pa[0])
            c00 = muladd(x, b0, c00); c01 = muladd(x, b1, c01)
            x = V(repeating: pa[1])
            c10 = muladd(x, b0, c10); c11 = muladd(x, b1, c11)
            x = V(repeating: pa[2])
            c20 = muladd(x, b0, c20); c21 = muladd(x, b1, c21)
            x = V(repeating: pa[3])
            c30 = muladd(x, b0, c30); c31 = muladd(x, b1, c31)
            x = V(repeating: pa[4])
            c40 = muladd(x, b0, c40); c41 = muladd(x, b1, c41)
            x = V(repeating: pa[5])
            c50 = muladd(x, b0, c50); c51 = muladd(x, b1, c51)
            x = V(repeating: pa[6])
            c60 = muladd(x, b0, c60); c61 = muladd(x, b1, c61)
            x = V(repeating: pa[7])
            c70 = muladd(x, b0, c70); c71 = muladd(x, b1, c71)
            pa += 8
            offset += 128
        }
        store(c00, 0, 0); store(c01, 0, 1); store(c10, 1, 0); store(c11, 1, 1)
        store(c20, 2, 0); store(c21, 2, 1); store(c30, 3, 0); store(c31, 3, 1)
        store(c40, 4, 0); store(c41, 4, 1); store(c50, 5, 0); store(c51, 5, 1)
        store(c60, 6, 0); store(c61, 6, 1); store(c70, 7, 0); store(c71, 7, 1)
    }

    /// The narrow register tile: C[4 × 4] += Apacked[depth × 4]ᵀ · Bstrip[depth × 4] (C taken
    /// as 0 without `load`).
    @inlinable @inline(__always)
    static func narrowTile(
        a: UnsafePointer<Double>, b: UnsafePointer<Double>, depth: Int,
        c: UnsafeMutablePointer<Double>, ldc: Int, load loadC: Bool
    ) {
        typealias V = SIMD4<Double>
        let raw = UnsafeMutableRawPointer(c)
        let stride = ldc * MemoryLayout<Double>.stride
        @inline(__always) func load(_ r: Int) -> V {
            loadC ? raw.loadUnaligned(fromByteOffset: r * stride, as: V.self) : V()
        }
        @inline(__always) func store(_ v: V, _ r: Int) {
            raw.storeBytes(of: v, toByteOffset: r * stride, as: V.self)
        }
        var c0 = load(0), c1 = load(1), c2 = load(2), c3 = load(3)
        let bRaw = UnsafeRawPointer(b)
        var pa = a
        var offset = 0
        for _ in 0..<depth {
            let b0 = bRaw.loadUnaligned(fromByteOffset: offset, as: V.self)
            c0 = muladd(V(repeating: pa[0]), b0, c0)
            c1 = muladd(V(repeating: pa[1]), b0, c1)
            c2 = muladd(V(repeating: pa[2]), b0, c2)
            c3 = muladd(V(repeating: pa[3]), b0, c3)
            pa += 4
            offset += 32
        }
        store(c0, 0); store(c1, 1); store(c2, 2); store(c3, 3)
    }
}
