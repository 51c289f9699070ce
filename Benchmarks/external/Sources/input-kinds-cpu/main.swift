// Each input kind's map in a block of its own (no other kind in between), with the CPU time
// it costs: this process's (the calling thread and the pool's thread) and the workers'.
//
//   swift build -c release --package-path Benchmarks/external --product input-kinds-cpu
//   Benchmarks/external/.build/release/input-kinds-cpu [repetitions per block, default 200]
//
// For every block: the median wall time of one map of 200 000 squares (2 workers, fork, the
// default chunk size), and the mean CPU time per map of this process (getrusage) and of both
// workers together (/proc/PID/schedstat), in µs. The blocks run array, set, lazyMap twice.

import Glibc
import Multiprocessing

struct Square: ParallelFunction {
    func callAsFunction(_ x: Int) -> Int { x &* x }
}

func microseconds(_ time: timeval) -> Double { Double(time.tv_sec) * 1e6 + Double(time.tv_usec) }

/// This process's CPU time, µs.
func processCPU() -> Double {
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    return microseconds(usage.ru_utime) + microseconds(usage.ru_stime)
}

func now() -> Double {
    var time = timespec()
    clock_gettime(CLOCK_MONOTONIC, &time)
    return Double(time.tv_sec) * 1e6 + Double(time.tv_nsec) / 1e3
}

/// A process's time on a CPU, µs (the first field of /proc/PID/schedstat, in ns).
func schedstat(_ pid: Int32) -> Double {
    guard let file = fopen("/proc/\(pid)/schedstat", "r") else { return 0 }
    defer { fclose(file) }
    var line = [CChar](repeating: 0, count: 128)
    guard fgets(&line, Int32(line.count), file) != nil else { return 0 }
    return Double(strtoull(line, nil, 10)) / 1e3
}

func median(_ values: [Double]) -> Double { values.sorted()[values.count / 2] }

/// Runs the blocks (in a nonisolated function: a `lazy.map` closure written at the top level
/// would be isolated to the main actor, and checked at run time on every call).
nonisolated func run(repetitions: Int) throws {
    let n = 200_000
    let pool = try Pool(processes: 2, startMethod: .fork)
    defer { pool.terminate() }
    let array = Array(0..<n)
    let set = Set(array)
    let pids = pool.workerPlacement.compactMap(\.pid)
    func call(_ inputs: some Sequence<Int>) throws { _ = try pool.map(Square(), inputs) }
    for kind in ["array", "set", "lazyMap", "array", "set", "lazyMap"] {
        try call(array)
        let (wall0, cpu0, workers0) = (now(), processCPU(), pids.map(schedstat).reduce(0, +))
        var walls: [Double] = []
        for _ in 0..<repetitions {
            let start = now()
            switch kind {
            case "array": try call(array)
            case "set": try call(set)
            default: try call((0..<n).lazy.map { $0 })
            }
            walls.append(now() - start)
        }
        let count = Double(repetitions)
        let workers = (pids.map(schedstat).reduce(0, +) - workers0) / count
        print(
            "\(kind) median wall \(Int(median(walls))) mean wall \(Int((now() - wall0) / count))",
            "process cpu \(Int((processCPU() - cpu0) / count)) workers cpu \(Int(workers))")
    }
}

try run(repetitions: Int(CommandLine.arguments.dropFirst().first ?? "200") ?? 200)
