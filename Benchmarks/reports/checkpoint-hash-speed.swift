// The journal's checksum (`stripeHash`) against a multiply-free one (two-level sums of 64-bit
// words in eight lanes, Fletcher-like) and a plain read of the bytes, in GB/s, on 1, 2 and
// 16 MiB (checkpoint-overhead.md, "Session 11"):
//
//   swiftc -O -parse-as-library -o hash-speed Benchmarks/reports/checkpoint-hash-speed.swift \
//       Sources/Multiprocessing/Checkpoint/StripeHash.swift
//   nice -n -10 ./hash-speed
import Glibc

func now() -> Double { var ts = timespec(); clock_gettime(CLOCK_MONOTONIC, &ts); return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9 }

/// Candidate: sums of 64-bit words, two-level (Fletcher-like), 8 independent lanes; no multiplies.
@inline(never)
func wordSum(_ raw: UnsafeRawBufferPointer) -> UInt64 {
    var a: (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64) = (1, 2, 3, 4, 5, 6, 7, 8)
    var b: (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0, 0, 0, 0, 0)
    var p = raw.baseAddress!
    for _ in 0..<(raw.count / 64) {
        a.0 &+= p.loadUnaligned(as: UInt64.self); b.0 &+= a.0
        a.1 &+= p.loadUnaligned(fromByteOffset: 8, as: UInt64.self); b.1 &+= a.1
        a.2 &+= p.loadUnaligned(fromByteOffset: 16, as: UInt64.self); b.2 &+= a.2
        a.3 &+= p.loadUnaligned(fromByteOffset: 24, as: UInt64.self); b.3 &+= a.3
        a.4 &+= p.loadUnaligned(fromByteOffset: 32, as: UInt64.self); b.4 &+= a.4
        a.5 &+= p.loadUnaligned(fromByteOffset: 40, as: UInt64.self); b.5 &+= a.5
        a.6 &+= p.loadUnaligned(fromByteOffset: 48, as: UInt64.self); b.6 &+= a.6
        a.7 &+= p.loadUnaligned(fromByteOffset: 56, as: UInt64.self); b.7 &+= a.7
        p += 64
    }
    return a.0 ^ a.1 ^ a.2 ^ a.3 ^ a.4 ^ a.5 ^ a.6 ^ a.7 ^ b.0 ^ b.1 ^ b.2 ^ b.3 ^ b.4 ^ b.5 ^ b.6 ^ b.7
}

@inline(never)
func readOnly(_ raw: UnsafeRawBufferPointer) -> UInt64 {
    var x: UInt64 = 0
    var p = raw.baseAddress!
    for _ in 0..<(raw.count / 64) { x ^= p.loadUnaligned(as: UInt64.self) ^ p.loadUnaligned(fromByteOffset: 32, as: UInt64.self); p += 64 }
    return x
}

@main
struct HashSpeed {
    static func main() {
        for size in [1 << 20, 2 << 20, 16 << 20] {
            let buf = UnsafeMutableRawBufferPointer.allocate(byteCount: size, alignment: 4096)
            for i in 0..<(size / 8) { buf.storeBytes(of: UInt64(i) &* 0x9E37_79B9_7F4A_7C15, toByteOffset: i * 8, as: UInt64.self) }
            let raw = UnsafeRawBufferPointer(buf)
            var results: [String: [Double]] = [:]
            var sink: UInt64 = 0
            for _ in 0..<30 {
                for (name, f) in [("stripe", { stripeHash(raw) }), ("wordsum", { wordSum(raw) }), ("read", { readOnly(raw) })] as [(String, () -> UInt64)] {
                    let t = now(); sink ^= f(); let dt = now() - t
                    results[name, default: []].append(Double(size) / dt / 1e9)
                }
            }
            for (name, r) in results.sorted(by: { $0.key < $1.key }) {
                let s = r.sorted(); print(size >> 10, "KiB", name, "GB/s median", s[s.count / 2], "max", s.last!)
            }
            print(sink & 1)
        }
    }
}
