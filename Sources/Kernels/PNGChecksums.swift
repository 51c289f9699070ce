/// CRC-32 (ISO 3309, polynomial 0xEDB88320 reflected), the checksum of every PNG chunk.
public enum CRC32 {
    @usableFromInline
    static let table: [UInt32] = (0..<256).map { byte in
        var c = UInt32(byte)
        for _ in 0..<8 { c = c & 1 != 0 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1 }
        return c
    }

    /// The CRC of `bytes`, continuing from `crc` (the CRC of the bytes before them; 0 to
    /// start). `CRC32.checksum(Array("123456789".utf8))` is 0xCBF43926.
    ///
    /// - Complexity: O(`bytes.count`).
    @inlinable
    public static func checksum(_ bytes: some Sequence<UInt8>, continuing crc: UInt32 = 0)
        -> UInt32
    {
        var c = ~crc
        table.withUnsafeBufferPointer { table in
            for byte in bytes { c = table[Int((c ^ UInt32(byte)) & 0xFF)] ^ (c >> 8) }
        }
        return ~c
    }
}

/// Adler-32 (RFC 1950), the checksum that ends a zlib stream.
public enum Adler32 {
    /// The Adler-32 of `bytes`. `Adler32.checksum(Array("Wikipedia".utf8))` is 0x11E60398.
    ///
    /// - Complexity: O(`bytes.count`).
    public static func checksum(_ bytes: [UInt8]) -> UInt32 {
        let modulus: UInt32 = 65521
        // 5552 is the longest run whose sums cannot overflow 32 bits before reducing.
        var a: UInt32 = 1
        var b: UInt32 = 0
        bytes.withUnsafeBufferPointer { bytes in
            var start = 0
            while start < bytes.count {
                let end = min(start + 5552, bytes.count)
                for i in start..<end {
                    a &+= UInt32(bytes[i])
                    b &+= a
                }
                a %= modulus
                b %= modulus
                start = end
            }
        }
        return b << 16 | a
    }
}
