@_spi(Diagnostics) import Multiprocessing

#if canImport(Glibc)
import Glibc
#endif

/// Rank 0's resident memory in KiB (`VmRSS` of /proc/self/status), or -1.
func residentKiB() -> Int {
    guard let file = fopen("/proc/self/status", "r") else { return -1 }
    defer { fclose(file) }
    var line = [CChar](repeating: 0, count: 256)
    while fgets(&line, 256, file) != nil {
        let text = String(decoding: line.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        if text.hasPrefix("VmRSS:") {
            return Int(text.dropFirst(6).trimmingCharacters(in: " \tkB\n")) ?? -1
        }
    }
    return -1
}

extension StringProtocol {
    func trimmingCharacters(in set: String) -> String {
        String(drop { set.contains($0) }.reversed().drop { set.contains($0) }.reversed())
    }
}

/// Uses a queue, a lock and a value it was given, on a worker rank (each decoded handle is
/// counted at rank 0, and released when the task's copies are dropped).
struct ChurnTask: ParallelFunction {
    var queue: Queue<Int>
    var lock: Lock
    var value: SharedValue<Int>
    func callAsFunction(_ input: Int) throws -> Int {
        try lock.withLock { value.value += input }
        try queue.put(input)
        return input
    }
}

/// One round: one short-lived object of every served kind, dropped at the end of the call.
func churnRound(_ round: Int) throws {
    let queue = try Queue<[UInt8]>()
    try queue.put([UInt8](repeating: UInt8(truncatingIfNeeded: round), count: 64))
    _ = try queue.get(timeout: 5)
    let joinable = try JoinableQueue<Int>()
    try joinable.put(round)
    _ = try joinable.get(timeout: 5)
    try joinable.taskDone()
    let lock = try Lock()
    try lock.withLock {}
    let rlock = try RLock()
    try rlock.withLock { try rlock.withLock {} }
    let semaphore = try Semaphore(value: 1)
    _ = semaphore.acquire()
    try semaphore.release()
    let event = try Event()
    event.set()
    _ = event.wait(timeout: 0)
    let condition = try Condition()
    try condition.withLock { try condition.notifyAll() }
    let barrier = try Barrier(parties: 1)
    _ = try barrier.wait()
    let value = try SharedValue(round)
    value.value += 1
    let array = try SharedArray<Int>(repeating: 0, count: 8)
    array[3] = round
    let (left, right) = try Pipe()
    try left.send(round)
    _ = try right.recv(Int.self)
}

/// `--churn`: 10 000 rounds (every 500th also passes a queue, a lock and a value to tasks on
/// the worker ranks); rank 0's memory and served-object count after 1 000 rounds (warm) and
/// at the end.
func churn() throws {
    try Pool.with { pool in
        var warm = (memory: 0, served: 0)
        for round in 0..<10_000 {
            try churnRound(round)
            if round % 500 == 0 {
                let queue = try Queue<Int>()
                let lock = try Lock()
                let value = try SharedValue(0)
                let done = try pool.map(ChurnTask(queue: queue, lock: lock, value: value), 1...4, chunkSize: 1)
                guard done == [1, 2, 3, 4], value.value == 10 else { throw ChurnError("a task's objects answered wrongly") }
            }
            if round == 999 { warm = (residentKiB(), servedObjectCount()) }
        }
        // The worker ranks keep the last 64 function values they ran (with the handles
        // they hold): 65 other functions evict the tasks' copies, which are then released.
        for other in 0...64 { _ = try pool.map(Noop(tag: other), 0..<pool.processes, chunkSize: 1) }
        var served = servedObjectCount()
        let end = monotonicSeconds() + 10
        while served > warm.served, monotonicSeconds() < end {
            sleepSeconds(0.01)
            served = servedObjectCount()
        }
        print("CHURN rss_kib warm=\(warm.memory) end=\(residentKiB()) growth=\(residentKiB() - warm.memory)")
        print("CHURN served warm=\(warm.served) end=\(served)")
    }
    // A pool that ends drops its functions on the worker ranks first: their copies are
    // released while it still answers, and the objects go when rank 0 drops its own.
    let before = servedObjectCount()
    try Pool.with { pool in
        let queue = try Queue<Int>()
        let lock = try Lock()
        let value = try SharedValue(0)
        _ = try pool.map(ChurnTask(queue: queue, lock: lock, value: value), 1...4, chunkSize: 1)
    }
    print("CHURN served before=\(before) after_pool=\(servedObjectCount())")
}

/// Holds a queue (a counted handle once decoded in the worker) and kills its worker.
struct KillWithHandle: ParallelFunction {
    var queue: Queue<Int>
    func callAsFunction(_ input: Int) throws -> Int {
        try queue.put(input)
        kill(getpid(), SIGKILL)
        return input
    }
}

/// `--churn-killed`: 30 rounds of a queue whose handle a task decodes in a local worker that is
/// then SIGKILLed (it never releases it); rank 0 drops a dead worker's handles, so the served
/// count comes back to where it was.
func churnKilled() throws {
    try Pool.with { pool in
        _ = try pool.map(Noop(tag: -1), 0..<pool.processes, chunkSize: 1)
        let before = servedObjectCount()
        var died = 0
        for round in 0..<30 {
            let queue = try Queue<Int>()
            do {
                _ = try pool.apply(KillWithHandle(queue: queue), round)
            } catch is WorkerDied {
                died += 1
            }
            guard try queue.get(timeout: 10) == round else { throw ChurnError("the task's put was lost") }
        }
        var served = servedObjectCount()
        let end = monotonicSeconds() + 10
        while served > before, monotonicSeconds() < end {
            sleepSeconds(0.01)
            served = servedObjectCount()
        }
        print("CHURN killed died=\(died) before=\(before) end=\(served)")
    }
}

struct Noop: ParallelFunction {
    var tag: Int
    func callAsFunction(_ input: Int) throws -> Int { input }
}

struct ChurnError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// The served objects rank 0 holds now.
func servedObjectCount() -> Int { MPIObjectDiagnostics.servedObjectCount }
