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
        XCTAssertEqual(a[0], -3)          // (0) mod 11 − 3
        XCTAssertEqual(a[1 * 4 + 2], 3)   // (3 + 14) mod 11 − 3 = 6 − 3
        XCTAssertEqual(b[2 * 4 + 3], 2)   // (10 + 9) mod 13 − 4 = 6 − 4
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
}
