import Multiprocessing

#if canImport(Glibc)
import Glibc
#endif

/// The rank (or pid, locally) that runs a task.
func workerIdentity() -> Int {
    Int(getpid())
}

/// Puts `count` items `input * 1000 + i` into the queue; returns the worker's identity.
struct Produce: ParallelFunction {
    var queue: Queue<Int>
    var count: Int
    func callAsFunction(_ input: Int) throws -> Int {
        for i in 0..<count { try queue.put(input * 1000 + i) }
        return workerIdentity()
    }
}

/// Gets `count` items a producer puts later (the queue starts empty: gets wait in rank 0).
struct Consume: ParallelFunction {
    var queue: Queue<Int>
    func callAsFunction(_ count: Int) throws -> Int {
        var sum = 0
        for _ in 0..<count { sum += try queue.get(timeout: 30) }
        return sum
    }
}

/// Logs +identity, pauses, logs −identity: the log alternates only if no two holders of
/// the lock (or semaphore) around it overlap.
func logCriticalSection(_ log: Queue<Int>, _ me: Int, pauseNanoseconds: Int) throws {
    try log.put(me)
    var pause = timespec(tv_sec: 0, tv_nsec: pauseNanoseconds)
    nanosleep(&pause, nil)
    try log.put(-me)
}

/// `rounds` times: under the lock, log (+identity), pause, log (−identity). The log
/// alternates only if no two holders overlap.
struct Critical: ParallelFunction {
    var lock: Lock
    var log: Queue<Int>
    var rounds: Int
    func callAsFunction(_ input: Int) throws -> Int {
        let me = workerIdentity()
        for _ in 0..<rounds {
            try lock.withLock {
                try logCriticalSection(log, me, pauseNanoseconds: 200_000)
            }
        }
        return me
    }
}

/// Says it waits, then waits for the event; returns whether it was set.
struct AwaitEvent: ParallelFunction {
    var event: Event
    var waiting: Queue<Int>
    func callAsFunction(_ input: Int) throws -> Bool {
        try waiting.put(input)
        return event.wait(timeout: 30)
    }
}

/// Timeouts answered by rank 0: a get on an empty queue, a wait on an unset event, and an
/// acquire of a lock rank 0 holds.
struct Timeouts: ParallelFunction {
    var queue: Queue<Int>
    var event: Event
    var lock: Lock
    func callAsFunction(_ input: Int) throws -> String {
        var parts: [String] = []
        do {
            _ = try queue.get(timeout: 0.05)
            parts.append("get=item")
        } catch is Empty {
            parts.append("get=Empty")
        }
        parts.append("wait=\(event.wait(timeout: 0.05))")
        parts.append("acquire=\(try lock.acquire(timeout: 0.05))")
        parts.append("release=\((try? lock.release()) != nil ? "ok" : "notHeld")")
        return parts.joined(separator: " ")
    }
}

/// Round trips from a worker: lock acquire+release pairs and queue put+get pairs (µs each).
struct RoundTrips: ParallelFunction {
    var lock: Lock
    var queue: Queue<Int>
    func callAsFunction(_ count: Int) throws -> [Double] {
        var start = clock()
        for _ in 0..<count {
            try lock.acquire()
            try lock.release()
        }
        let lockSeconds = seconds(since: start)
        start = clock()
        for i in 0..<count {
            try queue.put(i)
            _ = try queue.get()
        }
        let queueSeconds = seconds(since: start)
        return [lockSeconds / Double(count) * 1e6, queueSeconds / Double(count) * 1e6]
    }

    private func clock() -> timespec {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        return now
    }

    private func seconds(since start: timespec) -> Double {
        let now = clock()
        return Double(now.tv_sec - start.tv_sec) + Double(now.tv_nsec - start.tv_nsec) / 1e9
    }
}

/// `rounds` increments of a shared counter under its lock.
struct Increment: ParallelFunction {
    var counter: SharedValue<Int>
    var rounds: Int
    func callAsFunction(_ input: Int) throws -> Int {
        for _ in 0..<rounds { counter.withLock { $0 += 1 } }
        return workerIdentity()
    }
}

/// `rounds` increments through `lock` + `value` (two separate accesses made atomic by the
/// lock, as in Python's `with counter.get_lock(): counter.value += 1`).
struct IncrementUnderLock: ParallelFunction {
    var counter: SharedValue<Int>
    var rounds: Int
    func callAsFunction(_ input: Int) throws -> Int {
        for _ in 0..<rounds { try counter.lock.withLock { counter.value += 1 } }
        return workerIdentity()
    }
}

struct Failure: Error, CustomStringConvertible {
    var description: String { "deliberate failure" }
}

/// A `Process` target: puts its number and its worker's identity, or throws.
struct Greet: ParallelFunction {
    var queue: Queue<[Int]>
    var number: Int
    var fails: Bool
    func callAsFunction(_: Void) throws {
        if fails { throw Failure() }
        try queue.put([number, workerIdentity()])
    }
}

/// A `Process` target that ends its process: `exit(status)`, or a crash (`status` 0: a
/// segmentation fault).
struct EndProcess: ParallelFunction {
    var status: Int32
    func callAsFunction(_: Void) {
        fflush(nil)
        if status != 0 { exit(status) }
        UnsafeMutablePointer<Int>(bitPattern: 16)!.pointee = 1
    }
}

/// A `Process` target that takes `lock` and crashes holding it (a segmentation fault).
struct CrashHoldingLock: ParallelFunction {
    var lock: Lock
    func callAsFunction(_: Void) throws {
        try lock.acquire()
        fflush(nil)
        UnsafeMutablePointer<Int>(bitPattern: 16)!.pointee = 1
    }
}

/// A `Process` target that waits for an event.
struct Hold: ParallelFunction {
    var event: Event
    func callAsFunction(_: Void) throws {
        _ = event.wait(timeout: 30)
    }
}

struct Square: ParallelFunction {
    func callAsFunction(_ x: Int) -> Int { x * x }
}

/// Takes jobs until the queue stays empty, marking each done; returns their sum.
struct TakeJobs: ParallelFunction {
    var jobs: JoinableQueue<Int>
    func callAsFunction(_ input: Int) throws -> Int {
        var sum = 0
        while true {
            guard let job = try? jobs.get(timeout: 0.2) else { return sum }
            sum += job
            try jobs.taskDone()
        }
    }
}

/// Waits on an empty queue (parked in rank 0 while the pool is terminated), then asks
/// again after the pool ended; both must fail (not hang). Returns what happened.
struct Orphan: ParallelFunction {
    var queue: Queue<Int>
    func callAsFunction(_ input: Int) throws -> String {
        var outcomes: [String] = []
        for attempt in 0..<2 {
            do {
                _ = try queue.get(timeout: 20)
                outcomes.append("item")
            } catch {
                outcomes.append("\(error)")
            }
            if attempt == 0 {
                var pause = timespec(tv_sec: 0, tv_nsec: 300_000_000)
                nanosleep(&pause, nil)
            }
        }
        print("ORPHAN TASK: \(outcomes.joined(separator: "; "))")
        fflush(nil)
        return outcomes.joined(separator: "; ")
    }
}

/// A `Process` target: two passes of a barrier; puts both arrival indices.
struct MeetTwice: ParallelFunction {
    var barrier: Barrier
    var indices: Queue<Int>
    func callAsFunction(_: Void) throws {
        try indices.put(try barrier.wait(timeout: 30))
        try indices.put(try barrier.wait(timeout: 30))
    }
}

/// A barrier action that logs each pass it opens.
struct LogPass: BarrierAction {
    var log: Queue<String>
    func callAsFunction() throws { try log.put("action") }
}

/// A barrier action that fails: the barrier breaks for every party.
struct FailingAction: BarrierAction {
    struct Failure: Error {}
    func callAsFunction() throws { throw Failure() }
}

/// A `Process` target: `passes` passes of a barrier with an action, logging "left" after each.
struct LeaveAndLog: ParallelFunction {
    var barrier: Barrier
    var log: Queue<String>
    var passes: Int
    func callAsFunction(_: Void) throws {
        for _ in 0..<passes {
            do {
                _ = try barrier.wait(timeout: 30)
                try log.put("left")
            } catch is BrokenBarrierError {
                try log.put("broken")
            }
        }
    }
}

/// Puts into a SimpleQueue from a worker.
struct PutSimple: ParallelFunction {
    var queue: SimpleQueue<String>
    func callAsFunction(_ input: Int) throws {
        try queue.put("item \(input)")
    }
}

/// Waits at a barrier with a short timeout (nobody else comes): the wait breaks it.
struct WaitAlone: ParallelFunction {
    var barrier: Barrier
    func callAsFunction(_ input: Int) throws -> String {
        do {
            _ = try barrier.wait(timeout: 0.1)
            return "passed"
        } catch is BrokenBarrierError {
            return "BrokenBarrierError broken=\(barrier.isBroken)"
        }
    }
}

/// `rounds` times: holding one unit of a semaphore of value 1, log (+identity), pause, log
/// (−identity).
struct Limited: ParallelFunction {
    var semaphore: Multiprocessing.Semaphore
    var log: Queue<Int>
    var rounds: Int
    func callAsFunction(_ input: Int) throws -> Int {
        let me = workerIdentity()
        for _ in 0..<rounds {
            try semaphore.withLock {
                try logCriticalSection(log, me, pauseNanoseconds: 100_000)
            }
        }
        return me
    }
}

/// Acquires and releases a bounded semaphore, then releases once too often.
struct OverRelease: ParallelFunction {
    var semaphore: BoundedSemaphore
    func callAsFunction(_ input: Int) throws -> String {
        let acquired = semaphore.acquire(timeout: 5)
        try semaphore.release()
        do {
            try semaphore.release()
            return "\(acquired) released twice"
        } catch {
            return "\(acquired) \(error.code == .releasedTooManyTimes ? "releasedTooManyTimes" : "\(error)")"
        }
    }
}

/// Takes an RLock twice, releases it twice, then once too often; then tries `other`, which
/// rank 0 holds.
struct Reentrant: ParallelFunction {
    var lock: RLock
    var other: RLock
    func callAsFunction(_ input: Int) throws -> String {
        try lock.acquire()
        try lock.acquire()
        let held = lock.isHeldByCurrentThread
        try lock.release()
        try lock.release()
        var extra = "accepted"
        do { try lock.release() } catch { extra = error.code == .notHeld ? "notHeld" : "\(error)" }
        return "held=\(held) extra=\(extra) other=\(try other.acquire(timeout: 0.05))"
    }
}

/// Releases a Lock and an RLock that no one holds: the error's code and the kind its
/// message names ("a Lock", "an RLock"; the whole message if it names neither).
struct UnheldReleases: ParallelFunction {
    var lock: Lock
    var rlock: RLock
    func callAsFunction(_: Int) -> String {
        func named(_ error: SynchronizationError) -> String {
            let kind = ["an RLock", "a Lock"].first { error.message.contains($0) } ?? error.message
            return "\(error.code) \(kind)"
        }
        var parts: [String] = []
        do {
            try lock.release()
            parts.append("Lock=released")
        } catch { parts.append("Lock=\(named(error))") }
        do {
            try rlock.release()
            parts.append("RLock=released")
        } catch { parts.append("RLock=\(named(error))") }
        return parts.joined(separator: " ")
    }
}

// MARK: pipes

/// A `Process` target: receives numbers until -1, answers each doubled, then sends their
/// sum and closes its end.
struct Echo: ParallelFunction {
    var connection: Connection
    func callAsFunction(_: Void) throws {
        var sum = 0
        while true {
            let number = try connection.recv(Int.self)
            if number < 0 { break }
            sum += number
            try connection.send(number * 2)
        }
        try connection.send(sum)
        connection.close()
    }
}

/// A `Process` target: sends `count` messages and returns without closing its end (its end
/// closes when the process ends).
struct SendAndLeave: ParallelFunction {
    var connection: Connection
    var count: Int
    func callAsFunction(_: Void) throws {
        for i in 0..<count { try connection.sendBytes(Array("message \(i)".utf8)) }
    }
}

/// The outcome of a `Connection` call that should fail: the error's code.
func connectionFailure(_ body: () throws -> Void) -> String {
    do {
        try body()
        return "succeeded"
    } catch let error as ConnectionError {
        return "\(error.code)"
    } catch {
        return "\(error)"
    }
}

/// What a receive at end-of-file does, without waiting for ever if end-of-file never comes.
func endOfFile(_ connection: Connection) -> String {
    do {
        guard try connection.poll(timeout: 10) else { return "nothing within 10 s (no end-of-file)" }
    } catch {
        return "poll failed: \(error)"
    }
    return connectionFailure { _ = try connection.recvBytes() }
}

/// A pool function: polls its (empty) end with a short timeout, then sends `input` numbers.
struct SendThrough: ParallelFunction {
    var connection: Connection
    func callAsFunction(_ input: Int) throws -> String {
        let start = monotonicSeconds()
        let ready = try connection.poll(timeout: 0.1)
        let waited = monotonicSeconds() - start
        for i in 0..<input { try connection.send(i) }
        return "poll=\(ready) waited=\(waited >= 0.09 && waited < 5)"
    }
}

/// A `Process` target on one worker rank: sends 1…10 to a peer on another rank and sums the
/// answers; puts [sum, rank].
struct Ping: ParallelFunction {
    var connection: Connection
    var results: Queue<[Int]>
    func callAsFunction(_: Void) throws {
        var sum = 0
        for i in 1...10 {
            try connection.send(i)
            sum += try connection.recv(Int.self)
        }
        connection.close()
        try results.put([sum, workerIdentity()])
    }
}

/// A `Process` target: answers each number + 100 until end-of-file; puts [answered, rank].
struct Pong: ParallelFunction {
    var connection: Connection
    var results: Queue<[Int]>
    func callAsFunction(_: Void) throws {
        var answered = 0
        while true {
            do {
                let number = try connection.recv(Int.self)
                try connection.send(number + 100)
                answered += 1
            } catch let error as ConnectionError where error.code == .endOfFile {
                break
            }
        }
        try results.put([answered, workerIdentity()])
    }
}

func monotonicSeconds() -> Double {
    var now = timespec()
    clock_gettime(CLOCK_MONOTONIC, &now)
    return Double(now.tv_sec) + Double(now.tv_nsec) / 1e9
}

// MARK: shared arrays

/// `rounds` times: every element + 1 under one acquisition, then element `input % count`
/// + 1 through the subscript under the array's lock.
struct IncrementArray: ParallelFunction {
    var array: SharedArray<Int>
    var rounds: Int
    func callAsFunction(_ input: Int) throws -> Int {
        for _ in 0..<rounds {
            array.withLock { buffer in
                for index in buffer.indices { buffer[index] += 1 }
            }
            try array.lock.withLock { array[input % array.count] += 1 }
        }
        return workerIdentity()
    }
}

// MARK: conditions

/// Says it waits, then waits on the condition until `ready` is set; returns the predicate.
struct AwaitCondition: ParallelFunction {
    var condition: Condition
    var ready: SharedValue<Int>
    var waiting: Queue<Int>
    func callAsFunction(_ input: Int) throws -> Bool {
        try condition.withLock {
            try waiting.put(input)
            return try condition.wait(for: { ready.value > 0 }, timeout: 30)
        }
    }
}

/// Sets `ready` and notifies every waiter, holding the condition's lock.
struct NotifyAll: ParallelFunction {
    var condition: Condition
    var ready: SharedValue<Int>
    func callAsFunction(_ input: Int) throws {
        var pause = timespec(tv_sec: 0, tv_nsec: 50_000_000)
        nanosleep(&pause, nil)
        try condition.withLock {
            ready.value = input
            try condition.notifyAll()
        }
    }
}

/// A wait that times out, and waits and notifies without the lock.
struct ConditionErrors: ParallelFunction {
    var condition: Condition
    func callAsFunction(_ input: Int) throws -> String {
        let start = monotonicSeconds()
        let notified = try condition.withLock { () throws -> String in
            let outcome = try condition.wait(timeout: 0.1)
            return "\(outcome) held=\(condition.lock.isHeldByCurrentThread)"
        }
        let waited = monotonicSeconds() - start
        var errors: [String] = []
        for action in [{ _ = try condition.wait(timeout: 0.1) }, { try condition.notify() }] {
            do {
                try action()
                errors.append("accepted")
            } catch let error as SynchronizationError {
                errors.append("\(error.code)")
            }
        }
        return "wait=\(notified) waited=\(waited >= 0.09 && waited < 5) \(errors.joined(separator: " "))"
    }
}

/// Gets a connection end from a queue, sends 42 through it and closes it.
struct ReceiveConnection: ParallelFunction {
    var queue: Queue<Connection>
    func callAsFunction(_ input: Int) throws -> String {
        let connection = try queue.get(timeout: 30)
        try connection.send(42)
        connection.close()
        return "sent"
    }
}

// MARK: managers

/// Records `input` in a manager's dict (scaled by the namespace's factor), list and
/// namespace; returns the worker's identity.
struct FillManager: ParallelFunction {
    var scores: DictProxy<String, Int>
    var log: ListProxy<String>
    var settings: NamespaceProxy
    func callAsFunction(_ input: Int) throws -> Int {
        let factor = try settings.get("factor", as: Int.self) ?? 0
        try scores.set("item-\(input)", input * factor)
        try log.append("done \(input)")
        try settings.set("seen-\(input)", "task \(input)")
        return workerIdentity()
    }
}

/// A `Process` target: edits what the pool's tasks wrote (list items in place, a removal,
/// a namespace value) and adds its own entries.
struct EditManager: ParallelFunction {
    var scores: DictProxy<String, Int>
    var log: ListProxy<String>
    var settings: NamespaceProxy
    func callAsFunction(_: Void) throws {
        try scores.set("process", try scores.count())
        _ = try scores.removeValue(forKey: "item-0")
        try log.set(0, "first")
        try log.append("process \(try log.count())")
        try settings.set("factor", (try settings.get("factor", as: Int.self) ?? 0) + 1)
    }
}

/// A manager's answers to requests that fail, and to ones that find nothing.
struct ManagerErrors: ParallelFunction {
    var scores: DictProxy<String, Int>
    var log: ListProxy<String>
    var settings: NamespaceProxy
    func callAsFunction(_: Int) throws -> String {
        var parts: [String] = []
        for (name, action) in [
            ("get", { _ = try log.get(1000) }), ("set", { try log.set(-1000, "x") }),
            ("remove", { _ = try log.remove(at: 1000) }),
        ] as [(String, () throws -> Void)] {
            do {
                try action()
                parts.append("\(name)=accepted")
            } catch let error as ManagerError {
                parts.append("\(name)=\(error.code)")
            }
        }
        parts.append("missing=\(try scores.get("missing").map(String.init) ?? "nil")")
        parts.append("removed=\(try scores.removeValue(forKey: "missing"))")
        parts.append("unset=\(try settings.get("unset", as: Int.self).map(String.init) ?? "nil")")
        parts.append("last=\(try log.get(-1))")
        return parts.joined(separator: " ")
    }
}

/// Waits for a manager event, adds `input` to a manager value under a manager lock, puts its
/// square in a manager queue and pops its own dict entry.
struct ManagerExtras: ParallelFunction {
    var results: QueueProxy<Int>
    var lock: LockProxy
    var units: SemaphoreProxy
    var nested: RLockProxy
    var total: ValueProxy<Int>
    var go: EventProxy
    var scores: DictProxy<String, Int>
    func callAsFunction(_ input: Int) throws -> Int {
        guard try go.wait(timeout: 30) else { return -1 }
        try units.withLock {
            try nested.withLock { try nested.withLock { try lock.withLock { try total.set(try total.get() + input) } } }
        }
        try results.put(input * input)
        return try scores.pop("extra-\(input)") ?? -1
    }
}

/// Waits on a manager condition for `flag` to be 1, meets the main process at a manager
/// barrier, then writes 7 into its cell of a manager array and adds "task" to a manager set.
struct ManagerMeeting: ParallelFunction {
    var ready: ConditionProxy
    var flag: ValueProxy<Int>
    var meeting: BarrierProxy
    var cells: ArrayProxy<Int>
    var names: SetProxy<String>
    struct Met: Codable, Sendable {
        var saw: Bool
        var index: Int
    }
    func callAsFunction(_ cell: Int) throws -> Met {
        let saw = try ready.withLock { try ready.wait(for: { try flag.get() == 1 }, timeout: 60) }
        let index = try meeting.wait()
        try cells.set(cell, 7)
        try names.insert("task")
        return Met(saw: saw, index: index)
    }
}

/// A manager barrier's action: counts its runs in a manager value.
struct CountMeeting: BarrierAction {
    var count: ValueProxy<Int>
    func callAsFunction() throws { try count.set(try count.get() + 1) }
}

/// A proxy call after its manager shut down: the error's code.
struct AfterShutdown: ParallelFunction {
    var scores: DictProxy<String, Int>
    func callAsFunction(_: Int) throws -> String {
        do {
            _ = try scores.get("item-1")
            return "answered"
        } catch let error as ManagerError {
            return "\(error.code)"
        }
    }
}

/// Mean µs of one `set` and of one `get` on a manager dictionary, from a worker.
struct ManagerRoundTrips: ParallelFunction {
    var dict: DictProxy<String, Int>
    func callAsFunction(_ count: Int) throws -> [Double] {
        var start = monotonicSeconds()
        for i in 0..<count { try dict.set("key-\(i % 100)", i) }
        let setSeconds = monotonicSeconds() - start
        start = monotonicSeconds()
        for i in 0..<count { _ = try dict.get("key-\(i % 100)") }
        let getSeconds = monotonicSeconds() - start
        return [setSeconds / Double(count) * 1e6, getSeconds / Double(count) * 1e6]
    }
}

/// Closes its copy of `queue`, then tries it: "put=closed get=closed" (Python's ValueError
/// "Queue is closed"), served or not; other copies stay usable.
struct CloseAndUse: ParallelFunction {
    var queue: Queue<Int>
    func callAsFunction(_ input: Int) throws -> String {
        queue.close()
        return closedQueueUse(queue)
    }
}

func closedQueueUse(_ queue: Queue<Int>) -> String {
    func outcome(_ body: () throws -> Void) -> String {
        do {
            try body()
            return "ok"
        } catch let error as QueueError where error.code == .closed {
            return "closed"
        } catch {
            return "\(error)"
        }
    }
    return "put=\(outcome { try queue.put(1) }) get=\(outcome { _ = try queue.get(timeout: 0.05) })"
}

/// A pool function: sends `input` through its end, then is SIGKILLed with its worker — which
/// never closes the end: its peer must still see end-of-file (as a local pipe's reader does
/// once the killed process's descriptor is gone), not wait for ever.
struct SendThenDie: ParallelFunction {
    var connection: Connection
    func callAsFunction(_ input: Int) throws -> Int {
        try connection.send(input)
        kill(getpid(), SIGKILL)
        return input
    }
}

extension Result {
    /// Whether this is a `WorkerDied` failure.
    var failureIsWorkerDied: Bool {
        if case .failure(let error) = self { return error is WorkerDied }
        return false
    }
}

/// Releases a semaphore by counts out of range (each refused, the value unchanged), then by 2.
struct ReleaseOutOfRange: ParallelFunction {
    var semaphore: Multiprocessing.Semaphore
    func callAsFunction(_ input: Int) throws -> String {
        var parts: [String] = []
        for count in [0, -1, Int.max] {
            do {
                try semaphore.release(count)
                parts.append("\(count)=accepted")
            } catch {
                parts.append("\(count)=\(error.code)")
            }
        }
        try semaphore.release(2)
        return parts.joined(separator: " ") + " value=\(semaphore.value)"
    }
}
