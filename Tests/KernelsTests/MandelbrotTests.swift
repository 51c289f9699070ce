import XCTest

@testable import Kernels

final class MandelbrotTests: XCTestCase {
    /// The definition, one pixel at a time.
    private func scalarCounts(_ m: Mandelbrot) -> [UInt16] {
        var counts: [UInt16] = []
        for py in 0..<m.height {
            let ci = -1.2 + Double(py) * (2.4 / Double(m.height))
            for px in 0..<m.width {
                let cr = -2.0 + Double(px) * (3.0 / Double(m.width))
                var zr = 0.0, zi = 0.0, n = 0
                while n < m.maxIterations {
                    let zr2 = zr * zr, zi2 = zi * zi
                    if zr2 + zi2 > 4.0 { break }
                    zi = 2.0 * zr * zi + ci
                    zr = zr2 - zi2 + cr
                    n += 1
                }
                counts.append(UInt16(n))
            }
        }
        return counts
    }

    func testReferenceChecksum400x300() {
        let counts = Mandelbrot(width: 400, height: 300, maxIterations: 256).serial()
        XCTAssertEqual(counts.count, 400 * 300)
        XCTAssertEqual(Mandelbrot.checksum(counts), 7_077_920)
    }

    /// `render(_:into:)` writes exactly what `callAsFunction` returns, into a buffer used again
    /// and again (what was there before does not show).
    func testRenderIntoAKeptBufferMatchesTheArrays() {
        let m = Mandelbrot(width: 37, height: 23, maxIterations: 300)
        let whole = m.serial()
        XCTAssertEqual(Mandelbrot.checksum(whole), Mandelbrot.checksum(scalarCounts(m)))
        let kept = UnsafeMutableBufferPointer<UInt16>.allocate(capacity: whole.count)
        defer { kept.deallocate() }
        for rows in [0..<23, 0..<1, 5..<14, 19..<23, 3..<3] {
            kept.initialize(repeating: 0xBEEF)
            let room = UnsafeMutableBufferPointer(rebasing: kept[..<(rows.count * m.width)])
            m.render(rows, into: room)
            XCTAssertEqual(Array(room), m(rows), "rows \(rows)")
            XCTAssertTrue(kept[(rows.count * m.width)...].allSatisfy { $0 == 0xBEEF }, "nothing past the rows, \(rows)")
        }
    }

    func testRowChunksConcatenateToTheWholeImage() {
        let m = Mandelbrot(width: 120, height: 90, maxIterations: 256)
        let whole = m.serial()
        for count in [2, 7, 90] {
            XCTAssertEqual(Chunks.split(0..<m.height, into: count).flatMap { m($0) }, whole)
        }
    }

    func testEveryPixelMatchesTheScalarDefinition() {
        // 37 is not a multiple of the eight SIMD lanes.
        let m = Mandelbrot(width: 37, height: 23, maxIterations: 100)
        XCTAssertEqual(m.serial(), scalarCounts(m))
    }

    func testEdgesOfTheGroupsAndOfTheEscapeTestMatchTheScalarDefinition() {
        // 32 pixels run at once and the all-escaped test runs after each block of steps (two):
        // widths around 32 and iteration limits that are not multiples of the block (0
        // included) must not change a count.
        // With and without the five-row tiles (11 rows: two of them and a single row, or two
        // four-row tiles and three single rows).
        for (width, limit) in [(1, 5), (8, 3), (31, 1), (32, 0), (33, 7), (65, 257), (40, 4)] {
            let m = Mandelbrot(width: width, height: 11, maxIterations: limit)
            let expected = scalarCounts(m)
            XCTAssertEqual(m.serial(), expected, "\(width) wide, \(limit) iterations")
            for fiveRowTiles in [false, true] {
                let counts = [UInt16](unsafeUninitializedCapacity: width * 11) { buffer, initialized in
                    m.render(0..<11, into: buffer, fiveRowTiles: fiveRowTiles)
                    initialized = buffer.count
                }
                XCTAssertEqual(counts, expected, "\(width) wide, \(limit) iterations, five-row tiles: \(fiveRowTiles)")
            }
        }
    }

    func testRowRangesAroundTheFourAndFiveRowTilesMatchTheScalarDefinition() {
        // Five rows run at once in tiles of 8 × 5 pixels (AVX-512 builds), then four in tiles
        // of 8 × 4, the rows left over one at a time: with and without the five-row tiles
        // (whatever this build's default), every start row (tiles then begin at other rows of
        // the image) and every count from 0 to 10 (whole tiles of each kind, tiles and
        // leftover rows, leftover rows only), at widths that are not multiples of the eight
        // lanes, must give the rows of the scalar image.
        for width in [3, 13, 40] {
            let m = Mandelbrot(width: width, height: 15, maxIterations: 61)
            let whole = scalarCounts(m)
            for fiveRowTiles in [false, true] {
                for start in 0...4 {
                    for count in 0...10 {
                        let rows = start..<(start + count)
                        let counts = [UInt16](unsafeUninitializedCapacity: count * width) { buffer, initialized in
                            m.render(rows, into: buffer, fiveRowTiles: fiveRowTiles)
                            initialized = buffer.count
                        }
                        XCTAssertEqual(
                            counts, Array(whole[(start * width)..<((start + count) * width)]),
                            "\(width) wide, rows \(rows), five-row tiles: \(fiveRowTiles)")
                    }
                }
            }
        }
    }

    func testImageOverTheOneMebibytePrefaultMatchesTheScalarDefinition() {
        // From 1 MiB of counts the image's fresh pages are mapped before the stores
        // (kernels_prefault_for_writing): 1100 × 500 counts are 1.05 MiB, twice in a row
        // (the second image may reuse the first one's pages, then nothing is done).
        let m = Mandelbrot(width: 1100, height: 500, maxIterations: 6)
        let expected = scalarCounts(m)
        XCTAssertEqual(m.serial(), expected)
        XCTAssertEqual(m.serial(), expected)
    }

    func testPixelsWithAZeroOrTinyPartOfCMatchTheScalarDefinition() {
        // The new zi is one rounding of 2·(zr·zi) + ci (fused where the target has FMA), the
        // definition's (2·zr)·zi + ci: the same bits unless zr·zi underflows, which the
        // grid's c rules out (Mandelbrot.counts). The pixels that come closest: c_r = 0
        // (3 and 12 wide), c_i = 0 (2 and 10 high), and c_r or c_i = ±2⁻⁵², tiny but not 0
        // (147 wide: −2 + 98·(3/147); 74 high: −1.2 + 37·(2.4/74)), on long orbits.
        for (width, height, limit) in [(3, 2, 20_000), (12, 10, 20_000), (147, 74, 1_000)] {
            let m = Mandelbrot(width: width, height: height, maxIterations: limit)
            let expected = scalarCounts(m)
            for fiveRowTiles in [false, true] {
                let counts = [UInt16](unsafeUninitializedCapacity: width * height) { buffer, initialized in
                    m.render(0..<height, into: buffer, fiveRowTiles: fiveRowTiles)
                    initialized = buffer.count
                }
                XCTAssertEqual(counts, expected, "\(width) × \(height), five-row tiles: \(fiveRowTiles)")
            }
        }
    }

    func testCountsAbove32767MatchTheScalarDefinition() {
        // The SIMD counts are 16-bit lanes holding the count's bit pattern: the pixels inside
        // the set (c = 0 ± 0.4i and −1/3 ± 0.4i) count up to the limit, past Int16.max, and
        // must still come out as the scalar counts.
        let m = Mandelbrot(width: 9, height: 3, maxIterations: 40_000)
        let counts = m.serial()
        XCTAssertEqual(counts, scalarCounts(m))
        XCTAssertTrue(counts.contains(40_000), "no pixel reached the limit: \(counts)")
    }
}
