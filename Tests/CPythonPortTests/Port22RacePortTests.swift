// Round 22: CPython's _TestCondition.test_notify_all (waiters that time out, then check_invariant,
// then a notify that must wake a new waiter) with the time-outs racing notifies: children and
// threads wait with short timeouts while this process keeps notifying; afterwards no waiter is
// left registered (check_invariant), and a new waiter is woken by one notify.
//
// CPython test                                   → Swift test (Port22RacePortTests)
// _TestCondition.test_notify_all (time-outs
//   racing notify; check_invariant; a later
//   waiter still woken)                          → testTimeoutsRacingNotifiesLeaveNoGhostWaiter
//                                                  testManagerTimeoutsRacingNotifiesLeaveNoGhostWaiter

import Foundation
import Multiprocessing
import XCTest

#if canImport(Glibc)
import Glibc
#endif

/// Waits `rounds` times with a short timeout; counts the waits that were notified.
struct Port22RacingWaiter: ParallelFunction {
    var condition: PortCondition
    var notified: SharedValue<Int>
    var timedOut: SharedValue<Int>
    var rounds: Int
    var timeout: Double
    func callAsFunction(_: Void) throws {
        for _ in 0..<rounds {
            let woke = try condition.withLock { try condition.wait(timeout: timeout) }
            if woke { notified.withLock { $0 += 1 } } else { timedOut.withLock { $0 += 1 } }
        }
    }
}

final class Port22RacePortTests: PortTestCase {
    var manager: Manager?

    override func tearDown() {
        manager?.shutdown()
        manager = nil
        super.tearDown()
    }

    func testTimeoutsRacingNotifiesLeaveNoGhostWaiter() throws { try race(managed: false) }

    func testManagerTimeoutsRacingNotifiesLeaveNoGhostWaiter() throws { try race(managed: true) }

    private func race(managed: Bool) throws {
        if managed { manager = try Manager() }
        try forEachMethod { method in
            let condition = try PortCondition.make(manager)
            let notified = try SharedValue<Int>(0), timedOut = try SharedValue<Int>(0)
            let rounds = managed ? 30 : 200
            let waiter = Port22RacingWaiter(
                condition: condition, notified: notified, timedOut: timedOut, rounds: rounds,
                timeout: managed ? 0.02 : 0.002)
            let children = try (0..<3).map { _ in try started(waiter, daemon: true, method) }
            let threads = (0..<2).map { _ in TestThread { try waiter(()) } }
            var notifies = 0
            while children.contains(where: \.isAlive) {
                try condition.withLock { try condition.notify() }
                notifies += 1
                usleep(UInt32.random(in: 0...(managed ? 20_000 : 2_000)))
            }
            for t in threads { XCTAssertTrue(try t.wait(60), "\(method): a waiting thread hung") }
            for p in children { try joinOrKill(p) }
            XCTAssertEqual(children.map(\.exitCode), [0, 0, 0], "\(method)")
            let total = notified.value + timedOut.value
            XCTAssertEqual(total, 5 * rounds, "\(method)")
            print("\(method) managed=\(managed): \(notified.value) notified, \(timedOut.value) timed out, \(notifies) notifies")
            XCTAssertEqual(try condition.waiterCount, 0, "\(method): check_invariant (ghost waiters)")
            // A new waiter, then one notify: it must wake (no notify spent on a ghost).
            let sleeping = try Multiprocessing.Semaphore(value: 0), woken = try Multiprocessing.Semaphore(value: 0)
            let late = try started(WaitOnCondition(condition: condition, sleeping: sleeping, woken: woken, timeout: 20), daemon: true, method)
            XCTAssertTrue(sleeping.acquire(timeout: 30))
            XCTAssertTrue(eventually { (try? condition.waiterCount) == 1 }, "\(method): the late waiter is not waiting")
            try condition.withLock { try condition.notify() }
            XCTAssertTrue(woken.acquire(timeout: 5), "\(method): the notify did not wake the late waiter")
            try joinOrKill(late)
        }
    }
}
