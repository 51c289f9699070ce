/// The blocked inner loops of ``MatrixMultiply``: C += A·B on raw row-major storage.
///
/// Goto/BLIS layout: a `depth × width` panel of B is packed into 16-column strips (so the
/// register tile reads it sequentially), an 8-row sliver of A is packed k-major, and an
/// 8 × 16 tile of C lives in sixteen 8-lane registers while the kernel runs down the depth.
/// The packed B panel (256 × 512 doubles, 1 MiB) sits in L2, one strip (32 KiB) in L1.
public enum MatrixKernel {
    /// Rows of the register tile.
    public static let tileRows = 8
    /// Columns of the register tile (two 8-lane vectors).
    public static let tileColumns = 16
    /// Depth (k) of a packed panel.
    public static let panelDepth = 256
    /// Width (j) of a packed panel, a multiple of `tileColumns`.
    public static let panelWidth = 512

    /// C[rows × n] += A[rows × n] · B[n × n], all row-major with leading dimension `n`.
    ///
    /// - Complexity: O(`rows · n²`) time, O(`panelDepth · panelWidth`) scratch.
    @inlinable
    public static func multiplyAdd(
        a: UnsafePointer<Double>, b: UnsafePointer<Double>, c: UnsafeMutablePointer<Double>,
        rows: Int, n: Int
    ) {
        precondition(rows >= 0 && n >= 0)
        let packedB = UnsafeMutablePointer<Double>.allocate(capacity: panelDepth * panelWidth)
        let packedA = UnsafeMutablePointer<Double>.allocate(capacity: panelDepth * tileRows)
        let edge = UnsafeMutablePointer<Double>.allocate(capacity: tileRows * tileColumns)
        defer {
            packedB.deallocate()
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
                packB(b + depthStart * n + column, n: n, depth: depth, width: width, into: packedB)
                var row = 0
                while row < rows {
                    let height = min(tileRows, rows - row)
                    packA(a + row * n + depthStart, n: n, height: height, depth: depth,
                          into: packedA)
                    for strip in 0..<strips {
                        let j = strip * tileColumns
                        let tileWidth = min(tileColumns, width - j)
                        let target = c + row * n + column + j
                        let panel = UnsafePointer(packedB + strip * depth * tileColumns)
                        if height == tileRows && tileWidth == tileColumns {
                            tile(a: packedA, b: panel, depth: depth, c: target, ldc: n)
                        } else {
                            edge.initialize(repeating: 0, count: tileRows * tileColumns)
                            tile(a: packedA, b: panel, depth: depth, c: edge, ldc: tileColumns)
                            for r in 0..<height {
                                for s in 0..<tileWidth {
                                    target[r * n + s] += edge[r * tileColumns + s]
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
        _ b: UnsafePointer<Double>, n: Int, depth: Int, width: Int,
        into packed: UnsafeMutablePointer<Double>
    ) {
        var out = packed
        var j = 0
        while j < width {
            let count = min(tileColumns, width - j)
            for k in 0..<depth {
                let source = b + k * n + j
                if count == tileColumns {
                    out.update(from: source, count: tileColumns)
                } else {
                    out.update(from: source, count: count)
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
        _ a: UnsafePointer<Double>, n: Int, height: Int, depth: Int,
        into packed: UnsafeMutablePointer<Double>
    ) {
        if height < tileRows { packed.update(repeating: 0, count: depth * tileRows) }
        for r in 0..<height {
            let source = a + r * n
            for k in 0..<depth { packed[k * tileRows + r] = source[k] }
        }
    }

    /// The register tile: C[8 × 16] += Apacked[depth × 8]ᵀ · Bstrip[depth × 16].
    @inlinable @inline(__always)
    static func tile(
        a: UnsafePointer<Double>, b: UnsafePointer<Double>, depth: Int,
        c: UnsafeMutablePointer<Double>, ldc: Int
    ) {
        typealias V = SIMD8<Double>
        let raw = UnsafeMutableRawPointer(c)
        let stride = ldc * MemoryLayout<Double>.stride
        @inline(__always) func load(_ r: Int, _ half: Int) -> V {
            raw.loadUnaligned(fromByteOffset: r * stride + half * 64, as: V.self)
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
            c00 = c00.addingProduct(x, b0); c01 = c01.addingProduct(x, b1)
            x = V(repeating: pa[1])
            c10 = c10.addingProduct(x, b0); c11 = c11.addingProduct(x, b1)
            x = V(repeating: pa[2])
            c20 = c20.addingProduct(x, b0); c21 = c21.addingProduct(x, b1)
            x = V(repeating: pa[3])
            c30 = c30.addingProduct(x, b0); c31 = c31.addingProduct(x, b1)
            x = V(repeating: pa[4])
            c40 = c40.addingProduct(x, b0); c41 = c41.addingProduct(x, b1)
            x = V(repeating: pa[5])
            c50 = c50.addingProduct(x, b0); c51 = c51.addingProduct(x, b1)
            x = V(repeating: pa[6])
            c60 = c60.addingProduct(x, b0); c61 = c61.addingProduct(x, b1)
            x = V(repeating: pa[7])
            c70 = c70.addingProduct(x, b0); c71 = c71.addingProduct(x, b1)
            pa += 8
            offset += 128
        }
        store(c00, 0, 0); store(c01, 0, 1); store(c10, 1, 0); store(c11, 1, 1)
        store(c20, 2, 0); store(c21, 2, 1); store(c30, 3, 0); store(c31, 3, 1)
        store(c40, 4, 0); store(c41, 4, 1); store(c50, 5, 0); store(c51, 5, 1)
        store(c60, 6, 0); store(c61, 6, 1); store(c70, 7, 0); store(c71, 7, 1)
    }
}
