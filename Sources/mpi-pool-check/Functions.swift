import Logging
import Multiprocessing

#if canImport(Glibc)
import Glibc
#endif

/// a·x + b.
struct Affine: ParallelFunction {
    var a: Int
    var b: Int
    func callAsFunction(_ x: Int) -> Int { a * x + b }
}

/// base^exponent, for starmap.
struct Power: ParallelFunction {
    func callAsFunction(_ args: Arguments<Int, Int>) -> Int {
        let (base, exponent) = args.values
        var result = 1
        for _ in 0..<exponent { result *= base }
        return result
    }
}

/// Throws for one input.
struct FailAt: ParallelFunction {
    var bad: Int
    func callAsFunction(_ x: Int) throws -> Int {
        if x == bad { throw CheckError.refused(x) }
        return x
    }
}

/// Sleeps, then returns its input.
struct Sleep: ParallelFunction {
    var milliseconds: Int
    func callAsFunction(_ x: Int) -> Int {
        usleep(UInt32(milliseconds * 1000))
        return x
    }
}

/// Forks a child that sleeps `seconds` and returns its pid without waiting for it.
struct LeaveAChild: ParallelFunction {
    func callAsFunction(_ seconds: Int) -> Int32 {
        let pid = fork()
        if pid == 0 {
            sleep(UInt32(seconds))
            _exit(0)
        }
        return pid
    }
}

/// The trivial task of the benchmark.
struct Increment: ParallelFunction {
    func callAsFunction(_ x: Int) -> Int { x &+ 1 }
}

enum CheckError: Error, CustomStringConvertible {
    case refused(Int)
    case failRank0

    var description: String {
        switch self {
        case .refused(let x): "refused \(x)"
        case .failRank0: "--fail-rank0: rank 0 throws after creating the pool"
        }
    }
}

/// Sleeps `x` milliseconds and returns `x`.
struct SleepFor: ParallelFunction {
    func callAsFunction(_ x: Int) -> Int {
        usleep(UInt32(x * 1000))
        return x
    }
}

/// Appends "x\n" to the file at `log` (every run of every input leaves a line), sleeps
/// `milliseconds`, returns x².
struct LoggedSquare: ParallelFunction {
    var log: String
    var milliseconds: Int
    func callAsFunction(_ x: Int) -> Int {
        let fd = open(log, O_WRONLY | O_APPEND | O_CREAT, 0o644)
        if fd >= 0 {
            var line = "\(x)\n"
            line.withUTF8 { _ = write(fd, $0.baseAddress, $0.count) }
            close(fd)
        }
        usleep(UInt32(milliseconds * 1000))
        return x * x
    }
}

/// Logs with swift-log in a task (the record is printed by the parent / rank 0).
struct LoggingTask: ParallelFunction {
    func callAsFunction(_ x: Int) -> Int {
        Logger(label: "check").info("task \(x) says hello")
        return x
    }
}

/// Reads `mainTable`, a global of main.swift.
struct CountMainTable: ParallelFunction {
    func callAsFunction(_: Int) -> Int { mainTable.count }
}

/// Prints a line (a Process target).
struct PrintLine: ParallelFunction {
    var text: String
    func callAsFunction(_: Void) { print(text) }
}

/// Squares its input, except that inputs ≡ 7 (mod 50) segfault their worker, inputs ≡ 23
/// (mod 50) SIGKILL it and inputs ≡ 41 (mod 50) call `exit(9)`.
struct CrashSome: ParallelFunction {
    static func fault(_ x: Int) -> String? {
        switch x % 50 {
        case 7: "signal 11"
        case 23: "signal 9"
        case 41: "exit 9"
        default: nil
        }
    }

    func callAsFunction(_ x: Int) -> Int {
        switch x % 50 {
        case 7:
            // A real fault (not `raise`: the Swift runtime's backtracer returns from a raised SIGSEGV).
            UnsafeMutablePointer<Int>(bitPattern: 8 | (x & 0))!.pointee = x
        case 23: kill(getpid(), SIGKILL)
        case 41: exit(9)
        default: break
        }
        return x * x
    }
}

/// A few draws from the input's own stream (`pool.map(_:_:seed:)`), mixed with the input:
/// the same on every backend, worker count and chunk size.
struct SeededDraws: RandomizedFunction {
    func callAsFunction(_ x: Int, random: inout RandomStream) -> UInt64 {
        var mixed = UInt64(x)
        for _ in 0..<(x % 5 + 1) { mixed = mixed &* 31 &+ random.next() }
        return mixed
    }
}

/// Writes one line on standard output and one (without its newline) on standard error;
/// returns its pid (for `--tag-output`).
/// A `Process` target: one line on standard output, one on standard error.
struct ProcessChatter: ParallelFunction {
    var method: String
    func callAsFunction(_: Void) {
        print("process out \(method)")
        fflush(nil)
        _ = "process err \(method)\n".utf8CString.withUnsafeBufferPointer { write(2, $0.baseAddress, $0.count - 1) }
    }
}

struct Chatter: ParallelFunction {
    func callAsFunction(_ x: Int) -> Int32 {
        print("chatter out \(x)")
        // Two writes for one line: the parent joins them.
        for piece in ["chatter err \(x) part one, ", "part two\n"] {
            _ = piece.utf8CString.withUnsafeBufferPointer { write(2, $0.baseAddress, $0.count - 1) }
            usleep(1_000)
        }
        return getpid()
    }
}

/// Set by `MarkInitialized`, the pool's initializer, in each worker process.
nonisolated(unsafe) var initializedHere = false

/// A pool initializer: marks the worker process.
struct MarkInitialized: ParallelFunction {
    func callAsFunction(_: Void) { initializedHere = true }
}

/// Whether the worker ran the pool's initializer, and which process it is.
struct WorkerMark: Codable, Sendable {
    var initialized: Bool
    var pid: Int32
}

struct ReportWorker: ParallelFunction {
    func callAsFunction(_ x: Int) -> WorkerMark { WorkerMark(initialized: initializedHere, pid: getpid()) }
}

/// A `Process` target that does nothing.
struct DoNothing: ParallelFunction {
    func callAsFunction(_: Void) {}
}
