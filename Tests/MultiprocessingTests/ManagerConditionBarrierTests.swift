import XCTest

@testable import Multiprocessing

#if canImport(Glibc)
import Glibc
#endif

/// The manager's condition and barrier as its server runs them, request by request through
/// `ManagerServer.handle` (no process, no socket): the rules in milliseconds.
final class ManagerConditionBarrierTests: XCTestCase {
    private var objects: [UInt64: ManagerServer.Object] = [:]
    private var nextID: UInt64 = 1

    /// Sends one request; returns the status and the reply's bytes.
    @discardableResult
    private func ask(_ operation: ManagerOperation, _ id: UInt64 = 0, _ arguments: (inout WireWriter) -> Void = { _ in })
        -> (ManagerStatus, [UInt8])
    {
        var request = WireWriter()
        request.write(operation.rawValue)
        request.write(id)
        arguments(&request)
        var reply = WireWriter()
        _ = ManagerServer.handle(request.bytes, objects: &objects, nextID: &nextID, into: &reply)
        return (ManagerStatus(rawValue: reply.bytes[0])!, Array(reply.bytes.dropFirst()))
    }

    private func number(_ bytes: [UInt8]) -> UInt64 {
        bytes.withUnsafeBytes { raw in
            var reader = WireReader(raw)
            return (try? reader.read(UInt64.self)) ?? .max
        }
    }

    private func create(_ operation: ManagerOperation, _ arguments: (inout WireWriter) -> Void = { _ in }) -> UInt64 {
        let (status, reply) = ask(operation, 0, arguments)
        XCTAssertEqual(status, .ok)
        return number(reply)
    }

    private func rlockState(_ lock: UInt64, _ caller: UInt64) -> (UInt8, UInt64) {
        let reply = ask(.rlockState, lock) { $0.write(caller) }.1
        return (reply[0], number(Array(reply.dropFirst())))
    }

    private func wait(_ condition: UInt64, _ caller: UInt64) -> UInt64? {
        let (status, reply) = ask(.conditionWait, condition) { $0.write(caller) }
        return status == .ok ? number(reply) : nil
    }

    /// nil while the waiter must ask again; else whether it was notified.
    private func resume(_ condition: UInt64, _ caller: UInt64, _ ticket: UInt64, givingUp: Bool = false) -> Bool? {
        let (status, reply) = ask(.conditionResume, condition) {
            $0.write(caller)
            $0.write(ticket)
            $0.write(UInt8(givingUp ? 1 : 0))
        }
        return status == .ok ? reply[0] == 1 : nil
    }

    private func notify(_ condition: UInt64, _ caller: UInt64, _ n: UInt64) -> UInt64? {
        let (status, reply) = ask(.conditionNotify, condition) {
            $0.write(caller)
            $0.write(n)
        }
        return status == .ok ? number(reply) : nil
    }

    func testAWaitReleasesEveryLevelAndAResumeTakesThemBackOnceNotified() {
        let lock = create(.createRLock)
        let condition = create(.createCondition) { $0.write(lock) }
        let (a, b, c) = (UInt64(11), UInt64(22), UInt64(33))
        XCTAssertNil(wait(condition, a), "a wait without the lock is refused")
        XCTAssertEqual(ask(.rlockAcquire, lock) { $0.write(a) }.0, .ok)
        XCTAssertEqual(ask(.rlockAcquire, lock) { $0.write(a) }.0, .ok)
        guard let first = wait(condition, a) else { return XCTFail("a wait holding the lock was refused") }
        XCTAssertEqual(rlockState(lock, a).0, 0, "the wait left the lock held")
        XCTAssertEqual(ask(.rlockAcquire, lock) { $0.write(c) }.0, .ok)
        guard let second = wait(condition, c) else { return XCTFail("second wait refused") }
        XCTAssertEqual(number(ask(.conditionWaiters, condition).1), 2)
        XCTAssertNil(resume(condition, a, first), "resumed without a notify")
        XCTAssertNil(notify(condition, b, 1), "a notify without the lock is accepted")
        XCTAssertEqual(ask(.rlockAcquire, lock) { $0.write(b) }.0, .ok)
        XCTAssertEqual(notify(condition, b, 1), 1)
        XCTAssertEqual(number(ask(.conditionWaiters, condition).1), 1)
        XCTAssertNil(resume(condition, a, first), "resumed while the notifier holds the lock")
        XCTAssertNil(resume(condition, c, second), "the second waiter was woken by notify(1)")
        XCTAssertEqual(ask(.rlockRelease, lock) { $0.write(b) }.0, .ok)
        XCTAssertEqual(resume(condition, a, first), true)
        XCTAssertEqual(rlockState(lock, a).0, 2, "the waiter does not hold the lock after its wait")
        XCTAssertEqual(rlockState(lock, a).1, 2, "the waiter got back a different number of levels")
        XCTAssertNil(resume(condition, a, first), "a ticket used twice")
        XCTAssertEqual(ask(.rlockRelease, lock) { $0.write(a) }.0, .ok)
        XCTAssertEqual(ask(.rlockRelease, lock) { $0.write(a) }.0, .ok)

        // The second waiter gives up (its timeout): not notified, lock back, never woken later.
        XCTAssertEqual(resume(condition, c, second, givingUp: true), false)
        XCTAssertEqual(rlockState(lock, c).0, 2)
        XCTAssertEqual(number(ask(.conditionWaiters, condition).1), 0)
        XCTAssertEqual(notify(condition, c, 5), 0, "a notify reached a waiter that gave up")
        XCTAssertEqual(ask(.rlockRelease, lock) { $0.write(c) }.0, .ok)
    }

    func testAWaiterNotifiedBeforeItGaveUpCountsAsNotifiedAndAPlainLockWorksToo() {
        let lock = create(.createLock)
        let condition = create(.createCondition) { $0.write(lock) }
        XCTAssertEqual(ask(.lockAcquire, lock).0, .ok)
        guard let ticket = wait(condition, 1) else { return XCTFail("wait refused") }
        XCTAssertEqual(ask(.lockIsLocked, lock).1, [0], "the plain lock stayed held")
        XCTAssertEqual(ask(.lockAcquire, lock).0, .ok)
        XCTAssertEqual(notify(condition, 2, 0), 0, "notify(0) woke someone")
        XCTAssertEqual(notify(condition, 2, .max), 1)
        XCTAssertNil(resume(condition, 1, ticket, givingUp: true), "took a held plain lock")
        XCTAssertEqual(ask(.lockRelease, lock).0, .ok)
        XCTAssertEqual(resume(condition, 1, ticket, givingUp: true), true)
        XCTAssertEqual(ask(.lockIsLocked, lock).1, [1])
        XCTAssertEqual(ask(.createCondition) { $0.write(UInt64(999)) }.0, .invalid, "a condition over no lock")
        XCTAssertEqual(
            ask(.conditionResume, condition) {
                $0.write(UInt64(1)); $0.write(UInt64(77)); $0.write(UInt8(1))
            }.0, .invalid)
    }

    private func arrive(_ barrier: UInt64) -> (kind: UInt8, pass: UInt64, index: UInt64)? {
        let (status, reply) = ask(.barrierArrive, barrier)
        guard status == .ok else { return nil }
        if reply[0] == 2 { return (2, 0, 0) }
        let rest = Array(reply.dropFirst())
        return (reply[0], number(rest), number(Array(rest.dropFirst(8))))
    }

    private func look(_ barrier: UInt64, _ pass: UInt64, _ operation: ManagerOperation = .barrierLook, ok: UInt8? = nil) -> UInt8 {
        ask(operation, barrier) {
            $0.write(pass)
            if let ok { $0.write(ok) }
        }.1[0]
    }

    func testABarrierOpensWhenTheLastArrivesAndBreaksOnTimeoutAbortAndReset() {
        let barrier = create(.createBarrier) {
            $0.write(UInt64(3)); $0.write(UInt8(0))
        }
        let a = arrive(barrier)!, b = arrive(barrier)!
        XCTAssertEqual([a.index, b.index], [0, 1])
        XCTAssertEqual([a.kind, b.kind], [0, 0])
        XCTAssertEqual(look(barrier, a.pass), 0, "opened before the last party")
        XCTAssertEqual(number(ask(.barrierState, barrier).1), 2)
        let c = arrive(barrier)!
        XCTAssertEqual(c.kind, 1)
        XCTAssertEqual(c.index, 2)
        XCTAssertEqual(look(barrier, a.pass), 1)
        XCTAssertEqual(number(ask(.barrierState, barrier).1), 0)

        // A timeout breaks the pass for every party, and the barrier until reset.
        let d = arrive(barrier)!
        XCTAssertEqual(d.pass, a.pass + 1)
        XCTAssertEqual(look(barrier, d.pass, .barrierGiveUp), 2)
        XCTAssertEqual(arrive(barrier)?.kind, 2)
        XCTAssertEqual(ask(.barrierState, barrier).1.last, 1)
        XCTAssertEqual(ask(.barrierReset, barrier).0, .ok)
        XCTAssertEqual(ask(.barrierState, barrier).1.last, 0)
        XCTAssertEqual(look(barrier, d.pass), 2, "the broken pass reads as opened after the reset")

        // Reset with parties waiting: they see their pass broken; the barrier is whole.
        let e = arrive(barrier)!
        XCTAssertEqual(e.index, 0)
        XCTAssertEqual(ask(.barrierReset, barrier).0, .ok)
        XCTAssertEqual(look(barrier, e.pass), 2)
        XCTAssertEqual(arrive(barrier)?.kind, 0)
        XCTAssertEqual(ask(.barrierAbort, barrier).0, .ok)
        XCTAssertEqual(arrive(barrier)?.kind, 2)
        XCTAssertEqual(
            ask(.createBarrier) {
                $0.write(UInt64(0)); $0.write(UInt8(0))
            }.0, .invalid, "a barrier of 0 parties")
    }

    func testTheActionRunsBeforeThePassOpensAndAFailingOneBreaksIt() {
        let barrier = create(.createBarrier) {
            $0.write(UInt64(2)); $0.write(UInt8(1))
        }
        let a = arrive(barrier)!, b = arrive(barrier)!
        XCTAssertEqual(b.kind, 1)
        XCTAssertEqual(look(barrier, a.pass), 0, "opened before the action ran")
        XCTAssertNil(arrive(barrier), "a party of the next pass arrived while the action runs")
        XCTAssertEqual(look(barrier, b.pass, .barrierActionEnded, ok: 1), 1)
        XCTAssertEqual(look(barrier, a.pass), 1)
        let c = arrive(barrier)!, d = arrive(barrier)!
        XCTAssertEqual(look(barrier, d.pass, .barrierActionEnded, ok: 0), 2)
        XCTAssertEqual(look(barrier, c.pass), 2)
        XCTAssertEqual(arrive(barrier)?.kind, 2)
    }
}
