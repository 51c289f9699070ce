import Dispatch
import XCTest

@testable import Multiprocessing

#if canImport(Glibc)
import Glibc
#endif

/// A `Process` target: connects to the manager, says so, and on `go` takes an item from a
/// manager queue, waiting for ever.
struct TakeFromManagerQueue: ParallelFunction {
    var queue: QueueProxy<Int>
    var connected: Event
    var go: Event
    func callAsFunction(_: Void) throws {
        _ = try queue.count()
        connected.set()
        guard go.wait(timeout: 30) else { return }
        _ = try queue.get()
    }
}

/// A manager that stops answering (its process stopped, or overloaded): every call with a
/// timeout returns in time, and what an answer nobody received would have handed over stays
/// with the manager (`ManagerConnection`, `ManagerServer.undoUndelivered`).
final class ManagerUndeliveredAnswerTests: TimeLimitedTestCase {
    /// Runs `body` on another thread; fails if it does not return within `seconds`.
    private func returnsWithin<T: Sendable>(_ seconds: Double, _ what: String, _ body: @escaping @Sendable () throws -> T) -> Result<T, any Error>? {
        let done = DispatchSemaphore(value: 0)
        nonisolated(unsafe) var outcome: Result<T, any Error>?
        Thread.detachNewThread {
            outcome = Result { try body() }
            done.signal()
        }
        guard done.wait(timeout: .now() + seconds) == .success else {
            XCTFail("\(what) did not return within \(seconds) s")
            return nil
        }
        return outcome
    }

    private func assertTimedOut<T>(_ result: Result<T, any Error>?, _ what: String) {
        guard let result else { return }
        switch result {
        case .success(let value): XCTFail("\(what) returned \(value) from a stopped manager")
        case .failure(let error): XCTAssertEqual((error as? ManagerError)?.code, .timedOut, "\(what): \(error)")
        }
    }

    func testCallsWithATimeoutReturnInTimeFromAStoppedManagerAndNothingTheyWouldHaveTakenIsLost() throws {
        let manager = try Manager()
        defer { manager.shutdown() }
        let queue = try manager.queue(of: Int.self)
        let lock = try manager.lock()
        let units = try manager.semaphore(value: 1)
        let scores = try manager.dict(String.self, Int.self)
        try queue.put(42)
        try scores.set("kept", 1)
        var stopped = false
        defer { if stopped { kill(manager.serverPID, SIGCONT) } }
        func stop() {
            XCTAssertEqual(kill(manager.serverPID, SIGSTOP), 0)
            stopped = true
        }
        func resume() throws {
            XCTAssertEqual(kill(manager.serverPID, SIGCONT), 0)
            stopped = false
            _ = try scores.count() // a healthy connection again
        }

        // Each call sends its request on a healthy connection to the stopped manager, gets no
        // answer, and gives up after the answer floor.
        stop()
        let started = monotonicNanoseconds()
        assertTimedOut(returnsWithin(10, "queue.get(timeout: 0.2)") { try queue.get(timeout: 0.2) }, "queue.get")
        let elapsed = Double(monotonicNanoseconds() - started) / 1e9
        XCTAssertGreaterThanOrEqual(elapsed, 0.9, "gave up before the answer floor")
        XCTAssertLessThan(elapsed, 5, "took far longer than the answer floor")
        // A new connection to the stopped manager is not answered either.
        assertTimedOut(returnsWithin(10, "queue.put(timeout: 0.2)") { try queue.put(7, timeout: 0.2) }, "a new connection")
        try resume()
        stop()
        assertTimedOut(returnsWithin(10, "lock.acquire(timeout: 0.2)") { try lock.acquire(timeout: 0.2) }, "lock.acquire")
        try resume()
        stop()
        assertTimedOut(returnsWithin(10, "units.acquire(blocking: false)") { try units.acquire(blocking: false) }, "semaphore")
        try resume()

        // A call without a timeout waits for the manager (as Python's); a call with one, made
        // meanwhile by another thread of this process, still returns in time.
        let go = try manager.event()
        stop()
        let patient = DispatchSemaphore(value: 0)
        nonisolated(unsafe) var patientValue: Int?
        Thread.detachNewThread {
            patientValue = try? scores.get("kept")
            patient.signal()
        }
        usleep(100_000)
        assertTimedOut(returnsWithin(10, "an event's wait while another call waits") { try go.wait(timeout: 0.2) }, "turn")
        XCTAssertEqual(patient.wait(timeout: .now() + 0.2), .timedOut, "a call without a timeout gave up")
        try resume()
        XCTAssertEqual(patient.wait(timeout: .now() + 10), .success, "the patient call did not finish once the manager ran again")
        XCTAssertEqual(patientValue, 1)

        // The manager carried out the requests it had read, could not answer them, and gave
        // back what they took.
        XCTAssertEqual(try queue.get(timeout: 5), 42, "the queue's item was lost")

        // A client that dies waiting for its answer: the manager cannot send it, and gives
        // back what it took.
        try queue.put(43)
        let connected = try Event(), takeNow = try Event()
        let taker = Multiprocessing.Process(
            target: TakeFromManagerQueue(queue: queue, connected: connected, go: takeNow), startMethod: .fork)
        try taker.start()
        XCTAssertTrue(connected.wait(timeout: 30))
        stop()
        takeNow.set()
        usleep(300_000) // its request sent; the stopped manager reads it later
        try taker.kill()
        XCTAssertTrue(try taker.join(timeout: 10))
        try resume()
        XCTAssertEqual(try queue.get(timeout: 5), 43, "the item taken for the killed process was lost")
        XCTAssertFalse(try lock.isLocked(), "the lock stayed taken")
        XCTAssertEqual(try units.value(), 1, "the semaphore's unit was lost")
    }

    // The rules, request by request (no process).

    private var objects: [UInt64: ManagerServer.Object] = [:]
    private var nextID: UInt64 = 1

    /// Runs one request; returns it and its answer frame.
    private func ask(_ operation: ManagerOperation, _ id: UInt64, _ arguments: (inout WireWriter) -> Void = { _ in })
        -> (request: [UInt8], answer: [UInt8])
    {
        var request = WireWriter()
        request.write(operation.rawValue)
        request.write(id)
        arguments(&request)
        let answer = ManagerFrame.make { _ = ManagerServer.handle(request.bytes, objects: &objects, nextID: &nextID, into: &$0) }
        return (request.bytes, answer)
    }

    private func undo(_ exchange: (request: [UInt8], answer: [UInt8])) {
        ManagerServer.undoUndelivered(
            request: exchange.request, reply: Array(exchange.answer.dropFirst(ManagerFrame.headerSize)), objects: &objects)
    }

    private func created(_ operation: ManagerOperation, _ arguments: (inout WireWriter) -> Void = { _ in }) -> UInt64 {
        let id = nextID
        _ = ask(operation, 0, arguments)
        return id
    }

    private func encoded(_ value: Int) -> (inout WireWriter) -> Void {
        { writer in (try! Wire.encode(value)).withUnsafeBytes { writer.writeLengthPrefixed($0) } }
    }

    func testAnUndeliveredAnswerGivesBackWhatItHandedOver() throws {
        let queue = created(.createQueue) { $0.write(UInt64(0)) }
        _ = ask(.queuePut, queue, encoded(1))
        _ = ask(.queuePut, queue, encoded(2))
        undo(ask(.queueGet, queue))
        let first = ask(.queueGet, queue).answer
        XCTAssertEqual(try ProxyCall.readEncoded(Int.self, Array(first[5...])), 1, "the item did not go back to the front")

        let lock = created(.createLock)
        undo(ask(.lockAcquire, lock))
        XCTAssertEqual(Array(ask(.lockIsLocked, lock).answer[5...]), [0])

        let rlock = created(.createRLock)
        _ = ask(.rlockAcquire, rlock) { $0.write(UInt64(7)) }
        undo(ask(.rlockAcquire, rlock) { $0.write(UInt64(7)) })
        XCTAssertEqual(Array(ask(.rlockState, rlock) { $0.write(UInt64(7)) }.answer[5...]), [2, 1, 0, 0, 0, 0, 0, 0, 0])

        let semaphore = created(.createSemaphore) {
            $0.write(UInt64(1)); $0.write(UInt8(0))
        }
        undo(ask(.semaphoreAcquire, semaphore))
        XCTAssertEqual(try ProxyCall.readCount(Array(ask(.semaphoreValue, semaphore).answer[5...])), 1)

        let dict = created(.createDict)
        let key: (inout WireWriter) -> Void = { writer in (try! Wire.encode("k")).withUnsafeBytes { writer.writeLengthPrefixed($0) } }
        _ = ask(.dictSet, dict) { writer in
            key(&writer)
            self.encoded(5)(&writer)
        }
        undo(ask(.dictPop, dict, key))
        XCTAssertEqual(try ProxyCall.readEncoded(Int.self, Array(ask(.dictGet, dict, key).answer[5...])), 5, "the popped entry is gone")

        let list = created(.createList)
        for i in 0..<3 { _ = ask(.listAppend, list, encoded(i)) }
        undo(ask(.listRemove, list) { $0.write(Int64(-2)) })
        let items = ask(.listItems, list).answer
        XCTAssertEqual(try ProxyCall.readCount(Array(items[5...])), 3, "the removed element did not come back")

        // A condition waiter that never learnt it waits is deregistered and holds its lock again.
        let conditionLock = created(.createRLock)
        let condition = created(.createCondition) { $0.write(conditionLock) }
        _ = ask(.rlockAcquire, conditionLock) { $0.write(UInt64(9)) }
        undo(ask(.conditionWait, condition) { $0.write(UInt64(9)) })
        XCTAssertEqual(try ProxyCall.readCount(Array(ask(.conditionWaiters, condition).answer[5...])), 0)
        XCTAssertEqual(ask(.rlockState, conditionLock) { $0.write(UInt64(9)) }.answer[5], 2)

        let set = created(.createSet)
        _ = ask(.setInsert, set, encoded(8))
        undo(ask(.setPop, set))
        XCTAssertEqual(try ProxyCall.readCount(Array(ask(.setCount, set).answer[5...])), 1, "the popped element is gone")

        // A refused request handed nothing over: nothing to give back.
        let empty = created(.createQueue) { $0.write(UInt64(0)) }
        undo(ask(.queueGet, empty))
        XCTAssertEqual(try ProxyCall.readCount(Array(ask(.queueCount, empty).answer[5...])), 0)
    }
}
