import Wire
import XCTest

@testable import Multiprocessing

/// The served objects' logic (rank 0's object service under mpirun, ARCHITECTURE.md §8)
/// driven directly, without MPI: each kind's `attempt`, and the registry's ids, handle
/// counts, parked requests and wire form.
final class ServedObjectTests: XCTestCase {
    private let rank1 = Requester(rank: 1)
    /// A second process hosted by rank 1: another owner.
    private let rank1Local = Requester(rank: 1, local: 1)
    private let rank2 = Requester(rank: 2)

    private func run<S: ServedState>(_ state: S, _ request: S.Request, _ requester: Requester) -> ServedOutcome<S.Reply> {
        var request = request
        return state.attempt(&request, from: requester)
    }

    private func reply<S: ServedState>(
        _ state: S, _ request: S.Request, _ requester: Requester,
        file: StaticString = #filePath, line: UInt = #line
    ) -> S.Reply? {
        guard case .reply(let reply) = run(state, request, requester) else {
            XCTFail("parked, expected a reply", file: file, line: line)
            return nil
        }
        return reply
    }

    private func parks<S: ServedState>(_ state: S, _ request: inout S.Request, _ requester: Requester) -> Bool {
        if case .park = state.attempt(&request, from: requester) { return true }
        return false
    }

    // MARK: locks

    func testLockIsOwnedPerRequesterIncludingLocalWorkersOfOneRank() {
        let lock = ServedLock(recursive: false)
        XCTAssertEqual(reply(lock, .acquire, rank1), .done)
        var other = ServedLock.Request.acquire
        XCTAssertTrue(parks(lock, &other, rank1Local), "a local worker of the same rank is another owner")
        XCTAssertEqual(reply(lock, .release, rank1Local), .notHeld)
        XCTAssertEqual(reply(lock, .state, rank1), .state(locked: true, mine: true))
        XCTAssertEqual(reply(lock, .state, rank1Local), .state(locked: true, mine: false))
        XCTAssertEqual(reply(lock, .acquire, rank1), .alreadyHeld)
        XCTAssertEqual(reply(lock, .release, rank1), .done)
        XCTAssertEqual(reply(lock, other, rank1Local), .done)
        XCTAssertEqual(lock.owner, rank1Local)
        XCTAssertEqual(lock.expire(.acquire, from: rank2), .timedOut)
    }

    /// A holder that ends (its rank reported it) lets go of the lock, however deep an RLock's
    /// hold: the next acquirer gets it and is told, once; an end of another process changes
    /// nothing, and rank 0's threads are never taken for ended processes.
    func testALockWhoseHolderEndedIsTheNextAcquirersAndSaysSo() {
        for recursive in [false, true] {
            let lock = ServedLock(recursive: recursive)
            XCTAssertEqual(reply(lock, .acquire, rank1Local), .done)
            if recursive { XCTAssertEqual(reply(lock, .acquire, rank1Local), .done) }
            var waiting = ServedLock.Request.acquire
            XCTAssertTrue(parks(lock, &waiting, rank2))
            XCTAssertFalse(lock.processesEnded { $0 == rank2.rank }, "another process ended")
            XCTAssertFalse(lock.processesEnded { $0 == rank1.rank && false })
            XCTAssertTrue(lock.processesEnded { $0 == rank1Local.rank })
            XCTAssertNil(lock.owner)
            XCTAssertEqual(reply(lock, waiting, rank2), .doneFromDeadOwner)
            XCTAssertEqual(reply(lock, .release, rank2), .done)
            XCTAssertEqual(reply(lock, .acquire, rank2), .done, "told once")
            let thread = Requester.currentThread
            XCTAssertEqual(reply(lock, .release, rank2), .done)
            XCTAssertEqual(reply(lock, .acquire, thread), .done)
            XCTAssertFalse(lock.processesEnded { _ in true }, "a thread of rank 0 is no ended process")
            XCTAssertEqual(lock.owner, thread)
        }
        var writer = WireWriter()
        ServedLock.encode(.doneFromDeadOwner, into: &writer)
        writer.bytes.withUnsafeBytes { raw in
            var reader = WireReader(raw)
            XCTAssertEqual(try? ServedLock.decodeReply(&reader), .doneFromDeadOwner)
        }
    }

    func testRLockCountsItsOwnersAcquisitions() {
        let lock = ServedLock(recursive: true)
        for _ in 0..<3 { XCTAssertEqual(reply(lock, .acquire, rank2), .done) }
        XCTAssertEqual(lock.depth, 3)
        var other = ServedLock.Request.acquire
        XCTAssertTrue(parks(lock, &other, rank1))
        for _ in 0..<2 { XCTAssertEqual(reply(lock, .release, rank2), .done) }
        XCTAssertTrue(parks(lock, &other, rank1), "still held once")
        XCTAssertEqual(reply(lock, .release, rank2), .done)
        XCTAssertEqual(reply(lock, .release, rank2), .notHeld)
        XCTAssertEqual(reply(lock, other, rank1), .done)
    }

    // MARK: semaphores

    func testSemaphoreCountsAndBound() {
        let semaphore = ServedSemaphore(value: 2, bounded: false)
        XCTAssertEqual(reply(semaphore, .acquire, rank1), .done)
        XCTAssertEqual(reply(semaphore, .acquire, rank2), .done)
        var third = ServedSemaphore.Request.acquire
        XCTAssertTrue(parks(semaphore, &third, rank1))
        XCTAssertEqual(reply(semaphore, .release(3), rank2), .done)
        XCTAssertEqual(reply(semaphore, .value, rank2), .value(3))
        XCTAssertEqual(reply(semaphore, third, rank1), .done)
        XCTAssertEqual(reply(semaphore, .value, rank2), .value(2))

        let bounded = ServedSemaphore(value: 1, bounded: true)
        XCTAssertEqual(reply(bounded, .release(1), rank1), .tooManyReleases(bound: 1))
        XCTAssertEqual(reply(bounded, .acquire, rank1), .done)
        XCTAssertEqual(reply(bounded, .release(1), rank2), .done)
        XCTAssertEqual(reply(bounded, .value, rank2), .value(1))
    }

    // MARK: conditions

    func testConditionNotifyWakesAtMostNOldestFirst() {
        let lock = ServedLock(recursive: false)
        let condition = ServedCondition(lock: lock)
        let waiters = [rank1, rank1Local, rank2]
        var waits: [ServedCondition.Request] = []
        for waiter in waiters {
            XCTAssertEqual(reply(lock, .acquire, waiter), .done)
            var wait = ServedCondition.Request.wait
            XCTAssertTrue(parks(condition, &wait, waiter))
            XCTAssertNil(lock.owner, "a wait releases the lock")
            waits.append(wait)
        }
        XCTAssertEqual(condition.waiters.count, 3)
        let notifier = Requester(rank: 3)
        XCTAssertEqual(reply(condition, .notify(2), notifier), .notHeld, "notify without the lock")
        XCTAssertEqual(reply(lock, .acquire, notifier), .done)
        XCTAssertEqual(reply(condition, .notify(2), notifier), .done)
        XCTAssertEqual(reply(condition, waits[0], rank1), .woken(true))
        XCTAssertEqual(reply(condition, waits[1], rank1Local), .woken(true))
        XCTAssertTrue(parks(condition, &waits[2], rank2), "only two were notified")
        XCTAssertEqual(condition.expire(waits[2], from: rank2), .woken(false))
        XCTAssertEqual(condition.waiters.count, 0)
        XCTAssertEqual(reply(condition, .notify(5), notifier), .done, "a notify with no waiter is fine")
        XCTAssertEqual(reply(condition, .wait, rank1), .notHeld, "wait without the lock")
    }

    // MARK: events

    func testEventSetClearAndAWaitThatSawASet() {
        let event = ServedEvent()
        XCTAssertEqual(reply(event, .isSet, rank1), .flag(false))
        var wait = ServedEvent.Request.wait
        XCTAssertTrue(parks(event, &wait, rank1))
        XCTAssertEqual(event.expire(wait, from: rank1), .flag(false))
        XCTAssertEqual(reply(event, .set, rank2), .done)
        XCTAssertEqual(reply(event, .clear, rank2), .done)
        XCTAssertEqual(reply(event, wait, rank1), .flag(true), "set then cleared while waiting: still woken")
        XCTAssertEqual(reply(event, .isSet, rank1), .flag(false))
        XCTAssertEqual(reply(event, .set, rank2), .done)
        XCTAssertEqual(reply(event, .wait, rank1), .flag(true))
    }

    // MARK: barriers

    func testBarrierGenerationsAbortAndReset() {
        let barrier = ServedBarrier(parties: 3, hasAction: false)
        for generation in 0..<2 {
            var first = ServedBarrier.Request.wait, second = ServedBarrier.Request.wait
            XCTAssertTrue(parks(barrier, &first, rank1))
            XCTAssertTrue(parks(barrier, &second, rank2))
            XCTAssertEqual(reply(barrier, .state, rank1), .state(broken: false, waiting: 2))
            XCTAssertEqual(reply(barrier, .wait, rank1Local), .passed(index: 2, actionPass: nil), "generation \(generation)")
            XCTAssertEqual(reply(barrier, first, rank1), .passed(index: 0, actionPass: nil))
            XCTAssertEqual(reply(barrier, second, rank2), .passed(index: 1, actionPass: nil))
        }
        var waiting = ServedBarrier.Request.wait
        XCTAssertTrue(parks(barrier, &waiting, rank1))
        XCTAssertEqual(reply(barrier, .abort, rank2), .done)
        XCTAssertEqual(reply(barrier, waiting, rank1), .broken)
        XCTAssertEqual(reply(barrier, .wait, rank2), .broken)
        XCTAssertEqual(reply(barrier, .reset, rank2), .done)
        var again = ServedBarrier.Request.wait
        XCTAssertTrue(parks(barrier, &again, rank1))
        XCTAssertEqual(barrier.expire(again, from: rank1), .broken, "a wait that times out breaks the barrier")
        XCTAssertEqual(reply(barrier, .state, rank1), .state(broken: true, waiting: 0))
    }

    func testBarrierActionHoldsThePassUntilItsOutcome() {
        let barrier = ServedBarrier(parties: 2, hasAction: true)
        var first = ServedBarrier.Request.wait
        XCTAssertTrue(parks(barrier, &first, rank1))
        guard case .passed(1, let pass?) = reply(barrier, .wait, rank2) else { return XCTFail("the last party runs the action") }
        XCTAssertTrue(parks(barrier, &first, rank1), "the pass waits for the action")
        XCTAssertEqual(reply(barrier, .actionDone(pass: pass, succeeded: true), rank2), .done)
        XCTAssertEqual(reply(barrier, first, rank1), .passed(index: 0, actionPass: nil))
        // A failed action breaks the barrier.
        var next = ServedBarrier.Request.wait
        XCTAssertTrue(parks(barrier, &next, rank1))
        guard case .passed(_, let failing?) = reply(barrier, .wait, rank2) else { return XCTFail("no action pass") }
        XCTAssertEqual(reply(barrier, .actionDone(pass: failing, succeeded: false), rank2), .broken)
        XCTAssertEqual(reply(barrier, next, rank1), .broken)
    }

    // MARK: queues

    func testQueueBoundsParkedPuttersAndJoin() {
        let queue = ServedQueue(maxSize: 1)
        XCTAssertEqual(reply(queue, .put([1]), rank1), .done)
        var put = ServedQueue.Request.put([2])
        XCTAssertTrue(parks(queue, &put, rank2), "full")
        XCTAssertEqual(queue.expire(put, from: rank2), .timedOut)
        XCTAssertEqual(reply(queue, .get, rank1), .item([1]))
        XCTAssertEqual(reply(queue, put, rank2), .done)
        XCTAssertEqual(reply(queue, .count, rank1), .number(1))
        var join = ServedQueue.Request.join
        XCTAssertTrue(parks(queue, &join, rank1))
        XCTAssertEqual(reply(queue, .unfinished, rank1), .number(2))
        XCTAssertEqual(reply(queue, .taskDone, rank1), .done)
        XCTAssertEqual(reply(queue, .taskDone, rank1), .done)
        XCTAssertEqual(reply(queue, .taskDone, rank1), .tooManyTaskDone)
        XCTAssertEqual(reply(queue, join, rank1), .done)
    }

    // MARK: values

    func testValueReadWriteAndRanges() {
        let value = ServedValue(bytes: [0, 0, 0, 0])
        XCTAssertEqual(reply(value, .write([1, 2, 3, 4]), rank1), .done)
        XCTAssertEqual(reply(value, .read, rank2), .bytes([1, 2, 3, 4]))
        guard case .refused = reply(value, .write([1]), rank1) else { return XCTFail("another size is refused") }
        XCTAssertEqual(reply(value, .writeRange(offset: 2, [9, 9]), rank1), .done)
        XCTAssertEqual(reply(value, .readRange(offset: 1, count: 3), rank2), .bytes([2, 9, 9]))
        guard case .refused = reply(value, .readRange(offset: 3, count: 2), rank1) else { return XCTFail("out of range") }
        guard case .refused = reply(value, .writeRange(offset: -1, [0]), rank1) else { return XCTFail("out of range") }
    }

    // MARK: pipes

    func testPipeSendReceiveCloseAndHandlesInTransit() {
        let pipe = ServedPipe()
        func request(_ operation: ServedPipe.Operation, _ end: Int, _ bytes: [UInt8] = []) -> ServedPipe.Request {
            ServedPipe.Request(operation: operation, end: end, bytes: bytes)
        }
        var receive = request(.receive, 1)
        XCTAssertTrue(parks(pipe, &receive, rank2))
        var poll = request(.poll, 1)
        XCTAssertTrue(parks(pipe, &poll, rank2))
        XCTAssertEqual(pipe.expire(poll, from: rank2), .readable(false))
        XCTAssertEqual(reply(pipe, request(.send, 0, [7]), rank1), .done)
        XCTAssertEqual(reply(pipe, poll, rank2), .readable(true))
        XCTAssertEqual(reply(pipe, receive, rank2), .message([7]))
        // End 0 travels in a message: counted until a copy adopts it.
        guard case .token(let token) = reply(pipe, request(.share, 0), rank1) else { return XCTFail("no token") }
        XCTAssertEqual(reply(pipe, request(.release, 0), rank1), .done, "the sender closes its handle")
        XCTAssertFalse(pipe.isClosed(0), "the copy in transit keeps end 0 open")
        var writer = WireWriter(capacity: 8)
        writer.write(token)
        XCTAssertEqual(reply(pipe, request(.adopt, 0, writer.bytes), rank2), .adopted(true))
        XCTAssertEqual(reply(pipe, request(.send, 0, [8]), rank2), .done)
        XCTAssertEqual(reply(pipe, request(.release, 0), rank2), .done)
        XCTAssertTrue(pipe.isClosed(0))
        XCTAssertTrue(pipe.keepsAlive, "end 1 is open")
        XCTAssertEqual(reply(pipe, request(.receive, 1), rank1), .message([8]), "messages sent before the close arrive")
        XCTAssertEqual(reply(pipe, request(.receive, 1), rank1), .endOfFile)
        XCTAssertEqual(reply(pipe, request(.send, 1, [1]), rank1), .brokenPipe)
        XCTAssertEqual(reply(pipe, request(.adopt, 0, writer.bytes), rank2), .adopted(false), "a late copy of a closed end")
        XCTAssertEqual(reply(pipe, request(.release, 1), rank1), .done)
        XCTAssertFalse(pipe.keepsAlive)
    }

    /// The handles a process adopted and never released (it was killed, crashed, or its pool
    /// closed) are released when its end is reported: its peer gets end-of-file, parked or not.
    func testPipeEndsAdoptedByAnEndedProcessAreClosed() {
        let pipe = ServedPipe()
        func request(_ operation: ServedPipe.Operation, _ end: Int, _ bytes: [UInt8] = []) -> ServedPipe.Request {
            ServedPipe.Request(operation: operation, end: end, bytes: bytes)
        }
        // End 1 goes to a local worker of rank 1 (twice: two copies), then the creator closes it.
        var tokens: [UInt64] = []
        for _ in 0..<2 {
            guard case .token(let token) = reply(pipe, request(.share, 1), rank2) else { return XCTFail("no token") }
            tokens.append(token)
        }
        XCTAssertEqual(reply(pipe, request(.release, 1), rank2), .done)
        for token in tokens {
            var writer = WireWriter(capacity: 8)
            writer.write(token)
            XCTAssertEqual(reply(pipe, request(.adopt, 1, writer.bytes), rank1Local), .adopted(true))
        }
        XCTAssertEqual(reply(pipe, request(.release, 1), rank1Local), .done, "one copy closed, one held")
        var receive = request(.receive, 0)
        XCTAssertTrue(parks(pipe, &receive, rank2))
        XCTAssertFalse(pipe.processesEnded { $0 == rank2.rank }, "another process ended")
        XCTAssertFalse(pipe.isClosed(1))
        XCTAssertTrue(pipe.processesEnded { $0 == rank1Local.rank })
        XCTAssertTrue(pipe.isClosed(1))
        XCTAssertEqual(reply(pipe, receive, rank2), .endOfFile)
        XCTAssertEqual(reply(pipe, request(.send, 0, [1]), rank2), .brokenPipe)
        XCTAssertFalse(pipe.processesEnded { $0 == rank1Local.rank }, "released once")
        XCTAssertFalse(pipe.processesEnded { _ in true }, "rank 0's threads hold no adopted handle here")
    }

    // MARK: the registry

    /// A worker's request as rank 0 receives it.
    private func remote<S: ServedState>(
        _: S.Type, _ id: UInt64, _ request: S.Request, local: UInt64 = 0, timeout: Double? = nil,
        counts: [(id: UInt64, delta: Int32)] = []
    ) -> [UInt8] {
        var writer = WireWriter(capacity: 32)
        S.encode(request, into: &writer)
        return MPIObjectProtocol.Request(local: local, counts: counts, kind: S.kind, id: id, timeout: timeout ?? -1)
            .encode(body: writer.bytes)
    }

    private func decode<S: ServedState>(_: S.Type, _ bytes: [UInt8], file: StaticString = #filePath, line: UInt = #line) -> (
        local: UInt64, reply: S.Reply?, failure: String?
    ) {
        do {
            let envelope = try MPIObjectProtocol.readReply(bytes)
            guard envelope.status == .ok else { return (envelope.local, nil, String(decoding: envelope.payload, as: UTF8.self)) }
            var reader = WireReader(envelope.payload.withUnsafeBytes { UnsafeRawBufferPointer($0) })
            return try envelope.payload.withUnsafeBytes { raw in
                reader = WireReader(raw)
                return (envelope.local, try S.decodeReply(&reader), nil)
            }
        } catch {
            XCTFail("unreadable reply: \(error)", file: file, line: line)
            return (0, nil, nil)
        }
    }

    private func send(_ registry: MPIObjectRegistry, _ bytes: [UInt8], from rank: Int) {
        bytes.withUnsafeBytes { registry.handle($0, from: rank) }
    }

    func testParkedGetterIsAnsweredByAPutWithItsLocalID() throws {
        let registry = MPIObjectRegistry()
        let woken = WakeCounter()
        registry.setWaker { woken.add() }
        let id = registry.add(ServedQueue(maxSize: 0))
        send(registry, remote(ServedQueue.self, id, .get, local: 3), from: 2)
        XCTAssertFalse(registry.hasReplies, "an empty queue parks the get")
        XCTAssertEqual(registry.parkedCount(id), 1)
        XCTAssertEqual(try registry.perform(id, ServedQueue.self, .put([42]), from: .currentThread, deadline: nil), .done)
        XCTAssertEqual(woken.count, 1, "the MPI thread is woken to send the answer")
        let replies = registry.takeReplies()
        XCTAssertEqual(replies.count, 1)
        XCTAssertEqual(replies.first?.rank, 2)
        let answer = decode(ServedQueue.self, replies[0].bytes)
        XCTAssertEqual(answer.local, 3, "the reply names the local worker that asked")
        XCTAssertEqual(answer.reply, .item([42]))
        XCTAssertEqual(registry.parkedCount(id), 0)
    }

    /// A reply its local worker never read comes back (`MPIObjectProtocol.undeliveredTag`):
    /// the queue's item goes back in front and a parked getter gets it; a semaphore's unit, a
    /// pipe's message and a manager queue's item go back too. Replies that handed nothing
    /// over, or were not `.ok`, change nothing.
    func testAnUnreadReplyGivesBackWhatItHandedOver() throws {
        let registry = MPIObjectRegistry()
        func undo(_ request: [UInt8], _ reply: [UInt8], from process: Int = 2) {
            request.withUnsafeBytes { request in reply.withUnsafeBytes { registry.undo(request: request, reply: $0, from: process) } }
        }
        let queue = registry.add(ServedQueue(maxSize: 0))
        XCTAssertEqual(try registry.perform(queue, ServedQueue.self, .put([1]), from: .currentThread, deadline: nil), .done)
        XCTAssertEqual(try registry.perform(queue, ServedQueue.self, .put([2]), from: .currentThread, deadline: nil), .done)
        let get = remote(ServedQueue.self, queue, .get, local: 7)
        send(registry, get, from: 2)
        let taken = registry.takeReplies()[0].bytes
        XCTAssertEqual(decode(ServedQueue.self, taken).reply, .item([1]))
        undo(get, taken)
        XCTAssertEqual(try registry.perform(queue, ServedQueue.self, .get, from: .currentThread, deadline: nil), .item([1]), "back in front")
        // A getter parked on the empty queue gets an item given back.
        send(registry, remote(ServedQueue.self, queue, .get, local: 8), from: 2)
        send(registry, remote(ServedQueue.self, queue, .get, local: 9), from: 3)
        let second = registry.takeReplies()[0].bytes
        XCTAssertEqual(decode(ServedQueue.self, second).reply, .item([2]))
        XCTAssertEqual(registry.parkedCount(queue), 1)
        undo(remote(ServedQueue.self, queue, .get, local: 8), second)
        let handedOn = registry.takeReplies()
        XCTAssertEqual(handedOn.count, 1)
        XCTAssertEqual(handedOn.first?.rank, 3)
        XCTAssertEqual(decode(ServedQueue.self, handedOn[0].bytes).reply, .item([2]))
        // Not `.ok`, or nothing handed over: nothing changes.
        undo(get, MPIObjectProtocol.failure(.failed, "x", local: 7))
        undo(remote(ServedQueue.self, queue, .count), MPIObjectRegistry.encode(ServedQueue.self, .number(0), local: 7))
        XCTAssertEqual(try registry.perform(queue, ServedQueue.self, .count, from: .currentThread, deadline: nil), .number(0))

        let semaphore = registry.add(ServedSemaphore(value: 1, bounded: false))
        let acquire = remote(ServedSemaphore.self, semaphore, .acquire)
        send(registry, acquire, from: 2)
        let unit = registry.takeReplies()[0].bytes
        XCTAssertEqual(decode(ServedSemaphore.self, unit).reply, .done)
        undo(acquire, unit)
        XCTAssertEqual(try registry.perform(semaphore, ServedSemaphore.self, .value, from: .currentThread, deadline: nil), .value(1))

        let pipe = registry.add(ServedPipe())
        XCTAssertEqual(
            try registry.perform(pipe, ServedPipe.self, .init(operation: .send, end: 0, bytes: [5]), from: .currentThread, deadline: nil),
            .done)
        let receive = remote(ServedPipe.self, pipe, .init(operation: .receive, end: 1))
        send(registry, receive, from: 2)
        let message = registry.takeReplies()[0].bytes
        XCTAssertEqual(decode(ServedPipe.self, message).reply, .message([5]))
        undo(receive, message)
        XCTAssertEqual(
            try registry.perform(pipe, ServedPipe.self, .init(operation: .receive, end: 1), from: .currentThread, deadline: nil),
            .message([5]))

        let manager = registry.add(ServedManager())
        func ask(_ operation: ManagerOperation, _ object: UInt64, _ arguments: [UInt8] = []) -> (request: [UInt8], reply: [UInt8]) {
            var writer = WireWriter()
            writer.write(operation.rawValue)
            writer.write(object)
            arguments.withUnsafeBytes { writer.writeRaw($0) }
            let request = remote(ServedManager.self, manager, .request(writer.bytes))
            send(registry, request, from: 2)
            return (request, registry.takeReplies()[0].bytes)
        }
        guard case .answer(let created) = decode(ServedManager.self, ask(.createQueue, 0, [0, 0, 0, 0, 0, 0, 0, 0]).reply).reply,
            created.first == ManagerStatus.ok.rawValue
        else { return XCTFail("no manager queue") }
        let managed: UInt64 = created.dropFirst().withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) }
        var item = WireWriter()
        item.writeLengthPrefixed([UInt8]([9]).withUnsafeBytes { $0 })
        _ = ask(.queuePut, managed, item.bytes)
        let managedGet = ask(.queueGet, managed)
        undo(managedGet.request, managedGet.reply)
        guard case .answer(let again) = decode(ServedManager.self, ask(.queueGet, managed).reply).reply else {
            return XCTFail("no answer")
        }
        XCTAssertEqual(Array(again), [ManagerStatus.ok.rawValue] + item.bytes, "the manager queue's item came back")
    }

    /// A process that ended is dropped: its parked request is answered `.failed` (its rank
    /// counts on one answer per request it relayed) and never served.
    func testAParkedRequestOfAnEndedProcessIsAnsweredFailed() {
        let registry = MPIObjectRegistry()
        let queue = registry.add(ServedQueue(maxSize: 0))
        let process = ObjectRequester.id(rank: 1, local: 0x0001_0003)
        send(registry, remote(ServedQueue.self, queue, .get), from: process)
        XCTAssertEqual(registry.parkedCount(queue), 1)
        registry.dropProcesses { $0 == process }
        let replies = registry.takeReplies()
        XCTAssertEqual(replies.map(\.rank), [process])
        XCTAssertEqual(decode(ServedQueue.self, replies[0].bytes).failure, MPIObjectRegistry.requesterEnded)
        XCTAssertEqual(registry.parkedCount(queue), 0)
    }

    /// A condition waiter whose process ended leaves the line: the next `notify(n: 1)` wakes
    /// a live waiter (the fault probe's `condkill`: it went to the dead one, and the live
    /// waiter slept to its timeout).
    func testADeadConditionWaiterLeavesTheLine() throws {
        let registry = MPIObjectRegistry()
        let lock = registry.add(ServedLock(recursive: false))
        let lockState = try registry.withState(lock, as: ServedLock.self) { $0 }
        let condition = registry.add(ServedCondition(lock: lockState))
        let dead = ObjectRequester.id(rank: 1, local: 0x0001_0001), live = ObjectRequester.id(rank: 1, local: 0x0001_0002)
        for process in [dead, live] {
            send(registry, remote(ServedLock.self, lock, .acquire), from: process)
            XCTAssertEqual(decode(ServedLock.self, registry.takeReplies()[0].bytes).reply, .done)
            send(registry, remote(ServedCondition.self, condition, .wait), from: process)
            XCTAssertFalse(registry.hasReplies, "the waiter parks")
        }
        registry.dropProcesses { $0 == dead }
        XCTAssertEqual(registry.takeReplies().map(\.rank), [dead], "the dead one's request is answered (failed)")
        XCTAssertEqual(try registry.perform(lock, ServedLock.self, .acquire, from: .currentThread, deadline: nil), .done)
        XCTAssertEqual(try registry.perform(condition, ServedCondition.self, .notify(1), from: .currentThread, deadline: nil), .done)
        let woken = registry.takeReplies()
        XCTAssertEqual(woken.map(\.rank), [live], "notify(1) went to the live waiter")
        XCTAssertEqual(woken.first.flatMap { decode(ServedCondition.self, $0.bytes).reply }, .woken(true))
    }

    func testTimeoutsOfParkedRequests() throws {
        let registry = MPIObjectRegistry()
        let id = registry.add(ServedQueue(maxSize: 0))
        send(registry, remote(ServedQueue.self, id, .get, timeout: 0), from: 1)
        XCTAssertEqual(decode(ServedQueue.self, registry.takeReplies()[0].bytes).reply, .timedOut, "timeout 0: no wait")
        send(registry, remote(ServedQueue.self, id, .get, timeout: 3600), from: 1)
        XCTAssertNotNil(registry.nextDeadline)
        registry.expire(now: monotonicNanoseconds())
        XCTAssertFalse(registry.hasReplies, "not due yet")
        registry.expire(now: .max)
        XCTAssertEqual(decode(ServedQueue.self, registry.takeReplies()[0].bytes).reply, .timedOut)
        XCTAssertNil(registry.nextDeadline)
        // Rank 0's own wait ends at its deadline.
        let start = monotonicNanoseconds()
        XCTAssertEqual(
            try registry.perform(
                id, ServedQueue.self, .get, from: .currentThread,
                deadline: start + 20_000_000), .timedOut)
        XCTAssertGreaterThanOrEqual(monotonicNanoseconds() - start, 20_000_000)
        XCTAssertEqual(registry.parkedCount(id), 0)
    }

    func testRank0ThreadWaitsForAWorkersPut() throws {
        let registry = MPIObjectRegistry()
        let id = registry.add(ServedQueue(maxSize: 0))
        let got = expectation(description: "rank 0's get")
        let thread = Thread {
            let item = try? registry.perform(id, ServedQueue.self, .get, from: .currentThread, deadline: deadline(after: 30))
            XCTAssertEqual(item, .item([5]))
            got.fulfill()
        }
        thread.start()
        let end = monotonicNanoseconds() + 30_000_000_000
        while registry.parkedCount(id) == 0, monotonicNanoseconds() < end { usleep(1000) }
        XCTAssertEqual(registry.parkedCount(id), 1)
        send(registry, remote(ServedQueue.self, id, .put([5])), from: 1)
        XCTAssertEqual(decode(ServedQueue.self, registry.takeReplies()[0].bytes).reply, .done)
        wait(for: [got], timeout: 30)
    }

    func testLocksOfTwoLocalWorkersOfOneRankThroughTheWire() {
        let registry = MPIObjectRegistry()
        let id = registry.add(ServedLock(recursive: false))
        send(registry, remote(ServedLock.self, id, .acquire, local: 1), from: 1)
        send(registry, remote(ServedLock.self, id, .acquire, local: 2), from: 1)
        var replies = registry.takeReplies()
        XCTAssertEqual(replies.count, 1, "the second local worker waits")
        XCTAssertEqual(decode(ServedLock.self, replies[0].bytes).local, 1)
        send(registry, remote(ServedLock.self, id, .release, local: 2), from: 1)
        XCTAssertEqual(decode(ServedLock.self, registry.takeReplies()[0].bytes).reply, .notHeld)
        send(registry, remote(ServedLock.self, id, .release, local: 1), from: 1)
        replies = registry.takeReplies()
        XCTAssertEqual(Set(replies.map { decode(ServedLock.self, $0.bytes).local }), [1, 2], "released, then taken by local 2")
        XCTAssertTrue(replies.allSatisfy { decode(ServedLock.self, $0.bytes).reply == .done })
    }

    func testHandleCountsFreeTheObjectAtZero() throws {
        let registry = MPIObjectRegistry()
        let baseline = registry.count
        let id = registry.add(ServedEvent())
        XCTAssertTrue(registry.retain(id))
        registry.release(id)
        XCTAssertTrue(registry.contains(id))
        registry.release(id)
        XCTAssertFalse(registry.contains(id), "the last handle freed it")
        XCTAssertEqual(registry.count, baseline)
        XCTAssertFalse(registry.retain(id), "a freed id stays unknown (ids are never reused)")
        XCTAssertThrowsError(try registry.perform(id, ServedEvent.self, .isSet, from: .currentThread, deadline: nil)) { error in
            XCTAssertEqual((error as? MPIObjectError)?.code, .notServed)
        }
        send(registry, remote(ServedEvent.self, id, .isSet), from: 1)
        XCTAssertNotNil(decode(ServedEvent.self, registry.takeReplies()[0].bytes).failure)
    }

    func testCountsTravelWithRequestsAndAParkedRequestKeepsItsObject() {
        let registry = MPIObjectRegistry()
        let id = registry.add(ServedQueue(maxSize: 0))
        // A worker decodes a copy (+1), its get parks; rank 0 drops its handle.
        send(registry, remote(ServedQueue.self, id, .get, counts: [(id, 1)]), from: 1)
        registry.release(id)
        XCTAssertTrue(registry.contains(id))
        // The worker drops its copy too, while its get still waits.
        send(
            registry, MPIObjectProtocol.Request(local: 0, counts: [(id, -1)], kind: .none, id: 0, timeout: -1).encode(body: []),
            from: 1)
        XCTAssertEqual(try? MPIObjectProtocol.readReply(registry.takeReplies()[0].bytes).status, .ok, "a count-only request is answered")
        XCTAssertTrue(registry.contains(id), "the parked get keeps it")
        registry.failParked("the pool ended")
        XCTAssertNotNil(decode(ServedQueue.self, registry.takeReplies()[0].bytes).failure)
        XCTAssertFalse(registry.contains(id), "freed once nothing waits on it")
    }

    func testAPipeIsFreedWhenBothEndsAreClosed() throws {
        let registry = MPIObjectRegistry()
        let id = registry.add(ServedPipe(), handles: 0)
        XCTAssertTrue(registry.contains(id))
        for end in [0, 1] {
            _ = try registry.perform(
                id, ServedPipe.self, ServedPipe.Request(operation: .release, end: end), from: .currentThread,
                deadline: nil)
        }
        XCTAssertFalse(registry.contains(id))
    }

    func testTenThousandShortLivedObjectsLeaveTheRegistryAsItWas() throws {
        let registry = MPIObjectRegistry()
        let baseline = registry.count
        for round in 0..<10_000 {
            let queue = registry.add(ServedQueue(maxSize: 0))
            let lock = registry.add(ServedLock(recursive: false))
            XCTAssertEqual(
                try registry.perform(
                    queue, ServedQueue.self, .put([UInt8(truncatingIfNeeded: round)]),
                    from: .currentThread, deadline: nil), .done)
            send(registry, remote(ServedLock.self, lock, .acquire, counts: [(lock, 1), (queue, 1)]), from: 1)
            send(registry, remote(ServedLock.self, lock, .release, counts: [(queue, -1)]), from: 1)
            send(
                registry, MPIObjectProtocol.Request(local: 0, counts: [(lock, -1)], kind: .none, id: 0, timeout: -1).encode(body: []),
                from: 1)
            registry.release(queue)
            registry.release(lock)
        }
        XCTAssertEqual(registry.takeReplies().count, 30_000)
        XCTAssertEqual(registry.count, baseline)
    }

    func testRequestOfAnotherVersionIsRefusedWithAReason() {
        let registry = MPIObjectRegistry()
        var bytes = remote(ServedQueue.self, registry.add(ServedQueue(maxSize: 0)), .count)
        bytes[0] = 1
        send(registry, bytes, from: 1)
        let failure = decode(ServedQueue.self, registry.takeReplies()[0].bytes).failure
        XCTAssertTrue(failure?.contains("same build") == true, failure ?? "no failure")
    }
}

private final class WakeCounter: @unchecked Sendable {
    private let lock = NSLock()
    private var value = 0
    func add() { lock.withLock { value += 1 } }
    var count: Int { lock.withLock { value } }
}

extension ServedObjectTests {
    /// A copy in transit is not a handle: the encoding pins the object until a copy is
    /// decoded (retained) or the pin ends.
    func testAnEncodedCopyKeepsItsObjectUntilDecodedOrThePinEnds() {
        let registry = MPIObjectRegistry()
        let id = registry.add(ServedQueue(maxSize: 0))
        registry.pin(id)
        registry.release(id)
        XCTAssertTrue(registry.contains(id), "pinned: a worker may still decode the copy")
        send(registry, MPIObjectProtocol.Request(local: 0, counts: [(id, 1)], kind: .none, id: 0, timeout: -1).encode(body: []), from: 1)
        send(registry, MPIObjectProtocol.Request(local: 0, counts: [(id, -1)], kind: .none, id: 0, timeout: -1).encode(body: []), from: 1)
        XCTAssertFalse(registry.contains(id), "decoded and dropped: freed")

        let never = registry.add(ServedLock(recursive: false))
        registry.pin(never)
        registry.release(never)
        registry.expire(now: monotonicNanoseconds())
        XCTAssertTrue(registry.contains(never))
        registry.expire(now: .max)
        XCTAssertFalse(registry.contains(never), "a copy nobody decoded keeps it only until the pin ends")
        XCTAssertEqual(registry.count, 0)
    }
}
