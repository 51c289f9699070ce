import Multiprocessing

#if canImport(Glibc)
import Glibc
#endif

/// `--vacancy <cgroup> [N]`: rank 1's processes are in the pids cgroup `<cgroup>` (the test
/// puts them there), and `maxTasksPerChild: 1` makes every task need a new worker. While a
/// map runs, rank 0 lets no new process or thread start there (`pids.max` 1) for 1.5 s: rank
/// 1's replacements fail with `EAGAIN`. The pool must go on — the other ranks' workers take
/// the inputs, rank 1's places are filled again once processes can start — and every input
/// gives its result, before, during and after. Prints "VACANCY OK". (Before session 22, with
/// rank 0 scheduling each local worker, the first failed replacement broke the pool.)
enum Vacancy {
    static func run(cgroup: String, perRank: Int?) throws {
        let limit = cgroup + "/pids.max"
        guard write("max", to: limit) else {
            print("MISMATCH cannot write \(limit): errno \(errno)")
            return
        }
        let pool = try Pool(maxTasksPerChild: 1, processesPerRank: perRank)
        print("BACKEND \(pool.backendSummary)")
        let inputs = Array(0..<(pool.processes * 4))
        check("vacancy before", try pool.map(Sleep(milliseconds: 5), inputs, chunkSize: 1), inputs)

        guard write("1", to: limit) else {
            print("MISMATCH cannot write \(limit): errno \(errno)")
            return
        }
        let frozen = monotonicSeconds()
        var release = pthread_t()
        pthread_create(
            &release, nil,
            { argument in
                usleep(1_500_000)
                _ = Vacancy.write("max", to: String(cString: argument!.assumingMemoryBound(to: CChar.self)))
                free(argument)
                return nil
            }, strdup(limit))
        let during = Array(0..<(pool.processes * 10))
        let results: [Int]
        do {
            results = try pool.map(Sleep(milliseconds: 20), during, chunkSize: 1)
        } catch {
            pthread_join(release, nil)
            throw error
        }
        pthread_join(release, nil)
        check("vacancy during", results, during)
        // Long enough that some replacement on rank 1 must have been tried while frozen.
        check("vacancy frozen long enough", monotonicSeconds() - frozen >= 1.5, true)
        check("vacancy after", try pool.map(Sleep(milliseconds: 5), inputs, chunkSize: 1), inputs)
        // Rank 1's places have workers again (tried at least once a second), with no call running.
        var placed = false
        for _ in 0..<50 where !placed {
            placed = pool.workerPlacement.allSatisfy { $0.pid != nil }
            if !placed { usleep(100_000) }
        }
        check("vacancy places filled again", placed, true)
        pool.close()
        try pool.join()
        print("VACANCY OK workers=\(pool.processes)")
    }

    static func write(_ text: String, to path: String) -> Bool {
        let descriptor = open(path, O_WRONLY)
        guard descriptor >= 0 else { return false }
        defer { close(descriptor) }
        return text.withCString { Glibc.write(descriptor, $0, strlen($0)) } == text.utf8.count
    }

    private static func monotonicSeconds() -> Double {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        return Double(now.tv_sec) + Double(now.tv_nsec) / 1e9
    }
}
