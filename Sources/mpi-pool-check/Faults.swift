import Multiprocessing

#if canImport(Glibc)
import Glibc
#endif

/// `--faults`: crashing tasks and a time limit on whatever backend is automatic. A crash
/// costs its input and nothing else; the pool (and, under mpirun, the job) goes on.
enum Faults {
    static func run(perRank: Int?) throws {
        // Replacements are started while this thread iterates results: not `.fork` (a worker
        // forked while this thread holds a Swift runtime lock hangs; README, fork safety).
        // Under mpirun the start method does not apply: a worker rank forks its workers while
        // no other thread of it runs Swift code.
        let pool = try Pool(startMethod: .forkserver, processesPerRank: perRank)
        print("BACKEND \(pool.backendSummary)")
        let inputs = Array(0..<200)
        let faulty = inputs.filter { CrashSome.fault($0) != nil }
        for chunk in [1, 4] {
            var failed: [Int] = []
            var wrong: [String] = []
            var seen = Set<Int>()
            let stream = try pool.imapUnordered(CrashSome(), inputs, chunkSize: chunk)
            var count = 0
            for (index, result) in zip(0..., try pool.imap(CrashSome(), inputs, chunkSize: chunk)) {
                count += 1
                switch result {
                case .success(let value):
                    if value != index * index { wrong.append("input \(index) gave \(value)") }
                case .failure(let error as WorkerDied):
                    failed.append(index)
                    if error.inputIndex != index { wrong.append("input \(index) failed naming input \(String(describing: error.inputIndex))") }
                    if error.pid == nil { wrong.append("input \(index): WorkerDied without a pid") }
                    let how = error.signal.map { "signal \($0)" } ?? error.exitCode.map { "exit \($0)" } ?? "?"
                    if how != CrashSome.fault(index) { wrong.append("input \(index): \(how), expected \(CrashSome.fault(index)!)") }
                    if pool.backend == .mpi, pool.processes > 1, !pool.backendSummary.contains("rank 0 hosts"), error.rank == nil {
                        wrong.append("input \(index): WorkerDied without a rank")
                    }
                case .failure(let error):
                    wrong.append("input \(index): \(error)")
                }
            }
            var unorderedFailures = 0
            for result in stream {
                switch result {
                case .success(let value):
                    let root = Int(Double(value).squareRoot().rounded())
                    if !seen.insert(root).inserted { wrong.append("imapUnordered: \(root) twice") }
                case .failure(let error as WorkerDied):
                    unorderedFailures += 1
                    if let index = error.inputIndex, !seen.insert(index).inserted { wrong.append("imapUnordered: \(index) twice") }
                case .failure(let error):
                    wrong.append("imapUnordered: \(error)")
                }
            }
            check("faults chunk=\(chunk) results", count, inputs.count)
            check("faults chunk=\(chunk) failed", failed, faulty)
            check("faults chunk=\(chunk) imapUnordered failed", unorderedFailures, faulty.count)
            check("faults chunk=\(chunk) imapUnordered seen", seen.count, inputs.count)
            check("faults chunk=\(chunk) problems", wrong, [])
        }
        // A map fails fast with the lowest input among those that failed first (a segfault
        // takes longer: the Swift runtime prints a backtrace); the pool goes on.
        do {
            _ = try pool.map(CrashSome(), Array(0..<60), chunkSize: 1)
            check("map with crashes", "no error", "WorkerDied")
        } catch let error as WorkerDied {
            let index = error.inputIndex ?? -1
            check("map with crashes", "WorkerDied at a faulty input: \(CrashSome.fault(index) != nil)", "WorkerDied at a faulty input: true")
        }
        check("map after crashes", try pool.map(Affine(a: 2, b: 0), Array(0..<20)), (0..<20).map { 2 * $0 })
        // A time limit kills the long task's worker; the others finish.
        let started = monotonicSeconds()
        let timed = try Array(pool.imap(SleepFor(), [0, 10_000, 0, 0], chunkSize: 1, timeout: 0.5)).map { result -> String in
            switch result {
            case .success(let value): return "ok \(value)"
            case .failure(let error as TaskTimedOut): return "timed out \(error.inputIndex)"
            case .failure(let error): return "\(error)"
            }
        }
        let seconds = monotonicSeconds() - started
        print("faults timeout took \(seconds) s")
        check("faults timeout", timed, ["ok 0", "timed out 1", "ok 0", "ok 0"])
        check("faults timeout within 5 s", seconds < 5, true)
        check("after timeout", try pool.apply(Affine(a: 1, b: 1), 41), 42)
        // A limit shorter than a nanosecond is a limit too (not "none"), in every layout.
        let tinyStarted = monotonicSeconds()
        let tiny = try Array(pool.imap(SleepFor(), [10_000], chunkSize: 1, timeout: 1e-12)).map { result -> String in
            if case .failure(let error as TaskTimedOut) = result { return "timed out \(error.inputIndex)" }
            return "\(result)"
        }
        check("faults timeout of 1e-12 s", tiny, ["timed out 0"])
        // Killed, not run to its end (10 s); the bound is the one above (a loaded CI machine took
        // over 1.5 s once to kill and replace the worker).
        let tinySeconds = monotonicSeconds() - tinyStarted
        print("faults timeout of 1e-12 s took \(tinySeconds) s")
        check("faults timeout of 1e-12 s within 5 s", tinySeconds < 5, true)
        // Cancelling a call kills the workers running its inputs (a rank that schedules its
        // workers is asked to); the caller hears at once, the pool goes on.
        let cancelStarted = monotonicSeconds()
        let pending = try pool.mapAsync(SleepFor(), [10_000, 10_000, 10_000, 10_000], chunkSize: 1)
        usleep(300_000)
        pending.cancel()
        var cancelled = "no error"
        do {
            _ = try pending.get(timeout: 20)
        } catch let error as PoolError {
            cancelled = "\(error.code)"
        } catch {
            cancelled = "\(error)"
        }
        check("faults cancel", cancelled, "cancelled")
        check("after cancel", try pool.apply(Affine(a: 1, b: 1), 41), 42)
        let cancelSeconds = monotonicSeconds() - cancelStarted
        print("faults cancel and the next call took \(cancelSeconds) s")
        check("faults cancel and the next call within 5 s", cancelSeconds < 5, true)
        // Every worker place names the process in it now: the replacements too.
        let placement = pool.workerPlacement
        check(
            "placement after crashes names every worker",
            placement.count == pool.processes && placement.allSatisfy { $0.pid != nil }
                && Set(placement.compactMap(\.pid)).count == placement.count, true)
        pool.close()
        try pool.join()
        fflush(nil)
        print(mismatches == 0 ? "FAULTS OK workers=\(pool.processes)" : "FAULTS FAILED mismatches=\(mismatches)")
    }

    static func monotonicSeconds() -> Double {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        return Double(now.tv_sec) + Double(now.tv_nsec) / 1e9
    }
}
