// Round 22: CPython's _TestManagerRestart.test_rapid_restart and _TestPool's many pools
// (setUpClass/tearDownClass per class, test_context, test_enter) repeated: managers and pools
// made, used (also from a child) and ended one after another leave no descriptor, no zombie
// and no process behind (CPython's BaseMixin.tearDownClass reports dangling processes).
//
// CPython test                                   → Swift test (Port22LeakPortTests)
// _TestManagerRestart.test_rapid_restart,
//   TestSyncManagerTypes setUp/tearDown (×30)     → testManagersOneAfterAnotherLeaveNothing
// _TestPool setUpClass/tearDownClass, test_context
//   (×10 per start method)                        → testPoolsOneAfterAnotherLeaveNothing

import Foundation
import Multiprocessing
import XCTest

#if canImport(Glibc)
import Glibc
#endif

struct Port22UseDict: ParallelFunction {
    var dict: DictProxy<String, Int>
    func callAsFunction(_: Void) throws { try dict.set("child", 1) }
}

/// Children of this process, "pid name", without their state.
func port22ChildNames() -> Set<String> {
    Set(port22Children().map { $0.split(separator: " ").dropLast().joined(separator: " ") })
}

/// Children of this process (pid, state letter) from /proc.
func port22Children() -> [String] {
    let me = getpid()
    var result: [String] = []
    for entry in (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? [] {
        guard let pid = Int32(entry), let stat = readTextFile("/proc/\(pid)/stat"),
            let close = stat.lastIndex(of: ")")
        else { continue }
        let fields = stat[stat.index(close, offsetBy: 2)...].split(separator: " ")
        if fields.count > 1, Int32(fields[1]) == me, !stat.contains("(swiftmp-forksrv)") { // the fork server stays, as Python's
            let name = stat[stat.index(after: stat.firstIndex(of: "(")!)..<close]
            result.append("\(pid) \(name) \(fields[0])")
        }
    }
    return result.sorted()
}

final class Port22LeakPortTests: PortTestCase {
    func testManagersOneAfterAnotherLeaveNothing() throws {
        // One round first: what a first use starts once (threads, the tracker directory…).
        do {
            let m = try Manager()
            _ = try m.dict(String.self, Int.self)
            m.shutdown()
        }
        // Children this process had anyway (an earlier test's MPI singleton leaves `orted`).
        var baseline: Set<String> = []
        _ = eventually(within: 10) {
            baseline = port22ChildNames()
            return !port22Children().contains { $0.hasSuffix(" Z") }
        }
        let before = port5OpenDescriptors()
        for i in 0..<30 {
            let method = PortTestCase.methods[i % 3]
            let m = try Manager()
            let d = try m.dict(String.self, Int.self)
            try d.set("parent", i)
            let p = try started(Port22UseDict(dict: d), method)
            try joinOrKill(p)
            XCTAssertEqual(p.exitCode, 0)
            XCTAssertEqual(try d.get("child"), 1)
            m.shutdown()
        }
        XCTAssertTrue(eventually(within: 10) { port22ChildNames().isSubset(of: baseline) }, "children left: \(port22Children()), before: \(baseline)")
        // The supervisor thread closes an ended child's descriptors just after it reaps it.
        _ = eventually(within: 10) { port5OpenDescriptors() <= before + 2 }
        let after = port5OpenDescriptors()
        XCTAssertLessThanOrEqual(after, before + 2, "descriptors: \(before) before, \(after) after 30 managers")
        print("managers: descriptors \(before) → \(after); children \(port22Children())")
    }

    func testPoolsOneAfterAnotherLeaveNothing() throws {
        for method in PortTestCase.methods {
            try Pool.with(processes: 2, startMethod: method) { pool in _ = try pool.map(Sqr(), [1, 2]) }
        }
        // Children this process had anyway (an earlier test's MPI singleton leaves `orted`).
        var baseline: Set<String> = []
        _ = eventually(within: 10) {
            baseline = port22ChildNames()
            return !port22Children().contains { $0.hasSuffix(" Z") }
        }
        let before = port5OpenDescriptors()
        for method in PortTestCase.methods {
            for round in 0..<10 {
                switch round % 3 {
                case 0:
                    try Pool.with(processes: 2, startMethod: method) { pool in XCTAssertEqual(try pool.map(Sqr(), [1, 2, 3]), [1, 4, 9]) }
                case 1:
                    let pool = try Pool(processes: 2, startMethod: method, maxTasksPerChild: 1)
                    XCTAssertEqual(try pool.map(Sqr(), Array(0..<6)), [0, 1, 4, 9, 16, 25])
                    pool.terminate()
                    try pool.join()
                default:
                    let pool = try Pool(processes: 3, startMethod: method)
                    _ = try pool.mapAsync(SlowSqr(seconds: 0.05), Array(0..<9))
                    pool.close()
                    try pool.join()
                }
            }
        }
        XCTAssertTrue(eventually(within: 10) { port22ChildNames().isSubset(of: baseline) }, "children left: \(port22Children()), before: \(baseline)")
        // The supervisor thread closes an ended child's descriptors just after it reaps it.
        _ = eventually(within: 10) { port5OpenDescriptors() <= before + 2 }
        let after = port5OpenDescriptors()
        XCTAssertLessThanOrEqual(after, before + 2, "descriptors: \(before) before, \(after) after 30 pools")
        print("pools: descriptors \(before) → \(after); children \(port22Children())")
    }
}
