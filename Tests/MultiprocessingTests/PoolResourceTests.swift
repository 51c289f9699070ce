import XCTest
import Foundation
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
        return Set(names.compactMap { name in
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
                  let close = stat.lastIndex(of: ")") else { continue }
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
        XCTAssertTrue(waitUntil(5) { Self.openDescriptors().isSubset(of: baseline) },
                      "new descriptors: \(Self.openDescriptors().subtracting(baseline))")
        XCTAssertTrue(waitUntil(5) { Self.children().zombies == 0 && Self.children().alive == aliveBefore },
                      "children: \(Self.children()), \(aliveBefore) alive before")
    }
}
