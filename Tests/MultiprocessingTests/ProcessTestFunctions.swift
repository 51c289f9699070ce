import CSystemShims

@testable import Multiprocessing

#if canImport(Glibc)
import Glibc
#endif

/// Ends its process in a chosen way.
struct EndWith: ParallelFunction {
    enum Way: String, Codable { case success, status, throwing, segfault, sleep, raiseSignal }
    var way: Way
    var status: Int32 = 0
    var seconds: Double = 0
    func callAsFunction(_: Void) throws {
        switch way {
        case .success: return
        case .status: exit(status)
        case .throwing: throw Boom(value: Int(status))
        case .segfault: UnsafeMutablePointer<Int>(bitPattern: 16)!.pointee = 1
        case .sleep: usleep(UInt32(seconds * 1e6))
        case .raiseSignal: raise(status) // sent, not a fault: nothing happens again on return
        }
    }
}

/// Exits 0 if the child may run on `cpus` CPUs (its affinity), else 2.
struct CheckCPUCount: ParallelFunction {
    var cpus: Int32
    func callAsFunction(_: Void) {
        if CSystemShims_affinity_cpu_count() != cpus { exit(2) }
    }
}

/// Puts what the child knows about itself.
struct ReportIdentity: ParallelFunction {
    var queue: Queue<String>
    func callAsFunction(_: Void) throws {
        let me = Multiprocessing.currentProcess
        try queue.put("\(me.name) \(me.isMain) \(me.daemon) \(me.pid == getpid())")
    }
}

/// Puts `count` consecutive numbers from `first`.
struct PutNumbers: ParallelFunction {
    var queue: Queue<Int>
    var first: Int
    var count: Int
    func callAsFunction(_: Void) throws {
        for n in first..<(first + count) { try queue.put(n) }
    }
}

/// Gets numbers until -1; reports [count, sum] and a duplicate check (xor) on `results`.
struct SumNumbers: ParallelFunction {
    var queue: Queue<Int>
    var results: Queue<[Int]>
    func callAsFunction(_: Void) throws {
        var count = 0, sum = 0
        while true {
            let n = try queue.get(timeout: 60)
            if n < 0 { break }
            count += 1
            sum &+= n
        }
        try results.put([count, sum])
    }
}

/// Gets every item of a joinable queue and marks it done.
struct DrainJoinable: ParallelFunction {
    var queue: JoinableQueue<Int>
    var count: Int
    func callAsFunction(_: Void) throws {
        for _ in 0..<count {
            _ = try queue.get(timeout: 30)
            usleep(1000)
            try queue.taskDone()
        }
    }
}

/// Echoes bytes back (reversed) over a connection until it reads "stop" or end-of-file.
struct Echo: ParallelFunction {
    var connection: Connection
    func callAsFunction(_: Void) throws {
        while true {
            let text = try connection.recv(String.self)
            if text == "stop" { return }
            try connection.send(String(text.reversed()))
        }
    }
}

/// Sends one value over a connection and ends.
struct SendOnce: ParallelFunction {
    var connection: Connection
    var text: String
    func callAsFunction(_: Void) throws {
        try connection.send(text)
    }
}

/// Round-trips a big payload: gets it from `inbox`, puts it back doubled on `outbox`.
struct BounceBytes: ParallelFunction {
    var inbox: Queue<[UInt8]>
    var outbox: Queue<[UInt8]>
    func callAsFunction(_: Void) throws {
        let bytes = try inbox.get(timeout: 30)
        try outbox.put(bytes.map { $0 &* 2 })
    }
}

/// Exits with `coded + uncoded`; `uncoded` is left out of its encoding (decoded as 0).
struct ExitWithUncoded: ParallelFunction {
    var coded: Int32
    var uncoded: Int32 = 0
    private enum CodingKeys: String, CodingKey { case coded }
    init(coded: Int32, uncoded: Int32) {
        self.coded = coded
        self.uncoded = uncoded
    }
    func callAsFunction(_: Void) { exit(coded + uncoded) }
}

/// Starts a child process with `method` (inside a child: nesting) and exits with its exit
/// code; 98 if the grandchild did not end within 20 s, 97 if it could not start.
struct StartNested: ParallelFunction {
    var method: StartMethod
    var status: Int32
    func callAsFunction(_: Void) {
        let child = Multiprocessing.Process(target: EndWith(way: .status, status: status), startMethod: method)
        do {
            try child.start()
            guard try child.join(timeout: 20) else {
                try? child.kill()
                exit(98)
            }
        } catch {
            exit(97)
        }
        exit(child.exitCode ?? 96)
    }
}

/// Makes a pool with `method` inside a child, maps with it twice; exits 0 if the results
/// are right, 3 if not, 4 if the pool failed.
struct PoolInTarget: ParallelFunction {
    var method: StartMethod
    func callAsFunction(_: Void) {
        do {
            let squares = try Pool.with(processes: 2, startMethod: method) { pool in
                try pool.map(Square(), 0..<20) + pool.map(Square(), 0..<5, chunkSize: 1)
            }
            exit(squares == (0..<20).map { $0 * $0 } + (0..<5).map { $0 * $0 } ? 0 : 3)
        } catch {
            exit(4)
        }
    }
}

/// A process-wide lock that a forked child must get unlocked even if another thread of the
/// parent held it at the fork.
let heldAcrossFork = ConditionLock(resetInForkedChild: true)

/// Exits 0 if `heldAcrossFork` can be taken (at once), 1 if it is still locked.
struct TakeLockHeldAcrossFork: ParallelFunction {
    func callAsFunction(_: Void) {
        guard heldAcrossFork.tryLock() else { exit(1) }
        heldAcrossFork.unlock()
        exit(0)
    }
}
/// Reports `Multiprocessing.parentProcess` as seen in the child: "pid name" or "nil".
struct ReportParent: ParallelFunction {
    var queue: Queue<String>
    func callAsFunction(_: Void) throws {
        let parent = Multiprocessing.parentProcess
        try queue.put(parent.map { "\($0.pid) \($0.name)" } ?? "nil")
    }
}

/// Starts a child with `method` and reports what *it* sees as its parent (a grandchild's
/// parent is this child, named as this child).
struct ReportGrandchildParent: ParallelFunction {
    var queue: Queue<String>
    var method: StartMethod
    func callAsFunction(_: Void) throws {
        let child = Multiprocessing.Process(target: ReportParent(queue: queue), startMethod: method)
        try child.start()
        _ = try child.join(timeout: 20)
        try queue.put("\(getpid()) \(Multiprocessing.currentProcess.name)")
    }
}

/// A pool task: the worker's `parentProcess` as "pid name", or "nil".
struct WorkerParent: ParallelFunction {
    func callAsFunction(_: Int) -> String {
        Multiprocessing.parentProcess.map { "\($0.pid) \($0.name)" } ?? "nil"
    }
}

/// Starts a child with `method` that puts numbers on `queue` (a queue this process
/// received), joins it and exits with its exit code (98: it did not end in 20 s).
struct PassQueueOn: ParallelFunction {
    var queue: Queue<Int>
    var method: StartMethod
    func callAsFunction(_: Void) throws {
        let child = Multiprocessing.Process(target: PutNumbers(queue: queue, first: 10, count: 3), startMethod: method)
        try child.start()
        guard try child.join(timeout: 20) else { exit(98) }
        exit(child.exitCode ?? 96)
    }
}

/// Sleeps `seconds`, then puts `value`.
struct PutLater: ParallelFunction {
    var queue: Queue<Int>
    var seconds: Double
    var value: Int
    func callAsFunction(_: Void) throws {
        usleep(UInt32(seconds * 1e6))
        try queue.put(value)
    }
}

/// Starts a non-daemon and a daemon child (both `PutLater`) with `method` and returns
/// without joining them: as in Python, the non-daemon one is waited for when this child
/// ends, the daemon one terminated.
struct LeaveChildrenRunning: ParallelFunction {
    var queue: Queue<Int>
    var method: StartMethod
    func callAsFunction(_: Void) throws {
        try Multiprocessing.Process(target: PutLater(queue: queue, seconds: 0.3, value: 1), startMethod: method).start()
        try Multiprocessing.Process(target: PutLater(queue: queue, seconds: 30, value: 2), daemon: true, startMethod: method).start()
    }
}

/// A `.fork` child whose target mentions no shared objects (run as it is in memory): exits 0
/// if `currentProcess` and `parentProcess` are as given, else the number of the first check
/// that failed. With `grandchild`, it then starts and joins a `.fork` grandchild of that name
/// checking itself the same way (its failure: 10 + its code), and checks itself again (30 +).
struct CheckForkedIdentity: ParallelFunction {
    var name: String
    var daemon: Bool
    var parentPID: Int32
    var parentName: String
    var grandchild: String?

    func callAsFunction(_: Void) {
        if let failed = check() { exit(failed) }
        guard let grandchild else { return }
        // Made without `daemon:`: it takes this child's flag (as Python's does).
        let target = CheckForkedIdentity(name: grandchild, daemon: daemon, parentPID: getpid(), parentName: name)
        let p = Multiprocessing.Process(target: target, name: grandchild, startMethod: .fork)
        do {
            try p.start()
            guard try p.join(timeout: 20) else { exit(20) }
        } catch {
            exit(21)
        }
        if p.exitCode != 0 { exit(10 + (p.exitCode ?? 9)) }
        if let failed = check() { exit(30 + failed) }
    }

    private func check() -> Int32? {
        let me = Multiprocessing.currentProcess
        guard me.name == name else { return 1 }
        guard !me.isMain else { return 2 }
        guard me.daemon == daemon else { return 3 }
        guard me.pid == getpid() else { return 4 }
        guard let parent = Multiprocessing.parentProcess else { return 5 }
        guard parent.pid == parentPID, parent.name == parentName, parent.isMain == (parentName == "MainProcess") else { return 6 }
        return nil
    }
}
