import Foundation
import XCTest

@testable import Multiprocessing

#if canImport(Glibc)
import Glibc
#endif

/// No leaked descriptors, no zombies, no surviving children — whether a pool is closed,
/// terminated, or dropped without either.
final class PoolResourceTests: TimeLimitedTestCase {
    /// Open descriptors with what they point to. Compared as sets: descriptors may close
    /// behind our back (an earlier singleton MPI_Init leaves some that later go away), but
    /// none may appear.
    static func openDescriptors() -> Set<String> {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")) ?? []
        // A descriptor that vanished before readlink was the directory listing's own.
        return Set(
            names.compactMap { name in
                guard let target = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/fd/\(name)") else {
                    return nil
                }
                return "\(name) → \(target)"
            })
    }

    /// Children of this process: (zombies, alive).
    static func children() -> (zombies: Int, alive: Int) {
        let me = getpid()
        var zombies = 0, alive = 0
        for entry in (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? [] {
            guard Int32(entry) != nil,
                let stat = try? String(contentsOfFile: "/proc/\(entry)/stat", encoding: .utf8),
                let close = stat.lastIndex(of: ")")
            else { continue }
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            guard fields.count > 2, Int32(fields[1]) == me else { continue }
            if fields[0] == "Z" { zombies += 1 } else { alive += 1 }
        }
        return (zombies, alive)
    }

    func waitUntil(_ seconds: Double, _ condition: () -> Bool) -> Bool {
        let end = Date().addingTimeInterval(seconds)
        while Date() < end {
            if condition() { return true }
            usleep(10_000)
        }
        return condition()
    }

    func testNoLeakedDescriptorsOrZombies() throws {
        // Warm up the process-wide pieces (supervisor thread, fork server) first: they live
        // as long as the process.
        for method in [StartMethod.fork, .forkserver, .spawn] {
            try Pool.with(processes: 1, startMethod: method) { _ = try $0.map(Square(), [1]) }
        }
        let baseline = Self.openDescriptors()
        let (_, aliveBefore) = Self.children()
        for method in [StartMethod.fork, .forkserver, .spawn] {
            for ending in ["close", "terminate", "drop"] {
                do {
                    let pool = try Pool(processes: 2, startMethod: method)
                    XCTAssertEqual(try pool.map(Square(), 0..<100), (0..<100).map { $0 * $0 })
                    switch ending {
                    case "close": pool.close(); try pool.join()
                    case "terminate": pool.terminate(); try pool.join()
                    default: break
                    }
                }
            }
        }
        XCTAssertTrue(
            waitUntil(5) { Self.openDescriptors().isSubset(of: baseline) },
            "new descriptors: \(Self.openDescriptors().subtracting(baseline))")
        XCTAssertTrue(
            waitUntil(5) { Self.children().zombies == 0 && Self.children().alive == aliveBefore },
            "children: \(Self.children()), \(aliveBefore) alive before")
    }
}

/// Puts its input into a queue the function value carries.
struct PutInto: ParallelFunction {
    var queue: Queue<Int>
    func callAsFunction(_ x: Int) throws -> Int {
        try queue.put(x)
        return x
    }
}

/// The number of shared mappings of this process (memfd / shm) — for a worker's own view.
struct SharedMappings: ParallelFunction {
    func callAsFunction(_: Int) -> Int {
        guard let maps = wholeFile("/proc/self/maps") else { return -1 }
        return maps.split(separator: "\n").filter { $0.contains("memfd:") || $0.contains("/dev/shm/") }.count
    }
}

/// What the registry of a worker holds (for failure messages).
struct SegmentsHeld: ParallelFunction {
    func callAsFunction(_: Int) -> String {
        "received \(SegmentRegistry.counts.received)"
    }
}

final class PoolSegmentReleaseTests: TimeLimitedTestCase {
    /// The probe below reads all of /proc/self/maps: late in the suite this process (and a
    /// worker forked from it) has thousands of mappings, and a probe that read only the
    /// first 4 KiB (Foundation's `String(contentsOfFile:)`) found none of a pool's.
    func testTheMappingProbeReadsAllOfALongMapsFile() throws {
        let queue = try Queue<Int>()
        // Mappings that do not merge (alternate protections), below the queue's.
        var pages: [UnsafeMutableRawPointer] = []
        defer { for page in pages { munmap(page, 4096) } }
        for i in 0..<2000 {
            guard let page = mmap(nil, 4096, i % 2 == 0 ? PROT_READ : PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0),
                page != MAP_FAILED
            else { break }
            pages.append(page)
        }
        XCTAssertGreaterThan((wholeFile("/proc/self/maps") ?? "").utf8.count, 64 << 10)
        XCTAssertGreaterThan(SharedMappings()(0), 0)
        withExtendedLifetime(queue) {}
    }

    /// Issue 10 item 8: a long-lived pool whose tasks are given many short-lived shared objects
    /// keeps only the live ones mapped in its workers (one queue per call, 100 calls: more than
    /// the 64 function values a pool caches).
    func testShortLivedObjectsAreUnmappedInTheWorkers() throws {
        for method in [StartMethod.fork, .spawn] {
            try Pool.with(processes: 1, startMethod: method) { pool in
                func roundOfQueues(_ count: Int) throws {
                    for i in 0..<count {
                        let queue = try Queue<Int>()
                        XCTAssertEqual(try pool.apply(PutInto(queue: queue), i), i)
                        XCTAssertEqual(try queue.get(timeout: 10), i)
                    }
                }
                try roundOfQueues(5)
                usleep(700_000) // the engine looks twice a second
                let before = try pool.apply(SharedMappings(), 0)
                try roundOfQueues(100)
                usleep(700_000)
                _ = try pool.apply(Square(), 1) // one more round: releases sent
                usleep(700_000)
                _ = try pool.apply(Square(), 2)
                let after = try pool.apply(SharedMappings(), 0)
                XCTAssertGreaterThan(before, 0, "\(method)")
                XCTAssertLessThan(
                    after - before, 10,
                    "\(method): \(before) shared mappings before, \(after) after 100 queues: worker \((try? pool.apply(SegmentsHeld(), 0)) ?? "?"), parent owned \(SegmentRegistry.counts.owned)"
                )
            }
        }
    }
}
