import XCTest

@testable import Multiprocessing

#if canImport(Glibc)
import Glibc
#endif

/// A large item of several array types in one value.
struct LargeItem: Codable, Sendable {
    var ints: [Int]
    var label: String
    var doubles: [Double]
    var bytes: [UInt8]

    /// `total` bytes or so of `Patterned` data (seed `seed`), split across the three arrays.
    static func make(_ total: Int, seed: UInt8) -> LargeItem {
        make(ints: total / 2 / 8 + 3, doubles: total / 4 / 8 + 1, bytes: total / 4 + 4097, seed: seed)
    }

    /// Arrays of these lengths of `Patterned` data (seed `seed`).
    static func make(ints: Int, doubles: Int, bytes: Int, seed: UInt8) -> LargeItem {
        func raw<T>(_ count: Int, _ offset: UInt8) -> [T] {
            let bytes = Patterned.make(count * MemoryLayout<T>.stride, seed: seed &+ offset)
            return [T](unsafeUninitializedCapacity: count) { buffer, initialized in
                bytes.withUnsafeBytes { UnsafeMutableRawPointer(buffer.baseAddress!).copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
                initialized = count
            }
        }
        return LargeItem(ints: raw(ints, 0), label: "item \(seed)", doubles: raw(doubles, 1), bytes: raw(bytes, 2))
    }

    /// Whether every byte matches `make(_, seed:)` (raw comparison: a NaN pattern compares too).
    func isIntact(seed: UInt8) -> Bool {
        func check<T>(_ array: [T], _ offset: UInt8) -> Bool {
            array.withUnsafeBytes { Patterned.firstWrongBlock(Array($0), seed: seed &+ offset) == nil }
        }
        return label == "item \(seed)" && check(ints, 0) && check(doubles, 1) && check(bytes, 2)
    }

    var byteCount: Int { ints.count * 8 + doubles.count * 8 + bytes.count }
}

/// Checks its input (seed 1) and returns a new item (seed 2) of the same size, or an empty
/// one if the input was wrong.
struct EchoLargeItem: ParallelFunction {
    func callAsFunction(_ item: LargeItem) -> LargeItem {
        guard item.isIntact(seed: 1) else { return LargeItem(ints: [], label: "wrong", doubles: [], bytes: []) }
        return LargeItem.make(ints: item.ints.count, doubles: item.doubles.count, bytes: item.bytes.count, seed: 2)
    }
}

/// Sums a byte array's first and last bytes with its length.
struct TakeBytes: ParallelFunction {
    func callAsFunction(_ bytes: [UInt8]) -> Int { bytes.count &+ Int(bytes.first ?? 0) &+ Int(bytes.last ?? 0) }
}

/// Returns `count` bytes.
struct GiveBytes: ParallelFunction {
    func callAsFunction(_ count: Int) -> [UInt8] { [UInt8](repeating: 5, count: count) }
}

/// In a process of its own (so that the test process's own history does not count): a
/// one-worker pool; the peak resident memory (VmHWM, reset through /proc/self/clear_refs)
/// over building a `size`-byte input and passing it, then over getting a `size`-byte result,
/// each less the resident memory before, as multiples of `size`. Puts [input, result] on
/// `queue` ([] when a value came wrong, NaNs when the kernel cannot tell).
struct LargeItemPeakProbe: ParallelFunction {
    var queue: Queue<[Double]>
    var size: Int
    var startMethod: StartMethod

    func callAsFunction(_: Void) throws {
        let pool = try Pool(processes: 1, startMethod: startMethod)
        defer {
            pool.close()
            try? pool.join()
        }
        _ = try pool.apply(TakeBytes(), [1])
        _ = try pool.apply(GiveBytes(), 1)
        var before = Self.resetPeak()
        var bytes = [UInt8](repeating: 0, count: size)
        bytes[0] = 7
        let sent = try pool.apply(TakeBytes(), bytes, timeout: 120)
        bytes = []
        let input = (Self.peak() - before) / Double(size)
        before = Self.resetPeak()
        let result = try pool.apply(GiveBytes(), size, timeout: 120)
        let output = (Self.peak() - before) / Double(size)
        let correct = sent == size + 7 && result.count == size && result[size / 2] == 5
        try queue.put(correct ? [input, output] : [])
    }

    /// Resets VmHWM to the current resident memory and returns that (bytes).
    static func resetPeak() -> Double {
        let fd = open("/proc/self/clear_refs", O_WRONLY)
        guard fd >= 0 else { return .nan }
        defer { close(fd) }
        return write(fd, "5", 1) == 1 ? status("VmRSS:") : .nan
    }

    static func peak() -> Double { status("VmHWM:") }

    /// A line of /proc/self/status in bytes (read with stdio: the file reports no size).
    static func status(_ key: String) -> Double {
        guard let file = fopen("/proc/self/status", "r") else { return .nan }
        defer { fclose(file) }
        var line = [CChar](repeating: 0, count: 256)
        while fgets(&line, Int32(line.count), file) != nil {
            let text = String(decoding: line.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            guard text.hasPrefix(key) else { continue }
            let number = text.dropFirst(key.count).split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\n" }).first
            return number.flatMap { Double($0) }.map { $0 * 1024 } ?? .nan
        }
        return .nan
    }
}

/// Large items (tens to hundreds of MiB) through a local pool: intact on every start method,
/// and without a second copy of the item in the caller's memory.
final class LargeItemTests: XCTestCase {
    /// A ~64 MiB value of three array types goes to a worker and a new one of the same size
    /// comes back, every byte checked, with each start method (twice with fork: nothing of
    /// the first is in the way); nothing stays mapped or open.
    func testLargeItemRoundTripsOnEveryStartMethod() throws {
        let size = 64 << 20
        let input = LargeItem.make(size, seed: 1)
        for method in [StartMethod.fork, .forkserver, .spawn] {
            try Pool.with(processes: 1, startMethod: method) { pool in
                let output = try pool.apply(EchoLargeItem(), input, timeout: 120)
                XCTAssertEqual(output.label, "item 2", "\(method): the worker received a wrong input")
                XCTAssertEqual(output.byteCount, input.byteCount, "\(method)")
                XCTAssertTrue(output.isIntact(seed: 2), "\(method): the result came back wrong")
                if method == .fork {
                    let again = try pool.apply(EchoLargeItem(), input, timeout: 120)
                    XCTAssertTrue(again.isIntact(seed: 2), "\(method): the second result came back wrong")
                }
            }
            XCTAssertEqual(outOfBandTraces(), [], "\(method): a large message stays open or mapped")
        }
    }

    /// Passing a 192 MiB array to a worker, and getting one back, raises the caller's peak
    /// resident memory by less than 1.6 times the array (the array itself counts 1): the
    /// message is neither encoded into a buffer of its own nor mapped whole beside the result.
    func testCallerPeakMemoryStaysUnderOnePointSixTimesALargeItem() throws {
        let size = 192 << 20
        let queue = try Queue<[Double]>()
        let child = Multiprocessing.Process(
            target: LargeItemPeakProbe(queue: queue, size: size, startMethod: .fork),
            startMethod: .fork)
        try child.start()
        let ratios = try queue.get(timeout: 120)
        try child.join(timeout: 60)
        XCTAssertEqual(ratios.count, 2, "a value came back wrong")
        guard ratios.count == 2 else { return }
        XCTAssertFalse(ratios[0].isNaN || ratios[1].isNaN, "cannot read VmHWM/VmRSS after /proc/self/clear_refs")
        XCTAssertLessThan(ratios[0], 1.6, "passing a large input: the caller's peak was \(ratios[0]) times the input")
        XCTAssertLessThan(ratios[1], 1.6, "getting a large result: the caller's peak was \(ratios[1]) times the result")
    }
}
