import Multiprocessing

#if canImport(Glibc)
import Glibc
#endif

/// A task that says which process runs it (and that process's parent: under mpirun, the
/// worker rank that hosts it), then waits for a queue's item (`kind` 0: a served `Queue`, 1: a
/// `Manager` queue) or a semaphore's unit (2).
struct TakeAfterSaying: ParallelFunction {
    var pids: Queue<[Int32]>
    var queue: Queue<Int>
    var managed: QueueProxy<Int>
    var semaphore: Multiprocessing.Semaphore

    func callAsFunction(_ kind: Int) throws -> Int {
        try pids.put([getpid(), getppid()])
        switch kind {
        case 0: return try queue.get(timeout: 20)
        case 1: return try managed.get(timeout: 20)
        default: return semaphore.acquire(timeout: 20) ? 1 : 0
        }
    }
}

/// `--undelivered`: a task waits for a queue's item (a served `Queue`, a `Manager` queue) or
/// a `Semaphore`'s unit; its worker is SIGKILLed while its rank is stopped, the item is put,
/// the rank continued. The answer that would hand the item over reaches the rank after its
/// worker died: it must go back, so that rank 0 gets it itself. Prints one line per round
/// and kind, then "UNDELIVERED OK rounds=N" (or exits 1).
func undeliveredCheck(rounds: Int) throws {
    let manager = try Manager()
    let pids = try Queue<[Int32]>()
    let task = TakeAfterSaying(
        pids: pids, queue: try Queue<Int>(), managed: try manager.queue(of: Int.self), semaphore: try Multiprocessing.Semaphore(value: 0))
    let names = ["queue", "manager queue", "semaphore"]
    try Pool.with { pool in
        for round in 0..<rounds {
            for kind in names.indices {
                let pending = try pool.applyAsync(task, kind)
                let ids = try pids.get(timeout: 30)
                let worker = ids[0], host = ids[1]
                // Its request is on its way or waits in rank 0 by now.
                sleepSeconds(0.3)
                let stopsHost = host != getpid() && host > 1
                if stopsHost { kill(host, SIGSTOP) }
                sleepSeconds(0.1)
                kill(worker, SIGKILL)
                sleepSeconds(0.05)
                let item = 1000 * round + kind
                switch kind {
                case 0: try task.queue.put(item)
                case 1: try task.managed.put(item)
                default: try task.semaphore.release()
                }
                sleepSeconds(0.1)
                if stopsHost { kill(host, SIGCONT) }
                let ending: String
                do {
                    ending = "returned \(try pending.get(timeout: 30))"
                } catch is WorkerDied {
                    ending = "worker died"
                }
                // The task got it before its worker died (it returned) or nobody did.
                let expected = ending == "worker died"
                let back: Bool
                switch kind {
                case 0: back = (try? task.queue.get(timeout: 10)) == item
                case 1: back = (try? task.managed.get(timeout: 10)) == item
                default: back = task.semaphore.acquire(timeout: 10)
                }
                check("round \(round) \(names[kind]): \(ending), still there", back, expected)
            }
        }
    }
    print("UNDELIVERED \(mismatches == 0 ? "OK" : "FAILED") rounds=\(rounds)")
}
