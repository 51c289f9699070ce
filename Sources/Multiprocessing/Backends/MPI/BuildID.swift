#if canImport(Glibc)
import Glibc
#endif

/// A fingerprint of this process's executable: its size and a 64-bit hash of its bytes.
/// Rank 0 sends it to every worker rank at start-up; a rank running another build refuses
/// (workers find functions by type name, which only works in the same binary: ARCHITECTURE.md §2).
struct BuildID: Equatable, Sendable, CustomStringConvertible {
    var hash: UInt64
    var size: UInt64

    /// This executable's fingerprint, computed once (a few ms per 100 MB). Zero if
    /// `/proc/self/exe` cannot be read.
    static let current = BuildID(path: "/proc/self/exe")

    var description: String {
        "\(String(hash, radix: 16)):\(size)"
    }

    init(hash: UInt64, size: UInt64) {
        self.hash = hash
        self.size = size
    }

    init(path: String) {
        self.init(hash: 0, size: 0)
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0, info.st_size > 0 else { return }
        let length = Int(info.st_size)
        guard let address = mmap(nil, length, PROT_READ, MAP_PRIVATE, fd, 0), address != MAP_FAILED else { return }
        defer { munmap(address, length) }
        self.init(hash: Self.hash(UnsafeRawBufferPointer(start: address, count: length)), size: UInt64(length))
    }

    /// xxHash64-style: four independent lanes over 32-byte stripes, then the tail.
    static func hash(_ bytes: UnsafeRawBufferPointer) -> UInt64 {
        let p1: UInt64 = 0x9E37_79B1_85EB_CA87, p2: UInt64 = 0xC2B2_AE3D_27D4_EB4F
        @inline(__always) func round(_ lane: UInt64, _ word: UInt64) -> UInt64 {
            let mixed = lane &+ word &* p2
            return ((mixed << 31) | (mixed >> 33)) &* p1
        }
        var lanes: (UInt64, UInt64, UInt64, UInt64) = (p1 &+ p2, p2, 0, 0 &- p1)
        var offset = 0
        while offset + 32 <= bytes.count {
            lanes.0 = round(lanes.0, bytes.loadUnaligned(fromByteOffset: offset, as: UInt64.self))
            lanes.1 = round(lanes.1, bytes.loadUnaligned(fromByteOffset: offset + 8, as: UInt64.self))
            lanes.2 = round(lanes.2, bytes.loadUnaligned(fromByteOffset: offset + 16, as: UInt64.self))
            lanes.3 = round(lanes.3, bytes.loadUnaligned(fromByteOffset: offset + 24, as: UInt64.self))
            offset += 32
        }
        var h = UInt64(bytes.count)
        for lane in [lanes.0, lanes.1, lanes.2, lanes.3] { h = round(h ^ round(0, lane), 0) &+ p1 }
        while offset < bytes.count {
            h = round(h, UInt64(bytes[offset]))
            offset += 1
        }
        h ^= h >> 33; h = h &* p2; h ^= h >> 29; h = h &* p1; h ^= h >> 32
        return h
    }
}
