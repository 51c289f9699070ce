// What a map over a `Set` or over an `Array(0..<n)` made in the call costs beyond the map
// over a ready `Array`, beside what the extra work costs alone, in the same repetitions:
//
//   swift build -c release --package-path Benchmarks/external --product input-floors
//   Benchmarks/external/.build/release/input-floors [repetitions, default 100]
//
// Each repetition runs, in a new order each time (seeded): `pool.map(Square(), array)`,
// `pool.map(Square(), Array(0..<n))`, `pool.map(Square(), set)` (200 000 squares, 2 workers,
// fork, the default chunk size), and alone, without a map: `Array(0..<n)` made and freed
// (the caller's own allocation), and the `Set` read once into a buffer of plain numbers
// kept between repetitions (what the library's reading of a `Set` does, with nothing else).
// Prints each one's median time (µs) and its time ÷ the ready Array's map in the same
// repetition: median [min–max] over the repetitions, with the load average before and after.

import Glibc
import Multiprocessing

struct Square: ParallelFunction {
    func callAsFunction(_ x: Int) -> Int { x &* x }
}

func now() -> Double {
    var time = timespec()
    clock_gettime(CLOCK_MONOTONIC, &time)
    return Double(time.tv_sec) * 1e6 + Double(time.tv_nsec) / 1e3
}

func loadAverage() -> String {
    guard let file = fopen("/proc/loadavg", "r") else { return "?" }
    defer { fclose(file) }
    var line = [CChar](repeating: 0, count: 128)
    guard fgets(&line, Int32(line.count), file) != nil else { return "?" }
    return String(decoding: line.prefix { $0 != 0 && $0 != 32 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
}

/// Keeps `value` from being optimised away.
@inline(never)
func keep(_ value: Int) { if value == -1 { print("") } }

/// Reads `set` into `raw` as the library's `Set` path does (an iterator, raw stores).
@inline(never)
func read(_ set: Set<Int>, into raw: UnsafeMutableRawPointer) -> Int {
    var iterator = set.makeIterator()
    var k = 0
    while let x = iterator.next() {
        raw.storeBytes(of: x, toByteOffset: k &* 8, as: Int.self)
        k &+= 1
    }
    return k
}

struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

nonisolated func run(repetitions: Int) throws {
    let n = 200_000
    let pool = try Pool(processes: 2, startMethod: .fork)
    defer { pool.terminate() }
    let array = Array(0..<n)
    let set = Set(array)
    let buffer = UnsafeMutableRawPointer.allocate(byteCount: n * 8, alignment: 64)
    defer { buffer.deallocate() }
    buffer.initializeMemory(as: UInt8.self, repeating: 0, count: n * 8)
    let kinds = ["map array", "map Array(0..<n)", "map set", "Array(0..<n) alone", "set read alone"]
    var times = [[Double]](repeating: [], count: kinds.count)
    var generator = SplitMix64(state: 0x5EED)
    let loadBefore = loadAverage()
    _ = try pool.map(Square(), array)
    for _ in 0..<repetitions {
        for k in Array(kinds.indices).shuffled(using: &generator) {
            let start = now()
            switch k {
            case 0: keep(try pool.map(Square(), array)[n - 1])
            case 1: keep(try pool.map(Square(), Array(0..<n))[n - 1])
            case 2: keep(try pool.map(Square(), set).count)
            case 3: keep(Array(0..<n)[n / 2])
            default: keep(read(set, into: buffer))
            }
            times[k].append(now() - start)
        }
    }
    func median(_ values: [Double]) -> Double { values.sorted()[values.count / 2] }
    func two(_ value: Double) -> String {
        let hundredths = Int((value * 100).rounded())
        return "\(hundredths / 100).\(hundredths % 100 < 10 ? "0" : "")\(hundredths % 100)"
    }
    print("\(repetitions) repetitions, load average \(loadBefore) before, \(loadAverage()) after")
    print("| | median µs | ÷ map array, same repetition: median [min–max] |")
    print("|---|---|---|")
    for (k, kind) in kinds.enumerated() {
        let ratios = zip(times[k], times[0]).map { $0 / $1 }
        print(
            "| \(kind) | \(Int(median(times[k]))) | "
                + "\(two(median(ratios))) [\(two(ratios.min()!))–\(two(ratios.max()!))] |")
    }
}

try run(repetitions: Int(CommandLine.arguments.dropFirst().first ?? "100") ?? 100)
