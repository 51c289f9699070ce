import Multiprocessing

#if canImport(Glibc)
import Glibc
#endif

/// `swiftmp bench ipc`: queue throughput (small ints and 1 MiB payloads, one producer
/// process → this process), one 512 MiB value to and from a pool worker (`LargeMessageBenchmarks`), pipe ping-pong round trips, `Process` start + join per start
/// method, a `SharedValue` counter incremented under its lock by two processes, and a
/// `Manager` dictionary's set and get latency — the figures `BENCHMARKS.md` compares with
/// Python's (Scripts/bench_python_ipc.py measures them the same way).
struct IPCBenchmarks {
    var repetitions: Int
    /// Only the figures whose names start with this (nil: all).
    var only: String?

    func run(_ emit: (Figure) -> Void) throws {
        func report(_ figure: Figure?) { if let figure { emit(figure) } }
        report(try median("queue.smallInts", unit: "msgs/s", runs: repetitions) { try queueInts(count: 200_000) })
        report(try median("queue.1MiB", unit: "MB/s", runs: max(3, repetitions / 2)) { try queueBytes(count: 400, size: 1 << 20) })
        // Beside the queue's 1 MiB messages: one 512 MiB value each way through a local pool.
        try LargeMessageBenchmarks(repetitions: max(3, repetitions / 2)).run(only: only, emit)
        report(try median("pipe.pingPong.int", unit: "µs", runs: repetitions) { try pingPong(rounds: 10_000, bytes: false) })
        report(try median("pipe.pingPong.bytes8", unit: "µs", runs: repetitions) { try pingPong(rounds: 10_000, bytes: true) })
        report(try median("process.rawForkExitWait", unit: "ms", runs: 1) { rawForkExitWait(times: 20) })
        for method in [StartMethod.fork, .forkserver, .spawn] {
            var figure = try median("process.startJoin.\(method.rawValue)", unit: "ms", runs: 1) { try startJoin(method, times: 20) }
            if method == .fork, figure != nil {
                // What fork copies and exit tears down: Scripts/bench.sh gives the C floor
                // (Benchmarks/c/floor.c --padded) this process's shape.
                let shape = Measure.processShape()
                figure?.extra["mappings"] = shape.mappings
                figure?.extra["rss_anon_kib"] = shape.anonKiB
            }
            report(figure)
        }
        report(try median("value.lockedIncrement", unit: "incr/s", runs: repetitions) { try lockedCounter(processes: 2, increments: 100_000) })
        guard only.map({ $0 == "manager" || $0.hasPrefix("manager.") }) ?? true else { return }
        let manager = try Manager()
        defer { manager.shutdown() }
        let dict = try manager.dict(String.self, Int.self)
        report(try median("manager.dict.set", unit: "µs", runs: repetitions) { try dictLatency(dict, operations: 2000, set: true) })
        report(try median("manager.dict.get", unit: "µs", runs: repetitions) { try dictLatency(dict, operations: 2000, set: false) })
    }

    private func median(_ name: String, unit: String, runs: Int, _ body: () throws -> Double) throws -> Figure? {
        if let only, name != only, !name.hasPrefix(only + ".") { return nil }
        var values: [Double] = []
        for _ in 0..<runs { values.append(try body()) }
        return Figure(
            name: name, value: Measure.median(values), unit: unit,
            extra: ["min": values.min() ?? .nan, "max": values.max() ?? .nan])
    }

    /// Messages per second from a child putting `count` ints to this process getting them.
    private func queueInts(count: Int) throws -> Double {
        let queue = try Queue<Int>()
        let child = Process(target: IntProducer(queue: queue, count: count))
        let start = Measure.now()
        try child.start()
        var sum = 0
        for _ in 0..<count { sum &+= try queue.get(timeout: 60) }
        let seconds = Measure.now() - start
        try child.join(timeout: 60)
        guard sum == count * (count - 1) / 2 else { throw BenchFailure("queue lost messages") }
        return Double(count) / seconds
    }

    /// MB/s (10^6 bytes) of `count` payloads of `size` bytes from a child to this process.
    private func queueBytes(count: Int, size: Int) throws -> Double {
        let queue = try Queue<[UInt8]>()
        let child = Process(target: BytesProducer(queue: queue, count: count, size: size))
        let start = Measure.now()
        try child.start()
        var total = 0
        for _ in 0..<count { total += try queue.get(timeout: 60).count }
        let seconds = Measure.now() - start
        try child.join(timeout: 60)
        guard total == count * size else { throw BenchFailure("queue lost bytes") }
        return Double(total) / seconds / 1e6
    }

    /// Median round trip in µs over `rounds` ping-pongs with an echoing child.
    private func pingPong(rounds: Int, bytes: Bool) throws -> Double {
        let (mine, theirs) = try Pipe()
        let child = Process(target: PipeEcho(connection: theirs, bytes: bytes))
        try child.start()
        theirs.close()
        let payload: [UInt8] = [1, 2, 3, 4, 5, 6, 7, 8]
        for i in 0..<100 { try mine.send(i); _ = try mine.recv(Int.self) } // warm up (the echo is in Int mode first)
        try mine.send(-1)
        let start = Measure.now()
        for i in 0..<rounds {
            if bytes {
                try mine.sendBytes(payload)
                _ = try mine.recvBytes()
            } else {
                try mine.send(i)
                _ = try mine.recv(Int.self)
            }
        }
        let seconds = Measure.now() - start
        mine.close()
        try child.join(timeout: 30)
        return seconds / Double(rounds) * 1e6
    }

    /// The floor under `process.startJoin.fork` in this process: median milliseconds of a
    /// bare `fork`, `_exit(0)` in the child, `waitpid` in the parent.
    private func rawForkExitWait(times: Int) -> Double {
        var values: [Double] = []
        for _ in 0..<times {
            let start = Measure.now()
            let pid = fork()
            if pid == 0 { _exit(0) }
            var status: Int32 = 0
            _ = waitpid(pid, &status, 0)
            values.append((Measure.now() - start) * 1e3)
        }
        return Measure.median(values)
    }

    /// Median milliseconds of `Process.start()` + `join()` of an empty target.
    /// Like Scripts/bench_python_ipc.py's, this runs after the queue and pipe figures in the
    /// same process (each side after its own); `--only process.startJoin` (on both sides)
    /// measures it in a fresh process instead. Fork costs grow with what the process has
    /// mapped: this CLI does not load Foundation; a program that imports it maps ~45 more
    /// regions, which fork copies and the child's exit tears down (~0.1 ms more per start here).
    private func startJoin(_ method: StartMethod, times: Int) throws -> Double {
        var values: [Double] = []
        for _ in 0..<times + 1 {
            let start = Measure.now()
            let p = Process(target: Nothing(), startMethod: method)
            try p.start()
            try p.join(timeout: 30)
            values.append((Measure.now() - start) * 1e3)
        }
        return Measure.median(Array(values.dropFirst())) // the first may start the fork server
    }

    /// Increments per second of `processes` children each adding 1 to one `SharedValue<Int32>`
    /// `increments` times under its lock (Python: `Value('i')`, `with v.get_lock(): v.value += 1`),
    /// from the first start to the last join.
    private func lockedCounter(processes: Int, increments: Int) throws -> Double {
        let counter = try SharedValue<Int32>(0)
        let children = (0..<processes).map { _ in Process(target: LockedIncrementer(counter: counter, times: increments)) }
        let start = Measure.now()
        for child in children { try child.start() }
        for child in children { try child.join(timeout: 60) }
        let seconds = Measure.now() - start
        guard counter.value == Int32(processes * increments) else { throw BenchFailure("the locked counter lost increments") }
        return Double(processes * increments) / seconds
    }

    /// Mean µs of one `set` (or `get`) on a `Manager` dictionary from this process.
    private func dictLatency(_ dict: DictProxy<String, Int>, operations: Int, set: Bool) throws -> Double {
        let keys = (0..<100).map { "key\($0)" }
        for (i, key) in keys.enumerated() { try dict.set(key, i) }
        let start = Measure.now()
        for i in 0..<operations {
            if set {
                try dict.set(keys[i % keys.count], i)
            } else {
                guard try dict.get(keys[i % keys.count]) != nil else { throw BenchFailure("the manager dict lost a key") }
            }
        }
        return (Measure.now() - start) / Double(operations) * 1e6
    }
}

struct BenchFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

struct IntProducer: ParallelFunction {
    var queue: Queue<Int>
    var count: Int
    func callAsFunction(_: Void) throws {
        for i in 0..<count { try queue.put(i) }
    }
}

struct BytesProducer: ParallelFunction {
    var queue: Queue<[UInt8]>
    var count: Int
    var size: Int
    func callAsFunction(_: Void) throws {
        let payload = [UInt8](repeating: 42, count: size)
        for _ in 0..<count { try queue.put(payload) }
    }
}

/// Echoes Ints until -1, then (in bytes mode) raw messages until end-of-file.
struct PipeEcho: ParallelFunction {
    var connection: Connection
    var bytes: Bool
    func callAsFunction(_: Void) throws {
        while true {
            let value = try connection.recv(Int.self)
            if value == -1 { break }
            try connection.send(value)
        }
        do {
            while true {
                if bytes {
                    try connection.sendBytes(try connection.recvBytes())
                } else {
                    try connection.send(try connection.recv(Int.self))
                }
            }
        } catch let error as ConnectionError where error.code == .endOfFile {
            return
        }
    }
}

struct LockedIncrementer: ParallelFunction {
    var counter: SharedValue<Int32>
    var times: Int
    func callAsFunction(_: Void) throws {
        for _ in 0..<times { counter.withLock { $0 += 1 } }
    }
}

struct Nothing: ParallelFunction {
    func callAsFunction(_: Void) {}
}
