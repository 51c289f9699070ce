import Kernels
import XCTest

final class MatrixMultiplyTests: XCTestCase {
    private func naiveProduct(_ p: MatrixMultiply) -> [Double] {
        let n = p.n
        var c = [Double](repeating: 0, count: n * n)
        for i in 0..<n {
            for k in 0..<n {
                let a = p.a[i * n + k]
                for j in 0..<n { c[i * n + j] += a * p.b[k * n + j] }
            }
        }
        return c
    }

    func testReferenceChecksums256() {
        let c = MatrixMultiply.reference(n: 256).serial()
        let (sum, weighted) = MatrixMultiply.checksums(c, n: 256)
        XCTAssertEqual(sum, 67_109_448)
        XCTAssertEqual(weighted, 25_738_373_806)
    }

    func testGenerators() {
        let a = MatrixMultiply.referenceA(n: 4), b = MatrixMultiply.referenceB(n: 4)
        XCTAssertEqual(a[0], -3) // (0) mod 11 − 3
        XCTAssertEqual(a[1 * 4 + 2], 3) // (3 + 14) mod 11 − 3 = 6 − 3
        XCTAssertEqual(b[2 * 4 + 3], 2) // (10 + 9) mod 13 − 4 = 6 − 4
    }

    func testRowChunksConcatenateToTheWholeProduct() {
        let p = MatrixMultiply.reference(n: 64)
        let whole = p.serial()
        for count in [2, 3, 5, 64] {
            XCTAssertEqual(Chunks.split(0..<p.n, into: count).flatMap { p($0) }, whole)
        }
    }

    func testEdgeTilesAndSeveralPanelsMatchTheNaiveProduct() {
        // 37: partial tiles in both directions; 300: two depth panels and a partial strip.
        for n in [1, 37, 300] {
            let p = MatrixMultiply.reference(n: n)
            XCTAssertEqual(p.serial(), naiveProduct(p), "n = \(n)")
            if n > 10 { XCTAssertEqual(p(5..<14), Array(naiveProduct(p)[(5 * n)..<(14 * n)])) }
        }
    }

    /// C = A·B through `MatrixKernel` with the given tile and panel sizes: accumulated into
    /// zeros, or with `overwrite` written over NaNs (every entry must be stored).
    private func product(
        _ p: MatrixMultiply, rows: Range<Int>, path: MatrixKernel.Path,
        panelDepth: Int = MatrixKernel.panelDepth,
        panelWidth: Int = MatrixKernel.panelWidth,
        overwrite: Bool = false
    ) -> [Double] {
        let n = p.n
        var c = [Double](repeating: overwrite ? .nan : 0, count: rows.count * n)
        p.a.withUnsafeBufferPointer { a in
            p.b.withUnsafeBufferPointer { b in
                c.withUnsafeMutableBufferPointer { c in
                    MatrixKernel.multiplyAdd(
                        a: a.baseAddress! + rows.lowerBound * n, b: b.baseAddress!,
                        c: c.baseAddress!, rows: rows.count, n: n, path: path,
                        panelDepth: panelDepth, panelWidth: panelWidth, overwrite: overwrite)
                }
            }
        }
        return c
    }

    func testBothTilesGiveTheReferenceChecksums() {
        // The build picks one tile (wide for AVX-512 targets, narrow otherwise); both must give
        // the reference product in every build, bit for bit.
        let p = MatrixMultiply.reference(n: 256)
        for path in MatrixKernel.Path.allCases {
            let (sum, weighted) = MatrixMultiply.checksums(product(p, rows: 0..<256, path: path), n: 256)
            XCTAssertEqual(sum, 67_109_448, "\(path)")
            XCTAssertEqual(weighted, 25_738_373_806, "\(path)")
        }
        XCTAssertEqual(MatrixKernel.Path(vectorBits: 512), .wide)
        XCTAssertEqual(MatrixKernel.Path(vectorBits: 256), .narrow)
        XCTAssertEqual(MatrixKernel.Path(vectorBits: 128), .narrow)
    }

    func testBothTilesAcrossPanelAndTileEdgesMatchTheNaiveProduct() {
        // Small panels (depth 24, width 40: neither a multiple of the 16-column strip) on
        // n = 70 cross every edge: partial tiles, partial strips, several panels each way.
        let p = MatrixMultiply.reference(n: 70)
        let naive = naiveProduct(p)
        for path in MatrixKernel.Path.allCases {
            for (depth, width) in [(24, 40), (7, 16), (256, 1024)] {
                for overwrite in [false, true] {
                    let label = "\(path) panels \(depth)×\(width) overwrite \(overwrite)"
                    XCTAssertEqual(
                        product(
                            p, rows: 0..<70, path: path, panelDepth: depth,
                            panelWidth: width, overwrite: overwrite), naive, label)
                    XCTAssertEqual(
                        product(
                            p, rows: 9..<31, path: path, panelDepth: depth,
                            panelWidth: width, overwrite: overwrite),
                        Array(naive[(9 * 70)..<(31 * 70)]), "\(label) rows 9..<31")
                }
            }
        }
    }
}
