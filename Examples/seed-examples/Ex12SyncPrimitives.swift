// 12. Semaphore, Condition, Event: guarding a resource and waiting for a signal.
import Multiprocessing

#if canImport(Glibc)
import Glibc
#endif

/// At most two of these use the "resource" at a time.
struct UseResource: ParallelFunction {
    var semaphore: Multiprocessing.Semaphore
    var id: Int
    func callAsFunction(_: Void) throws {
        try semaphore.withLock {
            print("process \(id) uses the resource")
            usleep(100_000)
        }
    }
}

/// Waits for the event, then reports.
struct WaitForStart: ParallelFunction {
    var event: Event
    var done: Queue<Int>
    var id: Int
    func callAsFunction(_: Void) throws {
        _ = event.wait(timeout: 30)
        try done.put(id)
    }
}

/// Waits on the condition until the shared flag is set.
struct WaitForCondition: ParallelFunction {
    var condition: Condition
    var flag: SharedValue<Int32>
    func callAsFunction(_: Void) throws {
        try condition.withLock {
            while flag.value == 0 { _ = try condition.wait(timeout: 30) }
        }
        print("condition met")
    }
}

func example12(_: ArraySlice<String>) throws {
    let semaphore = try Multiprocessing.Semaphore(value: 2)
    let users = (0..<4).map { Process(target: UseResource(semaphore: semaphore, id: $0)) }
    for p in users { try p.start() }
    for p in users { try p.join() }

    let event = try Event()
    let done = try Queue<Int>()
    let waiters = (0..<3).map { Process(target: WaitForStart(event: event, done: done, id: $0)) }
    for p in waiters { try p.start() }
    event.set()
    var ids: [Int] = []
    for _ in waiters { ids.append(try done.get(timeout: 30)) }
    for p in waiters { try p.join() }
    print("event released \(ids.sorted())")

    let condition = try Condition()
    let flag = try SharedValue<Int32>(0)
    let waiter = Process(target: WaitForCondition(condition: condition, flag: flag))
    try waiter.start()
    try condition.withLock {
        flag.value = 1
        try condition.notifyAll()
    }
    try waiter.join()
}
