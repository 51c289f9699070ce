import Multiprocessing

#if canImport(Glibc)
import Glibc
#endif

/// `--wedge`: a worker stopped with SIGSTOP before it takes its work (as a worker stuck at
/// its first message) is killed and replaced once `SWIFTMP_WEDGE_SECONDS` pass — by the
/// engine for a local worker, by its rank for a relayed one, by the rank's engine when the
/// rank schedules its own — and every input gives its result. Prints "WEDGE OK" then.
enum Wedge {
    static func run(perRank: Int?) throws {
        let pool = try Pool(startMethod: .forkserver, processesPerRank: perRank)
        print("BACKEND \(pool.backendSummary)")
        let placement = pool.workerPlacement
        guard let victim = placement.last?.pid else {
            print("MISMATCH no worker pid in \(placement)")
            return
        }
        guard kill(victim, SIGSTOP) == 0 else {
            print("MISMATCH cannot stop worker \(victim): errno \(errno)")
            return
        }
        let start = monotonicSeconds()
        let results = try pool.map(Sleep(milliseconds: 20), Array(0..<(pool.processes * 6)), chunkSize: 1)
        let elapsed = monotonicSeconds() - start
        check("wedge results", results, Array(0..<(pool.processes * 6)))
        let after = pool.workerPlacement
        check("wedge stopped worker replaced", after.contains { $0.pid == victim }, false)
        pool.close()
        try pool.join()
        print("WEDGE OK workers=\(pool.processes) elapsed=\((elapsed * 10).rounded() / 10)")
    }

    private static func monotonicSeconds() -> Double {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        return Double(now.tv_sec) + Double(now.tv_nsec) / 1e9
    }
}
