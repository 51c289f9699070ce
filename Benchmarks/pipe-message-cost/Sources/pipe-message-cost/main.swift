// One process, one thread: a message sent on one end of a socket pair and received on the
// other, 50 000 times per sample, 15 samples interleaved; ns per message (send + receive).
//
//   raw      the system calls of Benchmarks/c/floor.c's ping-pong for one message: send(8 bytes),
//            one recv(8 bytes, MSG_DONTWAIT) — in Swift, calling the C library directly
//   int      Connection.send(Int) then Connection.recv(Int.self)
//   bytes8   Connection.sendBytes(8 bytes) then Connection.recvBytes()
//
// Prints one JSON line per figure with the median and the minimum of the samples, and the
// ratios to raw (median ÷ median, min ÷ min).
import Multiprocessing

#if canImport(Glibc)
import Glibc
#endif

func now() -> Double {
    var t = timespec()
    clock_gettime(CLOCK_MONOTONIC, &t)
    return Double(t.tv_sec) + Double(t.tv_nsec) * 1e-9
}

func fail(_ what: String) -> Never {
    print("pipe-message-cost: \(what) failed (errno \(errno))")
    exit(1)
}

let (a, b) = try Pipe()
var pair: [Int32] = [-1, -1]
guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &pair) == 0 else { fail("socketpair") }
let count = 50_000
let samples = 15
let payload: [UInt8] = [1, 2, 3, 4, 5, 6, 7, 8]
var buffer = [UInt8](repeating: 0, count: 8)
var raw: [Double] = [], int: [Double] = [], bytes: [Double] = []
for _ in 0..<samples {
    var start = now()
    for _ in 0..<count {
        guard send(pair[0], payload, 8, 0) == 8 else { fail("send") }
        guard recv(pair[1], &buffer, 8, Int32(MSG_DONTWAIT)) == 8 else { fail("recv") }
    }
    raw.append((now() - start) / Double(count) * 1e9)
    start = now()
    for i in 0..<count {
        try a.send(i)
        guard try b.recv(Int.self) == i else { fail("recv(Int)") }
    }
    int.append((now() - start) / Double(count) * 1e9)
    start = now()
    for _ in 0..<count {
        try a.sendBytes(payload)
        guard try b.recvBytes().count == 8 else { fail("recvBytes") }
    }
    bytes.append((now() - start) / Double(count) * 1e9)
}

func median(_ values: [Double]) -> Double { values.sorted()[values.count / 2] }
func rounded(_ value: Double, _ digits: Double) -> Double { (value * digits).rounded() / digits }
for (name, values) in [("raw", raw), ("int", int), ("bytes8", bytes)] {
    let ratio = "\"median_vs_raw\":\(rounded(median(values) / median(raw), 100)),\"min_vs_raw\":\(rounded(values.min()! / raw.min()!, 100))"
    print("{\"name\":\"pipe.messageCost.\(name)\",\"median\":\(rounded(median(values), 1)),\"min\":\(rounded(values.min()!, 1)),\"unit\":\"ns\",\(ratio)}")
}
