// Shared objects between rank 0 and worker ranks (a Python-tutorial-like program): the same
// program runs locally (worker processes, objects in shared memory, a Manager's server
// process) and under mpirun (worker ranks, objects and the Manager served by rank 0 over MPI). Prints deterministic result lines, then
// "OBJECTS OK backend=<mpi|local> workers=N"; exits 1 on a mismatch.
//
//   mpi-object-check            run the checks
//   mpi-object-check --bench    also print round-trip times from a worker (µs, JSON lines):
//                               lock, queue, a Manager dictionary's set and get
//   mpi-object-check --broadcast  pool.broadcast of a 40 MiB array and a dictionary, read by
//                               every worker's tasks (checksums, which copy each maps)
//   mpi-object-check --orphan   terminate a pool whose task waits on a queue, then exit: the
//                               task's requests are refused (not left waiting), the job ends
//   mpi-object-check --undelivered   tasks killed (their rank stopped) while the item, unit
//                               they wait for is handed to them: it goes back to rank 0
//   mpi-object-check --churn    create and drop 10 000 short-lived served objects of every kind
//   mpi-object-check --churn-killed   queues whose handles die with SIGKILLed local workers
//                               (some used by tasks on the worker ranks); prints rank 0's
//                               resident memory and served-object count before and after
import Multiprocessing

#if canImport(Glibc)
import Glibc
#endif

nonisolated(unsafe) var mismatches = 0

func check<T: Equatable>(_ name: String, _ got: T, _ expected: T) {
    print("\(name): \(got)")
    if got != expected {
        mismatches += 1
        print("MISMATCH \(name): expected \(expected)")
    }
}

func sleepSeconds(_ seconds: Double) {
    var pause = timespec(tv_sec: Int(seconds), tv_nsec: Int((seconds - Double(Int(seconds))) * 1e9))
    nanosleep(&pause, nil)
}

/// Whether `count()` (an object's waiter count) reached `expected` within 30 s: a wake test
/// first proves its waiters are asleep, else it could pass without exercising a wake.
func waitersAsleep(_ expected: Int, _ count: () -> Int?) -> Bool {
    let end = monotonicSeconds() + 30
    while monotonicSeconds() < end {
        if count() == expected { return true }
        sleepSeconds(0.005)
    }
    return count() == expected
}

/// Under mpirun, a primitive that is not served must fail at creation, saying what to use.
func expectUnavailable(_ name: String, _ body: () throws -> Void) {
    let underMPI = getenv("OMPI_COMM_WORLD_SIZE") != nil
    do {
        try body()
        check("unavailable \(name)", underMPI ? "created" : "refused", "refused")
    } catch let error as MPIObjectError where error.code == .unavailable {
        check("unavailable \(name)", error.message.contains("use ") ? "refused" : "no advice: \(error)", "refused")
        if name == "RawSharedValue" { print("  e.g. \(error.message)") }
    } catch {
        check("unavailable \(name)", "\(error)", "refused")
    }
}

let arguments = CommandLine.arguments.dropFirst()
let underMPI = getenv("OMPI_COMM_WORLD_SIZE") != nil
var backendLine = ""

if arguments.contains("--orphan") {
    do {
        let pool = try Pool()
        _ = try pool.applyAsync(Orphan(queue: try Queue<Int>()), 0)
        sleepSeconds(0.1)
        pool.terminate()
        try? pool.join()
        print("ORPHAN DONE")
    } catch {
        print("ORPHAN FAILED: \(error)")
        exit(2)
    }
    exit(0)
}

if arguments.contains("--undelivered") {
    do {
        try undeliveredCheck(rounds: 3)
    } catch {
        print("UNDELIVERED FAILED: \(error)")
        exit(2)
    }
    exit(mismatches == 0 ? 0 : 1)
}

if arguments.contains("--churn-killed") {
    do {
        try churnKilled()
    } catch {
        print("CHURN FAILED: \(error)")
        exit(2)
    }
    exit(0)
}

if arguments.contains("--churn") {
    do {
        try churn()
    } catch {
        print("CHURN FAILED: \(error)")
        exit(2)
    }
    exit(0)
}

if arguments.contains("--broadcast") {
    do {
        try broadcastCheck()
    } catch {
        print("BROADCAST FAILED: \(error)")
        exit(2)
    }
    exit(0)
}

do {
    try Pool.with { pool in
        let workers = pool.processes
        backendLine = "backend=\(pool.backend) workers=\(workers)"

        // 1. A queue filled by tasks on the workers, drained by rank 0.
        let results = try Queue<Int>()
        let producers = 4, perProducer = 50
        let producedBy = try pool.map(Produce(queue: results, count: perProducer), 0..<producers, chunkSize: 1)
        var count = 0, sum = 0
        while count < producers * perProducer {
            sum += try results.get(timeout: 30)
            count += 1
        }
        check("queue drained count", count, producers * perProducer)
        check("queue drained sum", sum, (0..<producers).reduce(0) { $0 + $1 * 1000 * perProducer + perProducer * (perProducer - 1) / 2 })
        check("queue empty after", results.isEmpty, true)
        print("[producers ran on \(Set(producedBy).count) distinct workers]")

        // 2. A worker's get waits in rank 0 until rank 0 puts.
        let handOver = try Queue<Int>(maxSize: 4)
        let consumed = try pool.applyAsync(Consume(queue: handOver), 10)
        sleepSeconds(0.05)
        for i in 1...10 { try handOver.put(i) }
        check("worker consumed sum", try consumed.get(timeout: 30), 55)

        // 3. A lock held by one worker task at a time.
        let lock = try Lock()
        let log = try Queue<Int>()
        // Fixed (not the worker count), so that every launch prints the same lines.
        let tasks = 4, rounds = 40
        let holders = try pool.map(Critical(lock: lock, log: log, rounds: rounds), 0..<tasks, chunkSize: 1)
        var entries = 0, alternates = true, open: Int? = nil
        while let next = try? log.get(timeout: 0) {
            if let holder = open {
                if next != -holder { alternates = false }
                open = nil
                entries += 1
            } else {
                if next <= 0 { alternates = false }
                open = next
            }
        }
        check("lock critical sections", entries, tasks * rounds)
        check("lock sections never overlap", alternates && open == nil, true)
        print("[lock used by \(Set(holders).count) distinct workers]")

        // 3a. A semaphore of value 1 as a critical section; a bounded one released too often.
        let semaphore = try Multiprocessing.Semaphore(value: 1)
        let semaphoreLog = try Queue<Int>()
        _ = try pool.map(Limited(semaphore: semaphore, log: semaphoreLog, rounds: 20), 0..<tasks, chunkSize: 1)
        var sections = 0, inside: Int? = nil, nested = false
        while let next = try? semaphoreLog.get(timeout: 0) {
            if let holder = inside {
                if next != -holder { nested = true }
                inside = nil
                sections += 1
            } else {
                if next <= 0 { nested = true }
                inside = next
            }
        }
        check("semaphore sections never overlap", "\(sections) \(!nested && inside == nil)", "\(tasks * 20) true")
        check("semaphore value after", semaphore.value, 1)
        let bounded = try BoundedSemaphore(value: 1)
        check(
            "bounded semaphore over-release on a worker", try pool.apply(OverRelease(semaphore: bounded), 0),
            "true releasedTooManyTimes")

        // 3b'. Release counts out of range are refused, on a worker and here (rank 0).
        let counted = try Multiprocessing.Semaphore(value: 1)
        check(
            "semaphore release out of range on a worker", try pool.apply(ReleaseOutOfRange(semaphore: counted), 0),
            "0=invalidArgument -1=invalidArgument \(Int.max)=invalidArgument value=3")
        check(
            "semaphore release out of range here", try ReleaseOutOfRange(semaphore: counted)(0),
            "0=invalidArgument -1=invalidArgument \(Int.max)=invalidArgument value=5")

        // 3c. RLocks: re-entrant on a worker; one held by rank 0 (twice) is not available there.
        let reentrant = try RLock(), heldByRankZero = try RLock()
        try heldByRankZero.acquire()
        try heldByRankZero.acquire()
        check(
            "rlock on a worker", try pool.apply(Reentrant(lock: reentrant, other: heldByRankZero), 0),
            "held=true extra=notHeld other=false")
        try heldByRankZero.release()
        check("rlock still held after one release", heldByRankZero.isLocked, true)
        try heldByRankZero.release()
        check("rlock free after two releases", heldByRankZero.isLocked, false)
        // 3c'. A release of a lock not held names its kind (Lock or RLock), on a worker and here.
        let unheld = UnheldReleases(lock: try Lock(), rlock: try RLock())
        check("unheld releases on a worker", try pool.apply(unheld, 0), "Lock=notHeld a Lock RLock=notHeld an RLock")
        check("unheld releases here", unheld(0), "Lock=notHeld a Lock RLock=notHeld an RLock")

        // 3b. A counter under its lock, incremented from every worker, ends exact.
        let counter = try SharedValue(0)
        let incrementers = try pool.map(Increment(counter: counter, rounds: 100), 0..<tasks, chunkSize: 1)
        _ = try pool.map(IncrementUnderLock(counter: counter, rounds: 100), 0..<tasks, chunkSize: 1)
        counter.withLock { $0 += 1000 }
        check("shared counter", counter.value, tasks * 200 + 1000)
        print("[counter incremented by \(Set(incrementers).count) distinct workers]")

        // 3d. A shared array of counters under its lock, incremented from every worker.
        let counters = try SharedArray<Int>(count: 4)
        let arrayUsers = try pool.map(IncrementArray(array: counters, rounds: 25), 0..<tasks, chunkSize: 1)
        counters[0] += 1000
        check("shared array counters", counters.snapshot(), [1125, 125, 125, 125])
        check("shared array elements", Array(counters), [1125, 125, 125, 125])
        let initial = try SharedArray([1.5, 2.5, 3.5])
        initial[1] = 20
        check("shared array from elements", "\(initial.count) \(initial.snapshot()) \(initial.withLock { $0.reduce(0, +) })", "3 [1.5, 20.0, 3.5] 25.0")
        print("[array counters incremented by \(Set(arrayUsers).count) distinct workers]")

        // 4. An event set by rank 0 releases the waiting workers.
        let event = try Event()
        let waiting = try Queue<Int>()
        let released = try pool.mapAsync(AwaitEvent(event: event, waiting: waiting), 0..<tasks, chunkSize: 1)
        _ = try waiting.get(timeout: 30)
        // Every worker holds one task (chunks of 1) and sleeps in it.
        check("event waiters asleep before set", waitersAsleep(min(tasks, workers)) { event.waiterCount }, true)
        check("event not set while waiting", event.isSet, false)
        event.set()
        check("event released every waiter", try released.get(timeout: 30), Array(repeating: true, count: tasks))

        // 4a. A condition: workers wait until rank 0 sets the state and notifies; rank 0
        // waits until a worker does; timeouts and calls without the lock, on both sides.
        let condition = try Condition()
        let ready = try SharedValue(0, lock: condition.lock)
        let conditionWaiting = try Queue<Int>()
        let woken = try pool.mapAsync(
            AwaitCondition(condition: condition, ready: ready, waiting: conditionWaiting), 0..<tasks,
            chunkSize: 1)
        _ = try conditionWaiting.get(timeout: 30)
        check("condition waiters asleep before notify", waitersAsleep(min(tasks, workers)) { condition.waiterCount }, true)
        try condition.withLock {
            ready.value = 1
            try condition.notifyAll()
        }
        check("condition woke every waiter", try woken.get(timeout: 30), Array(repeating: true, count: tasks))
        let answered = try Condition()
        let flag = try SharedValue(0, lock: answered.lock)
        let notifier = try pool.applyAsync(NotifyAll(condition: answered, ready: flag), 7)
        check("condition notified by a worker", try answered.withLock { try answered.wait(for: { flag.value == 7 }, timeout: 30) }, true)
        try notifier.get(timeout: 30)
        check(
            "condition errors on a worker", try pool.apply(ConditionErrors(condition: answered), 0),
            "wait=false held=true waited=true notHeld notHeld")
        check(
            "condition errors on the main process", try ConditionErrors(condition: answered)(0),
            "wait=false held=true waited=true notHeld notHeld")

        // 4b. A JoinableQueue: rank 0 joins until the workers marked every job done.
        let jobs = try JoinableQueue<Int>()
        for job in 1...100 { try jobs.put(job) }
        let taken = try pool.mapAsync(TakeJobs(jobs: jobs), 0..<tasks, chunkSize: 1)
        check("joinable queue joined", try jobs.join(timeout: 30), true)
        check("joinable queue jobs summed", try taken.get(timeout: 30).reduce(0, +), 5050)
        check("joinable queue unfinished", jobs.unfinishedTasks, 0)
        do {
            try jobs.taskDone()
            check("joinable queue extra taskDone", "accepted", "taskDoneTooOften")
        } catch let error as QueueError {
            check("joinable queue extra taskDone", error.code == .taskDoneTooOften ? "taskDoneTooOften" : "\(error)", "taskDoneTooOften")
        }

        // 4c. A SimpleQueue filled by the workers; a barrier wait on a worker that times out.
        let simple = try SimpleQueue<String>()
        _ = try pool.map(PutSimple(queue: simple), 0..<3, chunkSize: 1)
        var got: [String] = []
        for _ in 0..<3 { got.append(try simple.get(timeout: 30)) }
        check("simple queue items", got.sorted(), ["item 0", "item 1", "item 2"])
        // 4d. close() of a queue: refused afterwards in the process that closed it only.
        let closing = try Queue<Int>()
        check("queue closed in a worker", try pool.apply(CloseAndUse(queue: closing), 0), "put=closed get=closed")
        try closing.put(7)
        check("queue not closed here", try closing.get(timeout: 30), 7)
        closing.close()
        check("queue closed here", closedQueueUse(closing), "put=closed get=closed")
        let lonely = try Barrier(parties: 2)
        check("worker barrier timeout", try pool.apply(WaitAlone(barrier: lonely), 0), "BrokenBarrierError broken=true")

        // 5. Timeouts from a worker, answered by rank 0 (the lock is held by rank 0).
        let idle = try Event()
        try lock.acquire()
        let timeouts = try pool.apply(Timeouts(queue: try Queue<Int>(), event: idle, lock: lock), 0)
        try lock.release()
        check("worker timeouts", timeouts, "get=Empty wait=false acquire=false release=notHeld")

        if arguments.contains("--bench") {
            let count = 2000
            _ = try pool.apply(RoundTrips(lock: lock, queue: try Queue<Int>()), 200) // warm up
            let times = try pool.apply(RoundTrips(lock: lock, queue: try Queue<Int>()), count)
            print("{\"bench\":\"worker lock acquire+release\",\"us\":\(times[0]),\"n\":\(count)}")
            print("{\"bench\":\"worker queue put+get\",\"us\":\(times[1]),\"n\":\(count)}")
        }
    }
} catch {
    print("OBJECTS FAILED: \(error)")
    fflush(nil)
    exit(2)
}

// 7. Processes: under mpirun each target runs alone on a worker rank.
do {
    let greetings = try Queue<[Int]>()
    let count = 2
    // Under mpirun one process per worker (the local workers the ranks host) runs at a time:
    // start them in turns of that many.
    let workers = underMPI ? try Pool.with { $0.processes } : count
    let slots = workers
    let processes = (0..<count).map { Process(target: Greet(queue: greetings, number: $0, fails: false)) }
    for first in stride(from: 0, to: count, by: slots) {
        let turn = processes[first..<min(count, first + slots)]
        for process in turn { try process.start() }
        for process in turn { try process.join(timeout: 30) }
    }
    var numbers: [Int] = [], places = Set<Int>()
    for _ in 0..<count {
        let item = try greetings.get(timeout: 30)
        numbers.append(item[0])
        places.insert(item[1])
    }
    check("process greetings", numbers.sorted(), Array(0..<count))
    check("process exit codes", processes.map { $0.exitCode }, Array(repeating: Int32(0), count: count))
    check("process alive after join", processes.map(\.isAlive), Array(repeating: false, count: count))
    print("[processes ran on \(places.count) distinct workers]")

    let failing = Process(target: Greet(queue: greetings, number: 9, fails: true))
    try failing.start()
    try failing.join(timeout: 30)
    check("failing process exit code", failing.exitCode, 1)
    // A target that exits or crashes: its exit status, or minus the signal (as Python's).
    let ending = [Process(target: EndProcess(status: 3)), Process(target: EndProcess(status: 0))]
    for process in ending {
        try process.start()
        try process.join(timeout: 30)
    }
    check("exiting and crashing process exit codes", ending.map(\.exitCode), [3, -SIGSEGV])
    // A lock whose holder crashed is the next acquirer's, who is told (a robust mutex locally;
    // under mpirun rank 0 lets go of it when the holder's rank reports its end).
    let orphaned = try Lock()
    let holder = Process(target: CrashHoldingLock(lock: orphaned))
    try holder.start()
    try holder.join(timeout: 30)
    let recovered = try orphaned.acquireReportingRecovery(timeout: 30)
    try orphaned.release()
    let again = try orphaned.acquireReportingRecovery(timeout: 30)
    try orphaned.release()
    check("a lock whose holder crashed, then again", [recovered, again], [.acquiredFromDeadOwner, .acquired])

    if underMPI {
        // Processes running at once are each alone on a worker (those run in turns may run
        // on the same one, or on a new one after the implicit pool closed in between).
        check("[mpi] processes on distinct workers", places.count >= min(count, workers), true)
        let release = try Event()
        let held = (0..<workers).map { _ in Process(target: Hold(event: release)) }
        for process in held { try process.start() }
        do {
            try Process(target: Hold(event: release)).start()
            check("[mpi] process beyond the workers", "started", "refused")
        } catch let error as ProcessError {
            check("[mpi] process beyond the workers", error.code == .startFailed ? "refused" : "\(error)", "refused")
        }
        // terminate() ends the target's worker (its rank kills it), as for a local child.
        try held[0].terminate()
        try held[0].join(timeout: 30)
        check("[mpi] terminate ends the target", "\(held[0].isAlive) \(held[0].exitCode.map(String.init) ?? "nil")", "false -15")
        release.set()
        for process in held.dropFirst() { try process.join(timeout: 30) }
        check("[mpi] held processes exit codes", held.dropFirst().map { $0.exitCode }, Array(repeating: Int32(0), count: held.count - 1))
    }
    // A barrier between rank 0 and one process per worker rank (two passes), then a wait
    // that times out and breaks it, and a reset.
    let parties = 1 + slots
    let barrier = try Barrier(parties: parties)
    let indices = try Queue<Int>()
    let meeting = (0..<slots).map { _ in Process(target: MeetTwice(barrier: barrier, indices: indices)) }
    for process in meeting { try process.start() }
    try indices.put(try barrier.wait(timeout: 30))
    try indices.put(try barrier.wait(timeout: 30))
    for process in meeting { try process.join(timeout: 30) }
    var arrivals: [Int] = []
    while let index = try? indices.get(timeout: 0) { arrivals.append(index) }
    check("barrier arrivals complete", arrivals.sorted() == (0..<parties).flatMap { [$0, $0] }, true)
    check("barrier processes exit codes", Set(meeting.map { $0.exitCode }), [0])
    do {
        _ = try barrier.wait(timeout: 0.1)
        check("barrier wait alone", "passed", "BrokenBarrierError")
    } catch is BrokenBarrierError {
        check("barrier wait alone", "BrokenBarrierError", "BrokenBarrierError")
    }
    check("barrier broken after timeout", barrier.isBroken, true)
    try barrier.reset()
    check("barrier after reset", "\(barrier.isBroken) \(barrier.nWaiting)", "false 0")
    // A barrier with an action, run by whichever party (rank) arrives last, before anyone
    // leaves: the log is the action, then every party's "left", once per pass.
    for (name, failing) in [("barrier action", false), ("barrier failing action", true)] {
        let log = try Queue<String>()
        let passes = failing ? 1 : 2
        let acting = try Barrier(parties: parties, action: failing ? FailingAction() as any BarrierAction : LogPass(log: log))
        let members = (0..<slots).map { _ in Process(target: LeaveAndLog(barrier: acting, log: log, passes: passes)) }
        for process in members { try process.start() }
        try LeaveAndLog(barrier: acting, log: log, passes: passes)(())
        for process in members { try process.join(timeout: 30) }
        var entries: [String] = []
        while let entry = try? log.get(timeout: 0) { entries.append(entry) }
        let expected =
            failing
            ? Array(repeating: "broken", count: parties)
            : Array(repeating: ["action"] + Array(repeating: "left", count: parties), count: passes).flatMap { $0 }
        check("\(name) order", entries == expected ? "as expected" : entries.joined(separator: ","), "as expected")
        check("\(name) broken", acting.isBroken, failing)
        check("\(name) exit codes", Set(members.map { $0.exitCode }), [0])
    }

    check("pool after processes", try Pool.with { pool in try pool.map(Square(), 0..<5) }, [0, 1, 4, 9, 16])
} catch {
    print("PROCESSES FAILED: \(error)")
    fflush(nil)
    exit(2)
}

// 8. Pipes between rank 0 and a process (a worker rank under mpirun), and semantics.
do {
    // Duplex: numbers doubled, their sum, then end-of-file once the process closed its end.
    let (here, there) = try Pipe()
    let echo = Process(target: Echo(connection: there))
    try echo.start()
    there.close() // the process holds its own handle
    var doubled: [Int] = []
    for i in 1...5 {
        try here.send(i)
        doubled.append(try here.recv(Int.self))
    }
    try here.send(-1)
    let sum = try here.recv(Int.self)
    check(
        "pipe echo", "\(doubled) sum=\(sum) then=\(endOfFile(here))",
        "[2, 4, 6, 8, 10] sum=15 then=endOfFile")
    check("pipe send to a closed peer", connectionFailure { try here.send(1) }, "brokenPipe")
    try echo.join(timeout: 30)
    here.close()
    check(
        "pipe closed handle", "\(here.isClosed) \(connectionFailure { try here.send(1) }) \(connectionFailure { _ = try here.poll() })",
        "true closed closed")

    // One-way: the process sends and leaves without closing; end-of-file after its messages.
    let (reader, writer) = try Pipe(duplex: false)
    let start = monotonicSeconds()
    let early = try reader.poll(timeout: 0.1)
    let waited = monotonicSeconds() - start
    check("pipe poll timeout", "\(early) \(waited >= 0.09 && waited < 5)", "false true")
    check("pipe wait timeout", Multiprocessing.wait(on: [reader], timeout: 0.1).count, 0)
    check(
        "pipe wrong direction",
        "\(connectionFailure { try reader.send(1) }) \(connectionFailure { _ = try writer.recvBytes() }) "
            + "\(connectionFailure { _ = try writer.poll() })", "wrongDirection wrongDirection wrongDirection")
    let leaver = Process(target: SendAndLeave(connection: writer, count: 3))
    try leaver.start()
    writer.close()
    check("pipe poll with message", try reader.poll(timeout: 30), true)
    check("pipe wait with message", Multiprocessing.wait(on: [reader], timeout: 30).count, 1)
    // Read whole, then too long for the room after an offset (BufferTooShort holds it), then
    // into a buffer at an offset.
    var messages = [String(decoding: try reader.recvBytes(), as: UTF8.self)]
    var small = [UInt8](repeating: 0, count: 6)
    do {
        _ = try reader.recvBytes(into: &small, offset: 2)
    } catch let short as BufferTooShort {
        messages.append(String(decoding: short.bytes, as: UTF8.self))
    }
    var room = [UInt8](repeating: 0, count: 20)
    let length = try reader.recvBytes(into: &room, offset: 3)
    messages.append(String(decoding: room[3..<(3 + length)], as: UTF8.self))
    check("pipe one-way messages", messages, ["message 0", "message 1", "message 2"])
    check("pipe eof after the process ended", endOfFile(reader), "endOfFile")
    check("pipe poll at eof", try reader.poll(timeout: 0), true)
    try leaver.join(timeout: 30)

    // Both ends closed by rank 0: nothing waits.
    let (left, right) = try Pipe()
    try left.send("kept")
    right.close()
    check(
        "pipe broken and eof", "\(connectionFailure { try left.send(2) }) \(endOfFile(left))",
        "brokenPipe endOfFile")
    left.close()

    if underMPI {
        let workerRanks = (Int(String(cString: getenv("OMPI_COMM_WORLD_SIZE"))) ?? 2) - 1
        // A pipe between two worker ranks (two processes at once need two worker ranks).
        if workerRanks >= 2 {
            let (a, b) = try Pipe()
            let results = try Queue<[Int]>()
            let ping = Process(target: Ping(connection: a, results: results))
            let pong = Process(target: Pong(connection: b, results: results))
            try ping.start()
            try pong.start()
            a.close()
            b.close()
            try ping.join(timeout: 30)
            try pong.join(timeout: 30)
            let first = try results.get(timeout: 30), second = try results.get(timeout: 30)
            let (pinged, ponged) = first[0] == 10 ? (second, first) : (first, second)
            check(
                "[mpi] pipe between worker ranks", "sum=\(pinged[0]) answered=\(ponged[0]) distinct=\(pinged[1] != ponged[1])",
                "sum=1055 answered=10 distinct=true")
        }
        // A pool function holding an end: its copy closes when the pool ends.
        let (inbound, outbound) = try Pipe()
        let said = try Pool.with { pool in try pool.apply(SendThrough(connection: outbound), 4) }
        outbound.close()
        var got: [Int] = []
        for _ in 0..<4 { got.append(try inbound.recv(Int.self)) }
        // An end through a served queue.
        let (mine, theirs) = try Pipe()
        let handOff = try Queue<Connection>()
        try handOff.put(theirs)
        theirs.close()
        let sent = try Pool.with { pool in try pool.apply(ReceiveConnection(queue: handOff), 0) }
        check("[mpi] pipe end through a queue", "\(sent) \(try mine.recv(Int.self)) then=\(endOfFile(mine))", "sent 42 then=endOfFile")
        check(
            "[mpi] pipe to a pool function", "\(said) \(got) then=\(endOfFile(inbound))",
            "poll=false waited=true [0, 1, 2, 3] then=endOfFile")
        // A pool function holding an end, killed with its worker while the pool goes on: the
        // rank reports the worker's end, and rank 0 closes the handles it held.
        let (survivor, doomed) = try Pipe()
        let killed = try Pool.with { pool -> String in
            let outcome = Result { try pool.apply(SendThenDie(connection: doomed), 9) }
            doomed.close()
            let received = try survivor.recv(Int.self)
            let eof = endOfFile(survivor)
            let worker = outcome.failureIsWorkerDied ? "WorkerDied=true" : "\(outcome)"
            return "\(worker) got \(received) then=\(eof)"
        }
        check("[mpi] pipe end of a killed pool task", killed, "WorkerDied=true got 9 then=endOfFile")
    }
} catch {
    print("PIPES FAILED: \(error)")
    fflush(nil)
    exit(2)
}

// 9. A Manager (under mpirun rank 0 serves it in process): a dict, a list and a namespace
// (then a queue, a lock, a value and an event used by pool tasks)
// filled by pool tasks and a Process on the workers, read and changed on rank 0; its errors
// on a worker and on rank 0; every proxy unavailable after shutdown.
do {
    let manager = try Manager()
    let scores = try manager.dict(String.self, Int.self)
    let log = try manager.list(of: String.self)
    let settings = try manager.namespace()
    try settings.set("factor", 10)
    let tasks = 12
    let filledBy = try Pool.with { pool in
        try pool.map(FillManager(scores: scores, log: log, settings: settings), 0..<tasks, chunkSize: 1)
    }
    check(
        "manager dict from pool tasks", try scores.snapshot().map { "\($0.key)=\($0.value)" }.sorted(),
        (0..<tasks).map { "item-\($0)=\($0 * 10)" }.sorted())
    check("manager list from pool tasks", try log.snapshot().sorted(), (0..<tasks).map { "done \($0)" }.sorted())
    check(
        "manager namespace from pool tasks", try (0..<tasks).map { try settings.get("seen-\($0)", as: String.self) ?? "nil" },
        (0..<tasks).map { "task \($0)" })
    print("[manager filled by \(Set(filledBy).count) distinct workers]")

    let editor = Process(target: EditManager(scores: scores, log: log, settings: settings))
    try editor.start()
    try editor.join(timeout: 30)
    check("manager process exit code", editor.exitCode, 0)
    check(
        "manager dict after a process", "\(try scores.count()) \(try scores.get("process") ?? -1) \(try scores.get("item-0") == nil)",
        "\(tasks) \(tasks) true")
    check(
        "manager list after a process", "\(try log.count()) \(try log.get(0)) \(try log.get(-1))",
        "\(tasks + 1) first process \(tasks)")
    check("manager namespace after a process", try settings.get("factor", as: Int.self), 11)

    check(
        "manager errors on a worker",
        try Pool.with { pool in
            try pool.apply(ManagerErrors(scores: scores, log: log, settings: settings), 0)
        }, "get=invalidRequest set=invalidRequest remove=invalidRequest missing=nil removed=false unset=nil last=process \(tasks)")
    check(
        "manager errors on the main process", try ManagerErrors(scores: scores, log: log, settings: settings)(0),
        "get=invalidRequest set=invalidRequest remove=invalidRequest missing=nil removed=false unset=nil last=process \(tasks)")
    let extraResults = try manager.queue(of: Int.self)
    let extraLock = try manager.lock()
    let extraUnits = try manager.boundedSemaphore(value: 2)
    let extraNested = try manager.rlock()
    let extraTotal = try manager.value(0)
    let extraGo = try manager.event()
    try scores.update(Dictionary(uniqueKeysWithValues: (0..<tasks).map { ("extra-\($0)", $0) }))
    try extraGo.set()
    let popped = try Pool.with { pool in
        try pool.map(
            ManagerExtras(
                results: extraResults, lock: extraLock, units: extraUnits, nested: extraNested, total: extraTotal, go: extraGo,
                scores: scores),
            0..<tasks, chunkSize: 1)
    }
    var squares: [Int] = []
    for _ in 0..<tasks { squares.append(try extraResults.get(timeout: 30)) }
    check(
        "manager queue, lock, semaphore, rlock, value, event and pop from pool tasks",
        "\(popped == Array(0..<tasks)) \(try extraTotal.get()) \(squares.sorted() == (0..<tasks).map { $0 * $0 }) "
            + "\(try extraResults.count()) \(try extraUnits.value()) \(try extraNested.isLocked())",
        "true \((0..<tasks).reduce(0, +)) true 0 2 false")
    // A manager condition, barrier, array and set: a task waits on the condition for this
    // process's notify, meets this process at a barrier (its action runs in whichever party
    // arrives last), then writes its cell of the array and adds itself to the set.
    let ready = try manager.condition()
    let flag = try manager.value(0)
    try extraTotal.set(0)
    let meeting = try manager.barrier(parties: 2, action: CountMeeting(count: extraTotal), timeout: 60)
    let cells = try manager.array([0, 0])
    let names = try manager.set(of: String.self)
    try names.insert("main")
    let (met, ours) = try Pool.with { pool in
        let task = try pool.applyAsync(ManagerMeeting(ready: ready, flag: flag, meeting: meeting, cells: cells, names: names), 1)
        try ready.withLock {
            try flag.set(1)
            _ = try ready.notifyAll()
        }
        let index = try meeting.wait()
        return (try task.get(timeout: 60), index)
    }
    check(
        "manager condition, barrier, array and set from a pool task",
        "\(met.saw) \([met.index, ours].sorted()) \(try extraTotal.get()) \(try cells.snapshot()) \(try ready.waiterCount()) "
            + "\(try names.snapshot().sorted()) \(try names.contains("task")) \(try names.count())",
        "true [0, 1] 1 [0, 7] 0 [\"main\", \"task\"] true 2")
    try log.removeAll()
    try scores.removeAll()
    check("manager cleared", "\(try log.count()) \(try scores.count())", "0 0")

    if arguments.contains("--bench") {
        let count = 2000
        let times = try Pool.with { pool in
            _ = try pool.apply(ManagerRoundTrips(dict: scores), 200) // warm up
            return try pool.apply(ManagerRoundTrips(dict: scores), count)
        }
        print("{\"bench\":\"worker manager dict set\",\"us\":\(times[0]),\"n\":\(count)}")
        print("{\"bench\":\"worker manager dict get\",\"us\":\(times[1]),\"n\":\(count)}")
        try scores.removeAll()
    }

    try Pool.with { pool in
        manager.shutdown()
        check("manager after shutdown on a worker", try pool.apply(AfterShutdown(scores: scores), 0), "unavailable")
    }
    check("manager after shutdown on the main process", try AfterShutdown(scores: scores)(0), "unavailable")
    do {
        _ = try manager.dict(Int.self, Int.self)
        check("manager create after shutdown", "created", "unavailable")
    } catch let error as ManagerError {
        check("manager create after shutdown", "\(error.code)", "unavailable")
    }
} catch {
    print("MANAGER FAILED: \(error)")
    fflush(nil)
    exit(2)
}

// 6. What is not offered across ranks fails at creation, naming what to use instead.
if underMPI {
    // A served object cannot reach a local worker process: a clear error, not a silent copy.
    do {
        let served = try Queue<Int>()
        let outcome = try Pool.with(processes: 1, backend: .local) { pool in
            try pool.map(Produce(queue: served, count: 1), 0..<1)
        }
        check("[mpi] served queue in a local pool", "ran: \(outcome)", "refused")
    } catch {
        let said = "\(error)"
        check("[mpi] served queue in a local pool", said.contains("served by rank 0") ? "refused" : said, "refused")
    }
    expectUnavailable("RawSharedValue") { _ = try RawSharedValue(0) }
    expectUnavailable("RawSharedArray") { _ = try RawSharedArray<Int>(count: 4) }
    // A served manager's proxy cannot reach a local worker process either.
    do {
        let manager = try Manager()
        let scores = try manager.dict(String.self, Int.self)
        let outcome = try Pool.with(processes: 1, backend: .local) { pool in
            try pool.map(AfterShutdown(scores: scores), 0..<1)
        }
        check("[mpi] served manager proxy in a local pool", "ran: \(outcome)", "refused")
    } catch {
        let said = "\(error)"
        check("[mpi] served manager proxy in a local pool", said.contains("served by rank 0") ? "refused" : said, "refused")
    }
}

// A queue outlives the pools that use it: filled by one pool's tasks, read and refilled by
// this process with no pool alive, drained by a second pool's tasks.
do {
    let queue = try Queue<Int>()
    _ = try Pool.with { try $0.map(Produce(queue: queue, count: 3), [7]) }
    var seen: [Int] = []
    for _ in 0..<3 { seen.append(try queue.get(timeout: 30)) }
    for value in [1, 2, 3] { try queue.put(value) }
    let drained = try Pool.with { try $0.map(Consume(queue: queue), [3]) }
    check("queue across pools", "\(seen.sorted()) then \(drained)", "[7000, 7001, 7002] then [6]")
}

if mismatches > 0 {
    print("OBJECTS MISMATCHES: \(mismatches)")
    fflush(nil)
    exit(1)
}
print("OBJECTS OK \(backendLine)")
