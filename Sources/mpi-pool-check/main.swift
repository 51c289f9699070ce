// The same pool program on whatever backend is automatic: local worker processes, or the
// ranks of an mpirun job. Prints deterministic result lines (identical on every backend),
// then "POOL OK backend=<mpi|local> workers=N"; exits 1 on a mismatch.
//
//   mpi-pool-check                  run the checks
//   mpi-pool-check --fail-rank0     create the pool, then throw from main (mpirun must fail)
//   mpi-pool-check --bench [tasks]  JSON lines: map throughput, apply round trip
//   mpi-pool-check --idle <s>       sleep s seconds before a pool and s with one (CPU check)
//   mpi-pool-check --no-pool        make no pool at all (the workers must still end)
//   mpi-pool-check --exit-live      exit(3) while a pool is busy (the exit handler stops it)
//   mpi-pool-check --leftover       a task forks a child that sleeps 60 s and returns its pid;
//                                   prints "LEFTOVER pid=…" and ends (the job must not wait)
//   mpi-pool-check --after-terminate  terminate() a pool (no join) and at once start a Process
//                                   and a new pool; prints "AFTER TERMINATE process exit=0 pool=…"
//   mpi-pool-check --checkpoint <journal> <log>
//                                   map 60 inputs (100 ms each) with a checkpoint journal, each
//                                   run of an input logged; prints "CHECKPOINT OK sum=…"
//   mpi-pool-check --checkpoint-stream ordered|unordered <journal> <log>
//                                   the same with imap / imapUnordered (results in input order,
//                                   or any order)
//   mpi-pool-check --main-global M  a .spawn/.forkserver (M) pool task reads a global of
//                                   main.swift (uninitialised there: the worker crashes)
//   mpi-pool-check --stdio-once     numbered lines printed around .fork workers (first ones,
//                                   replacements, a .fork Process): each must appear once
//   mpi-pool-check --faults [N]     1 in ~17 inputs crash their worker (segfault, SIGKILL,
//                                   exit); a 10 s task with a 0.5 s limit, a 2 s one with a
//                                   1e-12 s limit; N processes per rank. Prints "FAULTS OK"
//                                   when exactly the faulty inputs failed, each once, naming
//                                   its worker, and the rest is right
//   mpi-pool-check --wedge [N]      a worker stopped (SIGSTOP) before it takes its work is
//                                   replaced after SWIFTMP_WEDGE_SECONDS and the map completes;
//                                   N processes per rank. Prints "WEDGE OK"
//   mpi-pool-check --vacancy <cgroup> [N]
//                                   rank 1 (in the pids cgroup <cgroup>) can start no process
//                                   for 1.5 s while a maxTasksPerChild: 1 map runs; every input
//                                   must give its result. Prints "VACANCY OK"
//   mpi-pool-check --tag-output     local pools (each start method) whose tasks print a line
//                                   on stdout and one on stderr; prints "WORKERS <method> <pids>"
//                                   (run it with SWIFTMP_TAG_OUTPUT=1 to see the lines tagged)
//   mpi-pool-check --tag-output option|off
//                                   the same with Pool(tagOutput: true|false), and after each
//                                   pool a Process(tagOutput:) of that method printing a line on
//                                   each stream; prints "PROCESS <method> <pid> exit=<code>"
// A pool that cannot start prints "POOL START FAILED: <error>" and exits 2.
import Logging
import Multiprocessing

#if canImport(Glibc)
import Glibc
#endif

nonisolated(unsafe) var mismatches = 0
/// Initialised by main: never in a .spawn or .forkserver worker (see --main-global).
let mainTable = [10, 20, 30]

func check<T: Equatable>(_ name: String, _ got: T, _ expected: T) {
    print("\(name): \(got)")
    fflush(nil)
    if got != expected {
        mismatches += 1
        print("MISMATCH \(name): expected \(expected)")
    }
}

func expectRemoteError<T>(_ name: String, index: Int, _ body: () throws -> T) {
    do {
        _ = try body()
        check(name, "no error", "RemoteError at \(index)")
    } catch let error as RemoteError {
        check(name, "RemoteError inputIndex=\(error.inputIndex) \(error.message)", "RemoteError inputIndex=\(index) refused \(index)")
    } catch {
        check(name, "\(error)", "RemoteError at \(index)")
    }
}

let arguments = CommandLine.arguments.dropFirst()
if arguments.contains("--no-pool") {
    print("NO POOL")
    exit(0)
}
let words = Array(arguments)
if words.first == "--main-global", words.count > 1, let method = StartMethod(rawValue: words[1]) {
    print("main sees \(mainTable.count) entries")
    do {
        let counts = try Pool.with(processes: 1, startMethod: method, backend: .local) { try $0.map(CountMainTable(), [0]) }
        print("TASK READ \(counts)")
    } catch let error as WorkerDied {
        print("WORKER DIED signal=\(error.signal.map(String.init) ?? "none")")
    }
    exit(0)
}
if words.first == "--stdio-once" {
    // Run with standard output to a file or pipe (fully buffered): a forked child must never
    // write bytes the parent had buffered before the fork.
    print("LINE before-pool")
    try Pool.with(processes: 2, startMethod: .fork, maxTasksPerChild: 1, backend: .local) { pool in
        // Every chunk ends its worker: the replacements are forked while this thread prints.
        let pending = try pool.mapAsync(Increment(), 0..<60, chunkSize: 1)
        var n = 0
        while !pending.isReady && n < 200_000 {
            print("LINE during-\(n)")
            n += 1
        }
        _ = try pending.get(timeout: 60)
    }
    print("LINE before-process")
    let process = Multiprocessing.Process(target: PrintLine(text: "LINE from-process"), startMethod: .fork)
    try process.start()
    _ = try process.join(timeout: 30)
    print("LINE end exit=\(process.exitCode.map(String.init) ?? "none")")
    exit(0)
}
if words.first == "--tag-output-mpi" {
    // Under mpirun: Pool(tagOutput: true) on the MPI backend; the ranks' local workers tag.
    let pids = try Pool.with(processes: 2, backend: .mpi, tagOutput: true) { pool in
        try pool.map(Chatter(), 0..<4, chunkSize: 1)
    }
    print("WORKERS mpi \(Set(pids).sorted().map(String.init).joined(separator: " "))")
    exit(0)
}
if words.first == "--tag-output" {
    // "option": Pool(tagOutput: true) and Process(tagOutput: true); "off": tagOutput: false.
    let option: Bool? =
        switch words.dropFirst().first {
        case "option": true;
        case "off": false;
        default: nil
        }
    for method in [StartMethod.fork, .forkserver, .spawn] {
        let pids = try Pool.with(processes: 2, startMethod: method, backend: .local, tagOutput: option) { pool in
            try pool.map(Chatter(), 0..<4, chunkSize: 1)
        }
        print("WORKERS \(method) \(Set(pids).sorted().map(String.init).joined(separator: " "))")
        fflush(nil)
        if option != nil {
            let process = Multiprocessing.Process(
                target: ProcessChatter(method: "\(method)"), startMethod: method,
                tagOutput: option)
            try process.start()
            _ = try process.join(timeout: 30)
            print("PROCESS \(method) \(process.pid.map(String.init) ?? "none") exit=\(process.exitCode.map(String.init) ?? "none")")
            fflush(nil)
        }
    }
    exit(0)
}
if let index = words.firstIndex(of: "--idle"), index + 1 < words.count, let seconds = UInt32(words[index + 1]) {
    // Rank 0 sleeps before and while a pool lives: the worker ranks must not burn CPU.
    sleep(seconds)
    try Pool.with { pool in
        _ = try pool.apply(Increment(), 1)
        sleep(seconds)
    }
    print("IDLE DONE")
    exit(0)
}
// Records logged in tasks are printed here, by rank 0 / the parent, with where they came from.
struct PrintingLogHandler: LogHandler {
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .info
    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }
    func log(event: LogEvent) {
        let rank = event.metadata?["rank"].map { " rank=\($0)" } ?? ""
        let pid = event.metadata?["pid"] != nil ? " pid" : ""
        print("[log\(rank)\(pid) in \(getpid())] \(event.level) \(event.message)")
        fflush(nil)
    }
}
WorkerLogging.bootstrap { _ in PrintingLogHandler() }

if words.first == "--wedge" {
    try Wedge.run(perRank: words.dropFirst().first.flatMap { Int($0) })
    exit(mismatches == 0 ? 0 : 1)
}

if words.first == "--vacancy", words.count > 1 {
    try Vacancy.run(cgroup: words[1], perRank: words.dropFirst(2).first.flatMap { Int($0) })
    exit(mismatches == 0 ? 0 : 1)
}

if words.first == "--faults" {
    let perRank = words.dropFirst().first.flatMap { Int($0) }
    try Faults.run(perRank: perRank)
    exit(mismatches == 0 ? 0 : 1)
}

let pool: Pool
do {
    pool = try Pool()
} catch {
    print("POOL START FAILED: \(error)")
    fflush(nil)
    exit(2)
}

if arguments.contains("--after-terminate") {
    // terminate() without join(), then at once a Process and a new pool: they get the
    // workers the terminated pool gives back (under mpirun: once its ranks closed them).
    _ = try pool.map(Sleep(milliseconds: 1), 0..<8, chunkSize: 1)
    pool.terminate()
    let process = Process(target: DoNothing())
    try process.start()
    try process.join(timeout: 30)
    let squares = try Pool.with { try $0.map(Sleep(milliseconds: 0), [1, 2, 3]) }
    print("AFTER TERMINATE process exit=\(process.exitCode.map(String.init) ?? "none") pool=\(squares)")
    exit(0)
}
if arguments.contains("--exit-live") {
    _ = try pool.mapAsync(Sleep(milliseconds: 20), 0..<40, chunkSize: 1)
    usleep(50_000)
    print("EXIT WITH LIVE POOL")
    fflush(nil)
    exit(3)
}

if arguments.contains("--leftover") {
    let pid = try pool.apply(LeaveAChild(), 60)
    print("LEFTOVER pid=\(pid)")
    fflush(nil)
    exit(0)
}

if let index = words.firstIndex(of: "--checkpoint-stream"), index + 3 < words.count {
    let ordered = words[index + 1] == "ordered"
    let function = LoggedSquare(log: words[index + 3], milliseconds: 100)
    let stream =
        ordered
        ? try pool.imap(function, 0..<60, chunkSize: 1, checkpoint: words[index + 2])
        : try pool.imapUnordered(function, 0..<60, chunkSize: 1, checkpoint: words[index + 2])
    let results = try stream.map { try $0.get() }
    let expected = (0..<60).map { $0 * $0 }
    let same = ordered ? results == expected : results.sorted() == expected
    print(same ? "CHECKPOINT OK sum=\(results.reduce(0, +))" : "CHECKPOINT MISMATCH \(results)")
    pool.close()
    try pool.join()
    exit(same ? 0 : 1)
}
if let index = words.firstIndex(of: "--checkpoint"), index + 2 < words.count {
    let results = try pool.map(
        LoggedSquare(log: words[index + 2], milliseconds: 100), 0..<60, chunkSize: 1,
        checkpoint: words[index + 1])
    let expected = (0..<60).map { $0 * $0 }
    print(results == expected ? "CHECKPOINT OK sum=\(results.reduce(0, +))" : "CHECKPOINT MISMATCH \(results)")
    pool.close()
    try pool.join()
    exit(results == expected ? 0 : 1)
}

if arguments.contains("--fail-rank0") {
    throw CheckError.failRank0
}

if arguments.first == "--bench" {
    let tasks = arguments.dropFirst().first.flatMap { Int($0) } ?? 200_000
    print("# backend: \(pool.backendSummary)")
    try Bench.run(pool: pool, tasks: tasks, runs: 5)
    pool.close()
    try pool.join()
    exit(0)
}

let affine = Affine(a: 3, b: 1)
let inputs = Array(0..<50)
let expected = inputs.map { affine($0) }
for chunk in [1, 3, nil] as [Int?] {
    let label = chunk.map(String.init) ?? "default"
    check("map chunk=\(label)", try pool.map(affine, inputs, chunkSize: chunk), expected)
    check(
        "starmap chunk=\(label)",
        try pool.starmap(Power(), [(2, 10), (3, 4), (5, 3), (7, 0), (-2, 3)], chunkSize: chunk),
        [1024, 81, 125, 1, -8])
    expectRemoteError("map failure chunk=\(label)", index: 37) {
        try pool.map(FailAt(bad: 37), 0..<100, chunkSize: chunk)
    }
    check("mapAsync chunk=\(label)", try pool.mapAsync(affine, inputs, chunkSize: chunk).get(), expected)
    // Input i draws from stream i of the seed: the results (printed as a checksum) are the
    // serial ones on every backend.
    let seeded = try pool.map(SeededDraws(), inputs, seed: 2024, chunkSize: chunk)
    check("seeded map chunk=\(label)", seeded.reduce(0, &+), try SeededDraws().serial(inputs, seed: 2024).reduce(0, &+))
}
for chunk in [1, 3] {
    check("imap chunk=\(chunk)", try Array(pool.imap(affine, inputs, chunkSize: chunk)).map { try $0.get() }, expected)
    check(
        "imapUnordered chunk=\(chunk)",
        try Array(pool.imapUnordered(affine, inputs, chunkSize: chunk)).map { try $0.get() }.sorted(), expected)
    check(
        "seeded imap chunk=\(chunk)",
        try Array(pool.imap(SeededDraws(), inputs, seed: 7, chunkSize: chunk)).map { try $0.get() },
        try SeededDraws().serial(inputs, seed: 7))
    expectRemoteError("imap failure chunk=\(chunk)", index: 11) {
        try Array(pool.imap(FailAt(bad: 11), 0..<20, chunkSize: chunk)).map { try $0.get() }
    }
}
check("apply", try pool.apply(affine, 7), 22)
check("applyAsync", try (0..<10).map { try pool.applyAsync(affine, $0) }.map { try $0.get() }, Array(expected.prefix(10)))
expectRemoteError("apply failure", index: 0) { try pool.apply(FailAt(bad: 0), 0) }
check("apply after failure", try pool.apply(affine, -1), -2)
check("logging task", try pool.map(LoggingTask(), [1, 2]), [1, 2])
// A time limit: the long input fails with TaskTimedOut (its local worker is killed; an MPI
// rank finishes it and the late result is dropped); the stream goes on.
check(
    "imap timeout",
    try Array(pool.imap(SleepFor(), [0, 1500, 0], timeout: 0.5)).map { result in
        switch result {
        case .success(let value): return "ok \(value)"
        case .failure(let error as TaskTimedOut): return "timed out \(error.inputIndex)"
        case .failure(let error): return "\(error)"
        }
    }, ["ok 0", "timed out 1", "ok 0"])

pool.close()
try pool.join()

// Two pools alive at once, each with its own workers (under MPI: its own share of the
// worker ranks' local workers), both working.
if pool.processes >= 2 {
    let first = try Pool(processes: 1)
    let second = try Pool(processes: pool.processes - 1)
    let a = try first.mapAsync(affine, inputs, chunkSize: 1)
    let b = try second.mapAsync(affine, [1, 2])
    check("two live pools", [try a.get(timeout: 60) == expected, try b.get(timeout: 60) == [4, 7]], [true, true])
    first.close()
    second.close()
    try first.join()
    try second.join()
}

// Consecutive pools on the same workers; a terminated pool's workers are drained first.
let busy = try Pool()
do {
    _ = try Pool()
    if busy.backend == .mpi && !busy.backendSummary.contains("rank 0 hosts") {
        check("pool beyond the free workers", "allowed", "refused")
    }
} catch let error as PoolError where error.code == .backendUnavailable && busy.backend == .mpi {
    // expected: every worker belongs to `busy`
}
_ = try busy.mapAsync(Sleep(milliseconds: 20), 0..<20, chunkSize: 1)
busy.terminate()
try busy.join()
check("pool after terminate", try Pool.with { try $0.map(affine, [1, 2, 3]) }, [4, 7, 10])
check("pool.with again", try Pool.with(processes: 1) { try $0.map(affine, inputs) }, expected)
// The pool's initializer runs in every worker before its first task, and maxTasksPerChild
// retires a worker after that many chunks (under MPI, where ranks schedule their own workers,
// the rank's engine does both).
let marks = try Pool.with(initializer: MarkInitialized(), maxTasksPerChild: 2) { try $0.map(ReportWorker(), 0..<12, chunkSize: 1) }
check("initializer ran before every task", marks.allSatisfy(\.initialized), true)
check("maxTasksPerChild 2: at most 2 tasks per process", Dictionary(grouping: marks, by: \.pid).values.allSatisfy { $0.count <= 2 }, true)

fflush(nil)
if mismatches > 0 {
    print("POOL FAILED mismatches=\(mismatches)")
    exit(1)
}
print("BACKEND \(pool.backendSummary)")
print("POOL OK backend=\(pool.backend) workers=\(pool.processes)")
