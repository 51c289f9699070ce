import Multiprocessing

#if canImport(Glibc)
import Glibc
#endif

/// `--bench`: map throughput and apply round trip on the automatic backend, as JSON lines
/// {"name","value","unit"} (medians of 5 runs).
enum Bench {
    static func now() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }

    static func median(_ values: [Double]) -> Double {
        let sorted = values.sorted()
        return sorted[sorted.count / 2]
    }

    static func emit(_ name: String, _ value: Double, _ unit: String) {
        print("{\"name\":\"\(name)\",\"value\":\(Int(value.rounded())),\"unit\":\"\(unit)\"}")
        fflush(nil)
    }

    static func run(pool: Pool, tasks: Int, runs: Int) throws {
        let inputs = Array(0..<tasks)
        for (label, chunk) in [("1", Optional(1)), ("100", 100), ("default", nil)] {
            var rates: [Double] = []
            for _ in 0..<runs {
                let start = now()
                let results = try pool.map(Increment(), inputs, chunkSize: chunk)
                let seconds = now() - start
                guard results.count == tasks, results[tasks - 1] == tasks else { throw CheckError.refused(-1) }
                rates.append(Double(tasks) / seconds)
            }
            emit("map_\(tasks)_chunk_\(label)", median(rates), "tasks/s")
        }
        var trips: [Double] = []
        for _ in 0..<100 { _ = try pool.apply(Increment(), 1) }
        for _ in 0..<runs {
            let calls = 2000
            let start = now()
            for i in 0..<calls { _ = try pool.apply(Increment(), i) }
            trips.append((now() - start) / Double(calls) * 1e6)
        }
        emit("apply_round_trip", median(trips), "us")
    }
}
