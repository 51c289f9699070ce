import Foundation
import Kernels
import XCTest

final class PNGTests: XCTestCase {
    private func temporaryPath(_ name: String) -> String {
        FileManager.default.temporaryDirectory
            .appendingPathComponent("kernels-\(getpid())-\(name)").path
    }

    private func bigEndian(_ bytes: ArraySlice<UInt8>) -> UInt32 {
        bytes.reduce(0) { $0 << 8 | UInt32($1) }
    }

    func testChecksumKnownValues() {
        XCTAssertEqual(CRC32.checksum(Array("123456789".utf8)), 0xCBF4_3926)
        XCTAssertEqual(
            CRC32.checksum(Array("6789".utf8), continuing: CRC32.checksum(Array("12345".utf8))),
            0xCBF4_3926)
        XCTAssertEqual(Adler32.checksum(Array("Wikipedia".utf8)), 0x11E6_0398)
        XCTAssertEqual(
            Adler32.checksum([UInt8](repeating: 0xFF, count: 100_000)),
            { () -> UInt32 in // the definition, reducing every byte
                var a: UInt32 = 1, b: UInt32 = 0
                for _ in 0..<100_000 { a = (a + 255) % 65521; b = (b + a) % 65521 }
                return b << 16 | a
            }())
    }

    /// Writes an RGB image whose zlib stream needs several stored blocks, reads it back and
    /// checks the signature, IHDR, every chunk's CRC and the stored blocks' contents.
    func testWrittenFileParsesBack() throws {
        let width = 150, height = 170 // 170 · (1 + 450) bytes: two stored blocks
        let pixels = (0..<(width * height * 3)).map { UInt8(truncatingIfNeeded: $0 &* 7) }
        let path = temporaryPath("rgb.png")
        defer { try? FileManager.default.removeItem(atPath: path) }
        try PNGImage.write(width: width, height: height, pixels: pixels, to: path)
        let file = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))

        XCTAssertEqual(Array(file[0..<8]), [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A])
        var chunks: [(type: String, data: [UInt8])] = []
        var offset = 8
        while offset < file.count {
            let length = Int(bigEndian(file[offset..<(offset + 4)]))
            let typeAndData = Array(file[(offset + 4)..<(offset + 8 + length)])
            let crc = bigEndian(file[(offset + 8 + length)..<(offset + 12 + length)])
            XCTAssertEqual(CRC32.checksum(typeAndData), crc)
            chunks.append(
                (
                    String(decoding: typeAndData[0..<4], as: UTF8.self),
                    Array(typeAndData[4...])
                ))
            offset += 12 + length
        }
        XCTAssertEqual(offset, file.count)
        XCTAssertEqual(chunks.map(\.type), ["IHDR", "IDAT", "IEND"])
        let header = chunks[0].data
        XCTAssertEqual(bigEndian(header[0..<4]), UInt32(width))
        XCTAssertEqual(bigEndian(header[4..<8]), UInt32(height))
        XCTAssertEqual(Array(header[8...]), [8, 2, 0, 0, 0])

        // The zlib stream: header, stored blocks, Adler-32 of the inflated bytes.
        let stream = chunks[1].data
        XCTAssertEqual((UInt16(stream[0]) << 8 | UInt16(stream[1])) % 31, 0)
        var inflated: [UInt8] = []
        var position = 2
        var blocks = 0
        while true {
            let final = stream[position] & 1 == 1
            XCTAssertEqual(stream[position] >> 1 & 3, 0, "stored block")
            let len = Int(stream[position + 1]) | Int(stream[position + 2]) << 8
            let nlen = Int(stream[position + 3]) | Int(stream[position + 4]) << 8
            XCTAssertEqual(len ^ nlen, 0xFFFF)
            inflated += stream[(position + 5)..<(position + 5 + len)]
            position += 5 + len
            blocks += 1
            if final { break }
        }
        XCTAssertEqual(blocks, 2)
        XCTAssertEqual(bigEndian(stream[position..<(position + 4)]), Adler32.checksum(inflated))
        XCTAssertEqual(position + 4, stream.count)
        XCTAssertEqual(inflated.count, height * (1 + 3 * width))
        let rowBytes = 3 * width
        for row in 0..<height {
            XCTAssertEqual(inflated[row * (rowBytes + 1)], 0, "filter byte")
            XCTAssertEqual(
                Array(inflated[(row * (rowBytes + 1) + 1)...].prefix(rowBytes)),
                Array(pixels[(row * rowBytes)..<((row + 1) * rowBytes)]))
        }
    }

    /// An independent decoder: python3's zlib inflates the IDAT and checks every CRC.
    func testPythonZlibInflatesToTheRightSize() throws {
        let python = "/usr/bin/python3"
        try XCTSkipUnless(FileManager.default.isExecutableFile(atPath: python), "no python3")
        let m = Mandelbrot(width: 64, height: 48, maxIterations: 64)
        let path = temporaryPath("gray.png")
        defer { try? FileManager.default.removeItem(atPath: path) }
        let gray = m.serial().map { UInt8(min(255, Int($0) * 4)) }
        try PNGImage.write(width: 64, height: 48, pixels: gray, to: path)
        let script = """
            import sys, struct, zlib
            d = open(sys.argv[1], 'rb').read()
            assert d[:8] == b'\\x89PNG\\r\\n\\x1a\\n'
            i, idat = 8, b''
            while i < len(d):
                n, = struct.unpack('>I', d[i:i+4]); t = d[i+4:i+8]
                assert zlib.crc32(d[i+4:i+8+n]) == struct.unpack('>I', d[i+8+n:i+12+n])[0]
                if t == b'IHDR': w, h = struct.unpack('>II', d[i+8:i+16])
                if t == b'IDAT': idat += d[i+8:i+8+n]
                i += 12 + n
            print(w, h, len(zlib.decompress(idat)))
            """
        let process = Process()
        process.executableURL = URL(fileURLWithPath: python)
        process.arguments = ["-c", script, path]
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        let output = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        XCTAssertEqual(process.terminationStatus, 0)
        XCTAssertEqual(String(decoding: output, as: UTF8.self), "64 48 \(48 * 65)\n")
    }

    func testUnwritablePathThrowsTypedError() {
        let path = "/nonexistent-directory-\(getpid())/image.png"
        XCTAssertThrowsError(try PNGImage.write(width: 1, height: 1, pixels: [0], to: path)) {
            let error = $0 as? PNGWriteError
            XCTAssertEqual(error?.call, "open")
            XCTAssertEqual(error?.errno, ENOENT)
            XCTAssertEqual(error?.path, path)
        }
    }

    func testColorMapPaintsTheSetBlack() {
        XCTAssertTrue(MandelbrotColorMap.color(256, maxIterations: 256) == (0, 0, 0))
        let rgb = MandelbrotColorMap.rgb([0, 128, 256], maxIterations: 256)
        XCTAssertEqual(rgb.count, 9)
        XCTAssertEqual(Array(rgb[6...]), [0, 0, 0])
        XCTAssertNotEqual(Array(rgb[3..<6]), [0, 0, 0])
    }
}
