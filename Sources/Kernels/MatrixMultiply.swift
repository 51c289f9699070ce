import KernelsSupport

/// Dense float64 matrix product C = A·B of two n × n row-major matrices
/// (`Benchmarks/README.md`), cache-blocked with a vectorised register tile.
///
/// A chunk is a range of rows of C; its result is those rows, row-major. The value carries A
/// and B, so a pool ships them once with the function, not with every chunk.
///
/// The inner kernel multiply-adds, fused when the build's target has FMA (``MatrixKernel``).
/// For the reference matrices (small integers) every product and partial sum is exact, so C
/// is exact, whatever the order and the fusing, and the checksums are bit-exact:
/// ΣC = 4 294 950 921 and Σ C[i][j]·(i + 2j + 1) = 6 594 902 263 792 at n = 1024;
/// 67 109 448 and 25 738 373 806 at n = 256.
public struct MatrixMultiply: Codable, Sendable {
    /// The order of the matrices.
    public let n: Int
    /// The left factor, row-major, `n · n` values.
    public let a: [Double]
    /// The right factor, row-major, `n · n` values.
    public let b: [Double]

    public init(n: Int, a: [Double], b: [Double]) {
        precondition(n >= 0, "MatrixMultiply: negative order \(n)")
        precondition(
            a.count == n * n && b.count == n * n,
            "MatrixMultiply: expected \(n * n) values, got \(a.count) and \(b.count)")
        self.n = n
        self.a = a
        self.b = b
    }

    /// The reference problem of order `n`: A[i][j] = ((3i + 7j) mod 11) − 3 and
    /// B[i][j] = ((5i + 3j) mod 13) − 4.
    ///
    /// - Complexity: O(n²).
    public static func reference(n: Int) -> MatrixMultiply {
        MatrixMultiply(n: n, a: referenceA(n: n), b: referenceB(n: n))
    }

    /// A[i][j] = ((3i + 7j) mod 11) − 3, row-major.
    ///
    /// - Complexity: O(n²).
    public static func referenceA(n: Int) -> [Double] {
        generate(n: n) { i, j in Double((3 * i + 7 * j) % 11) - 3 }
    }

    /// B[i][j] = ((5i + 3j) mod 13) − 4, row-major.
    ///
    /// - Complexity: O(n²).
    public static func referenceB(n: Int) -> [Double] {
        generate(n: n) { i, j in Double((5 * i + 3 * j) % 13) - 4 }
    }

    private static func generate(n: Int, _ entry: (Int, Int) -> Double) -> [Double] {
        var values: [Double] = []
        values.reserveCapacity(n * n)
        for i in 0..<n { for j in 0..<n { values.append(entry(i, j)) } }
        return values
    }

    /// Rows `rows` of C = A·B, row-major, `rows.count × n` values.
    ///
    /// - Complexity: O(`rows.count · n²`) time, O(`MatrixKernel.panelDepth · panelWidth`) scratch.
    @inlinable
    public func callAsFunction(_ rows: Range<Int>) -> [Double] {
        precondition(
            rows.lowerBound >= 0 && rows.upperBound <= n,
            "MatrixMultiply: rows \(rows) outside 0..<\(n)")
        let n = self.n
        // Written, not accumulated: no pass to zero it first.
        return [Double](unsafeUninitializedCapacity: rows.count * n) { c, count in
            // In huge pages where the system gives them (a large product's first touch, else
            // page faults by the thousand); when it does not, normal pages, only slower.
            _ = kernels_advise_huge_pages(c.baseAddress, c.count * MemoryLayout<Double>.stride)
            a.withUnsafeBufferPointer { a in
                b.withUnsafeBufferPointer { b in
                    guard rows.count > 0, n > 0 else { return }
                    MatrixKernel.multiplyAdd(
                        a: a.baseAddress! + rows.lowerBound * n, b: b.baseAddress!,
                        c: c.baseAddress!, rows: rows.count, n: n, overwrite: true)
                }
            }
            count = rows.count * n
        }
    }

    /// The whole product C = A·B, row-major.
    ///
    /// - Complexity: O(n³).
    public func serial() -> [Double] { self(0..<n) }

    /// The reference checksums of a product `c` of order `n`: ΣC and Σ C[i][j]·(i + 2j + 1).
    ///
    /// - Complexity: O(n²).
    public static func checksums(_ c: [Double], n: Int) -> (sum: Double, weighted: Double) {
        precondition(c.count == n * n, "MatrixMultiply.checksums: expected \(n * n) values")
        var sum = 0.0
        var weighted = 0.0
        for i in 0..<n {
            for j in 0..<n {
                let value = c[i * n + j]
                sum += value
                weighted += value * Double(i + 2 * j + 1)
            }
        }
        return (sum, weighted)
    }
}
