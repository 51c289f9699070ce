import Foundation
import Wire
import XCTest

@testable import Multiprocessing

/// Sums one quarter of a broadcast array in shared memory (no copy).
struct BroadcastQuarterSum: ParallelFunction {
    let table: Broadcast<[Double]>
    func callAsFunction(_ quarter: Int) throws -> Double {
        try table.withUnsafeBufferPointer { (elements: UnsafeBufferPointer<Double>) -> Double in
            let size = elements.count / 4
            return broadcastSum(elements.baseAddress! + quarter * size, size)
        }
    }
}

/// A plain loop (fast enough in a debug build for 64 MiB).
func broadcastSum(_ start: UnsafePointer<Double>, _ count: Int) -> Double {
    var sum = 0.0
    var i = 0
    while i < count {
        sum += start[i]
        i &+= 1
    }
    return sum
}

/// `count` doubles `i % 1000`, and their sum over `range` (exact: integers below 2^53).
func broadcastTestData(_ count: Int) -> [Double] {
    [Double](unsafeUninitializedCapacity: count) { buffer, initialized in
        var i = 0
        var value = 0.0
        while i < count {
            buffer[i] = value
            value = value == 999 ? 0 : value + 1
            i &+= 1
        }
        initialized = count
    }
}

func broadcastTestSum(_ range: Range<Int>) -> Double {
    // Σ i % 1000 over [0, n).
    func prefix(_ n: Int) -> Int { (n / 1000) * 499_500 + (n % 1000) * (n % 1000 - 1) / 2 }
    return Double(prefix(range.upperBound) - prefix(range.lowerBound))
}

/// The element count seen through `value` (one copy) and the first element.
struct BroadcastValueProbe: ParallelFunction {
    let table: Broadcast<[Double]>
    func callAsFunction(_: Int) throws -> [Double] {
        let copy = try table.value
        return [Double(copy.count), copy[0], copy[copy.count - 1]]
    }
}

/// An element read through the mapping, the worker's pid, and the permissions of the
/// mapping that holds it (from /proc/self/maps).
struct BroadcastElementAndMapping: ParallelFunction {
    let table: Broadcast<[Double]>
    func callAsFunction(_ index: Int) throws -> BroadcastProbe {
        try table.withUnsafeBufferPointer { (elements: UnsafeBufferPointer<Double>) -> BroadcastProbe in
            let address = UInt(bitPattern: elements.baseAddress)
            return BroadcastProbe(element: elements[index], pid: getpid(), permissions: Self.permissions(of: address))
        }
    }

    static func permissions(of address: UInt) -> String {
        guard let maps = wholeFile("/proc/self/maps") else { return "?" }
        for line in maps.split(separator: "\n") {
            let fields = line.split(separator: " ")
            let range = fields[0].split(separator: "-")
            guard range.count == 2, let low = UInt(range[0], radix: 16), let high = UInt(range[1], radix: 16) else { continue }
            if low <= address && address < high { return String(fields[1]) }
        }
        return "unmapped"
    }
}

struct BroadcastProbe: Codable, Equatable, Sendable {
    var element: Double
    var pid: Int32
    var permissions: String
}

/// Reads a Wire-encoded broadcast (a dictionary).
struct BroadcastLookup: ParallelFunction {
    let names: Broadcast<[String: Int]>
    func callAsFunction(_ key: String) throws -> Int {
        try names.value[key] ?? -1
    }
}

/// The broadcast comes as an input instead of inside the function value.
struct BroadcastAsInput: ParallelFunction {
    func callAsFunction(_ table: Broadcast<[Double]>) throws -> Double {
        try table.withUnsafeBufferPointer { broadcastSum($0.baseAddress!, $0.count) }
    }
}

/// How many broadcast mappings a worker holds, and its shared mappings.
struct BroadcastMappingsHeld: ParallelFunction {
    func callAsFunction(_: Int) -> [Int] {
        [BroadcastBytes.liveCount, SharedMappings()(0)]
    }
}

/// The segment id a local broadcast's handle names (its encoding's last field), read without
/// mapping it.
struct BroadcastPlaceProbe: Decodable {
    enum Place { case segment(SegmentID), other }
    var place: Place
    private enum CodingKeys: String, CodingKey { case type, format, stride, count, place }
    private struct Raw: Decodable {
        var place: Place
        init(from decoder: any Decoder) throws {
            var container = try decoder.unkeyedContainer()
            if try container.decode(UInt8.self) == 1 {
                var segment = try container.nestedUnkeyedContainer()
                place = .segment(try segment.decode(SegmentID.self))
            } else {
                place = .other
            }
        }
    }
    init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        _ = try container.decode(String.self, forKey: .type)
        _ = try container.decode(UInt8.self, forKey: .format)
        _ = try container.decode(Int.self, forKey: .stride)
        _ = try container.decode(Int.self, forKey: .count)
        place = try container.decode(Raw.self, forKey: .place).place
    }
}

final class BroadcastTests: TimeLimitedTestCase {
    /// Issue 13 item 3: a 64 MiB array broadcast once is read by the tasks of a pool on every
    /// start method (in place and through `value`), with the right checksum; and the workers
    /// map the one copy (read-only): a change made in it after they first read it is seen by
    /// their next tasks, which a copy per worker would not see.
    func testBroadcastArrayIsReadByTasksOnEveryStartMethodThroughOneSharedCopy() throws {
        let count = 8 << 20 // 64 MiB of Double
        let data = broadcastTestData(count)
        let size = count / 4
        let quarters = (0..<4).map { q in broadcastTestSum((q * size)..<((q + 1) * size)) }
        for method in [StartMethod.fork, .spawn, .forkserver] {
            try Pool.with(processes: 2, startMethod: method) { pool in
                let table = try pool.broadcast(data)
                XCTAssertEqual(table.byteCount, count * 8)
                XCTAssertEqual(try pool.map(BroadcastQuarterSum(table: table), 0..<4, chunkSize: 1), quarters, "\(method)")
                XCTAssertEqual(
                    try pool.apply(BroadcastValueProbe(table: table), 0), [Double(count), 0, Double((count - 1) % 1000)],
                    "\(method)")
                let before = try pool.map(BroadcastElementAndMapping(table: table), Array(repeating: 7, count: 8), chunkSize: 1)
                XCTAssertEqual(Set(before.map(\.element)), [7], "\(method)")
                XCTAssertEqual(Set(before.map(\.permissions)), ["r--s"], "\(method): workers map the broadcast read-only")
                // The creator writes into the shared bytes: every worker sees it at once.
                let bytes = try table.storage.attach().buffer
                UnsafeMutableRawPointer(mutating: bytes.baseAddress!).storeBytes(of: 4242.0, toByteOffset: 7 * 8, as: Double.self)
                let after = try pool.map(BroadcastElementAndMapping(table: table), Array(repeating: 7, count: 8), chunkSize: 1)
                XCTAssertEqual(Set(after.map(\.element)), [4242], "\(method): a worker holds its own copy, not the shared one")
                // As an input too.
                XCTAssertEqual(try pool.map(BroadcastAsInput(), [table]), [broadcastTestSum(0..<count) + 4242 - 7], "\(method)")
            }
        }
    }

    /// Any `Codable` value: Wire-encoded once, decoded once per worker.
    func testBroadcastOfACodableValueIsDecodedInTasks() throws {
        try Pool.with(processes: 2, startMethod: .spawn) { pool in
            let names = try pool.broadcast(["one": 1, "two": 2, "three": 3])
            XCTAssertEqual(try pool.map(BroadcastLookup(names: names), ["two", "three", "none", "one"]), [2, 3, -1, 1])
            XCTAssertEqual(try names.value, ["one": 1, "two": 2, "three": 3])
        }
    }

    /// 50 broadcasts made and released in a loop do not pile up: not in this process, not in
    /// the workers (which drop their mappings when the pool tells them).
    func testReleasedBroadcastsDoNotPileUp() throws {
        let ownedBefore = SegmentRegistry.counts.owned
        for method in [StartMethod.fork, .spawn] {
            try Pool.with(processes: 2, startMethod: method) { pool in
                let first = try pool.broadcast([Double](repeating: 1, count: 1 << 17))
                XCTAssertEqual(try pool.map(BroadcastQuarterSum(table: first), 0..<4, chunkSize: 1).reduce(0, +), Double(1 << 17))
                first.release()
                usleep(700_000)
                _ = try pool.map(Square(), 0..<4, chunkSize: 1)
                let before = try pool.map(BroadcastMappingsHeld(), 0..<4, chunkSize: 1).map { $0[1] }.max()!
                for round in 0..<50 {
                    let table = try pool.broadcast([Double](repeating: Double(round), count: 1 << 17)) // 1 MiB
                    XCTAssertEqual(
                        try pool.map(BroadcastQuarterSum(table: table), 0..<4, chunkSize: 1).reduce(0, +),
                        Double(round * (1 << 17)), "\(method)")
                    table.release()
                }
                XCTAssertEqual(BroadcastBytes.liveCount, 0, "\(method): this process still maps released broadcasts")
                for _ in 0..<2 {
                    usleep(700_000) // the engine looks twice a second
                    _ = try pool.map(Square(), 0..<4, chunkSize: 1)
                }
                let held = try pool.map(BroadcastMappingsHeld(), 0..<4, chunkSize: 1)
                XCTAssertLessThan(held.map { $0[1] }.max()! - before, 5, "\(method): shared mappings per worker \(held)")
                XCTAssertLessThanOrEqual(held.map { $0[0] }.max()!, 1, "\(method): broadcast mappings per worker \(held)")
            }
            XCTAssertEqual(SegmentRegistry.counts.owned, ownedBefore, "\(method): segments left in this process")
        }
    }

    /// Misuse has clear typed errors: a released handle (by `release()` or its pool's end,
    /// also when given to another pool), a handle whose bytes are not in this process, a
    /// handle decoded as another type.
    func testMisuseThrowsTypedErrors() throws {
        var kept: Broadcast<[Double]>?
        try Pool.with(processes: 1, startMethod: .fork) { pool in
            let table = try pool.broadcast([1.0, 2, 3, 4])
            XCTAssertEqual(try pool.map(BroadcastQuarterSum(table: table), 0..<4), [1, 2, 3, 4])
            // Another type.
            let encoded = try Wire.encode(table)
            XCTAssertThrowsError(try Wire.decode(Broadcast<[Float]>.self, from: encoded)) { error in
                XCTAssertEqual((error as? BroadcastError)?.code, .typeMismatch, "\(error)")
            }
            table.release()
            XCTAssertTrue(table.isReleased)
            XCTAssertThrowsError(try table.value) { error in
                XCTAssertEqual((error as? BroadcastError)?.code, .released, "\(error)")
            }
            XCTAssertThrowsError(try pool.map(BroadcastQuarterSum(table: table), 0..<4)) { error in
                XCTAssertEqual((error as? PoolError)?.code, .encoding, "\(error)")
                XCTAssertTrue("\(error)".contains("released"), "\(error)")
            }
            // Its bytes are gone from this process (once the engine let go of the finished
            // map's function): a copy made before cannot find them.
            guard case .segment(let segment) = try Wire.decode(BroadcastPlaceProbe.self, from: encoded).place else {
                return XCTFail("a local broadcast's handle names a segment")
            }
            let end = Date().addingTimeInterval(10)
            while SegmentRegistry.lookup(segment) != nil && Date() < end { usleep(10_000) }
            XCTAssertNil(SegmentRegistry.lookup(segment), "the released broadcast's segment is still held after 10 s")
            XCTAssertThrowsError(try Wire.decode(Broadcast<[Double]>.self, from: encoded)) { error in
                XCTAssertEqual((error as? BroadcastError)?.code, .unavailable, "\(error)")
            }
            kept = try pool.broadcast([5.0, 6, 7, 8])
            XCTAssertEqual(try kept!.value, [5, 6, 7, 8])
        }
        // The pool that made it ended: released, here and in another pool.
        XCTAssertThrowsError(try kept!.withUnsafeBufferPointer { $0[0] }) { error in
            XCTAssertEqual((error as? BroadcastError)?.code, .released, "\(error)")
        }
        try Pool.with(processes: 1, startMethod: .fork) { other in
            XCTAssertThrowsError(try other.apply(BroadcastQuarterSum(table: kept!), 0)) { error in
                XCTAssertTrue("\(error)".contains("released"), "\(error)")
            }
            other.close()
            XCTAssertThrowsError(try other.broadcast([1.0])) { error in
                XCTAssertEqual((error as? BroadcastError)?.code, .invalidArgument, "\(error)")
            }
        }
    }
}
