// Round 22: CPython's _TestBarrier.test_timeout with the time-out racing the last arrival. In
// Python (threading.Barrier._wait: wait_for(state != 0, timeout), then _break() only if
// still filling) a pass either releases every party (indices 0…N−1) or breaks for every
// party: never some parties through and others broken in the same pass.
//
// CPython test                                   → Swift test (Port22BarrierRacePortTests)
// _TestBarrier.test_timeout (time-outs racing
//   the last arrival, 300 passes)                → testEachPassReleasesAllOrBreaksAll
//   (the manager's Barrier, 40 passes)           → testManagerEachPassReleasesAllOrBreaksAll

import Foundation
import Multiprocessing
import XCTest

#if canImport(Glibc)
import Glibc
#endif

/// One party: for each barrier, waits a random while around the timeout, then waits on it
/// with the timeout; reports [party, trial, index or -1 when broken].
struct Port22RacingParty: ParallelFunction {
    var barriers: [PortBarrier]
    var report: Queue<[Int]>
    var party: Int
    var timeout: Double
    func callAsFunction(_: Void) throws {
        for (trial, barrier) in barriers.enumerated() {
            usleep(UInt32.random(in: 0...UInt32(timeout * 2e6)))
            let outcome: Int
            do { outcome = try barrier.wait(timeout: timeout) } catch is BrokenBarrierError { outcome = -1 }
            try report.put([party, trial, outcome])
        }
    }
}

final class Port22BarrierRacePortTests: PortTestCase {
    var manager: Manager?

    override func tearDown() {
        manager?.shutdown()
        manager = nil
        super.tearDown()
    }

    func testEachPassReleasesAllOrBreaksAll() throws { try race(managed: false, trials: 300, timeout: 0.004) }

    func testManagerEachPassReleasesAllOrBreaksAll() throws { try race(managed: true, trials: 40, timeout: 0.03) }

    private func race(managed: Bool, trials: Int, timeout: Double) throws {
        if managed { manager = try Manager() }
        try forEachMethod { method in
            let parties = 3
            let barriers = try (0..<trials).map { _ in try PortBarrier.make(manager, parties: parties, timeout: nil) }
            let report = try Queue<[Int]>(bufferSize: 4 << 20)
            let children = try (0..<parties).map { party in
                try started(Port22RacingParty(barriers: barriers, report: report, party: party, timeout: timeout), daemon: true, method)
            }
            var outcomes = Array(repeating: [Int](), count: trials)
            for _ in 0..<(parties * trials) {
                let r = try report.get(timeout: 60)
                outcomes[r[1]].append(r[2])
            }
            for p in children { try joinOrKill(p) }
            var mixed: [String] = []
            var passed = 0, broken = 0
            for (trial, o) in outcomes.enumerated() {
                if o.allSatisfy({ $0 == -1 }) {
                    broken += 1
                } else if o.sorted() == Array(0..<parties) {
                    passed += 1
                } else {
                    mixed.append("pass \(trial): \(o)")
                }
            }
            print("\(method) managed=\(managed): \(passed) passed, \(broken) broken, \(mixed.count) mixed")
            XCTAssertEqual(mixed, [], "\(method): passes neither released for all nor broken for all")
        }
    }
}
