#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// `write(2)`, named apart from ``PNGImage/write(to:)``.
private let systemWrite: @Sendable (Int32, UnsafeRawPointer?, Int) -> Int = write

/// An 8-bit grayscale or RGB image in PNG form: signature, IHDR, one IDAT holding a zlib
/// stream of stored (uncompressed) deflate blocks, IEND. Every scanline uses filter 0.
/// Decoders read it like any PNG; it is about the size of the raw pixels.
public struct PNGImage: Sendable, Equatable {
    /// The PNG colour types this writer produces.
    public enum ColorType: UInt8, Sendable {
        case grayscale = 0
        case rgb = 2

        /// Bytes per pixel.
        public var channels: Int { self == .grayscale ? 1 : 3 }
    }

    public let width: Int
    public let height: Int
    public let colorType: ColorType
    /// Row-major samples, `channels` bytes per pixel.
    public let pixels: [UInt8]

    /// An image of `width × height` pixels; `pixels` holds one byte per pixel (grayscale) or
    /// three (RGB), row-major.
    public init(width: Int, height: Int, colorType: ColorType, pixels: [UInt8]) {
        precondition(
            width > 0 && height > 0 && width <= Int(Int32.max) && height <= Int(Int32.max),
            "PNGImage: bad size \(width)×\(height)")
        precondition(
            pixels.count == width * height * colorType.channels,
            "PNGImage: \(pixels.count) bytes for \(width)×\(height) \(colorType)")
        self.width = width
        self.height = height
        self.colorType = colorType
        self.pixels = pixels
    }

    /// The PNG file's bytes.
    ///
    /// - Complexity: O(`pixels.count`).
    public func encoded() -> [UInt8] {
        var file: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]
        var header: [UInt8] = []
        Self.appendBigEndian(UInt32(width), to: &header)
        Self.appendBigEndian(UInt32(height), to: &header)
        header += [8, colorType.rawValue, 0, 0, 0] // depth, colour type, deflate, filter, no interlace
        Self.appendChunk("IHDR", header, to: &file)
        Self.appendChunk("IDAT", Self.zlibStored(scanlines()), to: &file)
        Self.appendChunk("IEND", [], to: &file)
        return file
    }

    /// Writes the encoded image to `path`, replacing any file there.
    ///
    /// - Throws: ``PNGWriteError`` naming the failing call and its `errno`.
    public func write(to path: String) throws(PNGWriteError) {
        let bytes = encoded()
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw PNGWriteError(call: "open", errno: errno, path: path) }
        var written = 0
        while written < bytes.count {
            let result = bytes.withUnsafeBytes { raw in
                systemWrite(fd, raw.baseAddress! + written, raw.count - written)
            }
            if result < 0 {
                let code = errno
                if code == EINTR { continue }
                _ = close(fd)
                throw PNGWriteError(call: "write", errno: code, path: path)
            }
            written += result
        }
        // close's EINTR is not retried: the descriptor is gone either way.
        if close(fd) != 0, errno != EINTR {
            throw PNGWriteError(call: "close", errno: errno, path: path)
        }
    }

    /// Writes a `width × height` image to `path`: grayscale if `pixels` holds one byte per
    /// pixel, RGB if three.
    ///
    /// - Throws: ``PNGWriteError`` on an I/O failure.
    public static func write(width: Int, height: Int, pixels: [UInt8], to path: String)
        throws(PNGWriteError)
    {
        let colorType: ColorType = pixels.count == width * height * 3 ? .rgb : .grayscale
        try PNGImage(width: width, height: height, colorType: colorType, pixels: pixels)
            .write(to: path)
    }

    /// Each row preceded by its filter-type byte (0, none).
    private func scanlines() -> [UInt8] {
        let rowBytes = width * colorType.channels
        var raw: [UInt8] = []
        raw.reserveCapacity(height * (rowBytes + 1))
        for row in 0..<height {
            raw.append(0)
            raw.append(contentsOf: pixels[(row * rowBytes)..<((row + 1) * rowBytes)])
        }
        return raw
    }

    /// A zlib stream (RFC 1950) of stored deflate blocks (RFC 1951 §3.2.4) holding `data`.
    static func zlibStored(_ data: [UInt8]) -> [UInt8] {
        let blockLimit = 65535
        var stream: [UInt8] = [0x78, 0x01] // deflate, 32 KiB window; check bits make 0x7801 % 31 == 0
        stream.reserveCapacity(data.count + data.count / blockLimit * 5 + 11)
        var start = 0
        repeat {
            let length = min(blockLimit, data.count - start)
            let final = start + length == data.count
            stream.append(final ? 1 : 0) // BFINAL, BTYPE = 00 (stored)
            let len = UInt16(length)
            stream += [UInt8(len & 0xFF), UInt8(len >> 8), UInt8(~len & 0xFF), UInt8(~len >> 8)]
            stream.append(contentsOf: data[start..<(start + length)])
            start += length
        } while start < data.count
        appendBigEndian(Adler32.checksum(data), to: &stream)
        return stream
    }

    private static func appendChunk(_ type: String, _ data: [UInt8], to file: inout [UInt8]) {
        let typeBytes = Array(type.utf8)
        appendBigEndian(UInt32(data.count), to: &file)
        file += typeBytes
        file += data
        appendBigEndian(CRC32.checksum(data, continuing: CRC32.checksum(typeBytes)), to: &file)
    }

    private static func appendBigEndian(_ value: UInt32, to bytes: inout [UInt8]) {
        bytes += [
            UInt8(value >> 24), UInt8((value >> 16) & 0xFF),
            UInt8((value >> 8) & 0xFF), UInt8(value & 0xFF),
        ]
    }
}

/// A PNG file could not be written: the system call that failed, its `errno`, the path.
public struct PNGWriteError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The failing call: `open`, `write` or `close`.
    public var call: String
    public var errno: Int32
    public var path: String

    public var description: String {
        "PNG write to \(path) failed in \(call): \(String(cString: strerror(errno))) (errno \(errno))"
    }
}
