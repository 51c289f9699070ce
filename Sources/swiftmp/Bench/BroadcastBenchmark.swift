import Multiprocessing

#if canImport(Glibc)
import Glibc
#endif

/// Reads one `Double` per 4 KiB page of a broadcast array (so every page is mapped in this
/// worker) and returns [pid, their sum].
struct BroadcastTouchTask: ParallelFunction {
    let table: Broadcast<[Double]>
    func callAsFunction(_: Int) throws -> [Double] {
        try table.withUnsafeBufferPointer { (elements: UnsafeBufferPointer<Double>) -> [Double] in
            var sum = 0.0
            var i = 0
            while i < elements.count {
                sum += elements[i]
                i &+= 512
            }
            return [Double(getpid()), sum]
        }
    }
}

/// `swiftmp bench broadcast`: `pool.broadcast` of a `size`-byte `[Double]` (1 GiB) read by
/// two workers, against one `memcpy` of the same bytes into fresh memory, interleaved in the
/// same run (each repetition: the copy, then the broadcast).
///
/// `broadcast.<size>` is the time from `pool.broadcast(array)` until both workers have read
/// one element of every page of it (a `map` of two tasks, chunk size 1, on a pool started
/// beforehand, one per repetition), `ratio` that time over the median `memcpy`. Under mpirun
/// (`Scripts/mpirun.sh -np 3 swiftmp bench broadcast`, `SWIFTMP_PROCESSES_PER_RANK=1`: one
/// local worker on each of two worker ranks) the names start with `mpi.`; the broadcast is then
/// rank 0 serving the bytes and one node copy fetched by the first worker, mapped by both (one
/// node). `Scripts/bench-broadcast.sh` runs that beside a C `MPI_Bcast` of the same bytes.
struct BroadcastBenchmark {
    var size = 1 << 30
    var repetitions = 3
    var options: PoolOptions

    var label: String { size % (1 << 30) == 0 ? "\(size >> 30)GiB" : "\(size >> 20)MiB" }

    func run(_ emit: (Figure) -> Void) throws {
        let count = size / MemoryLayout<Double>.stride
        let data = [Double](unsafeUninitializedCapacity: count) { buffer, initialized in
            for i in 0..<count { buffer[i] = Double(i % 1000) }
            initialized = count
        }
        var expected = 0.0
        for i in stride(from: 0, to: count, by: 512) { expected += data[i] }
        var copies: [Double] = []
        var broadcasts: [Double] = []
        var creates: [Double] = []
        var seen: [Double] = []
        var prefix = ""
        let load = Self.loadAverage()
        for _ in 0..<repetitions {
            copies.append(Self.memcpySeconds(data))
            let pool = try options.makePool(defaultProcesses: Backend.automatic.resolved == .local ? 2 : nil)
            defer {
                pool.close()
                try? pool.join()
            }
            prefix = pool.backend == .mpi ? "mpi." : ""
            guard try pool.map(SquareTask(), [1, 2], chunkSize: 1) == [1, 4] else { throw BenchmarkError.wrongResult("warm-up") }
            let start = Measure.now()
            let table = try pool.broadcast(data)
            creates.append(Measure.now() - start)
            let results = try pool.map(BroadcastTouchTask(table: table), 0..<2, chunkSize: 1)
            broadcasts.append(Measure.now() - start)
            guard results.allSatisfy({ $0[1] == expected }) else { throw BenchmarkError.wrongResult("broadcast") }
            seen.append(Double(Set(results.map { $0[0] }).count))
            table.release()
        }
        let copy = Measure.median(copies)
        emit(
            Figure(
                name: "\(prefix)broadcast.memcpy.\(label)", value: copy, unit: "s",
                extra: [
                    "min": copies.min() ?? .nan, "max": copies.max() ?? .nan, "GB_per_s": Double(size) / copy / 1e9,
                    "loadavg1": load,
                ]))
        let broadcast = Measure.median(broadcasts)
        emit(
            Figure(
                name: "\(prefix)broadcast.\(label)", value: broadcast, unit: "s",
                extra: [
                    "min": broadcasts.min() ?? .nan, "max": broadcasts.max() ?? .nan,
                    "ratio_to_memcpy": broadcast / copy,
                    "create_s": Measure.median(creates), "workers_seen": seen.min() ?? .nan, "loadavg1": load,
                ]))
    }

    /// Seconds of one `memcpy` of `data` into freshly mapped memory (a copy has to land
    /// somewhere new, as the broadcast's segment does).
    static func memcpySeconds(_ data: [Double]) -> Double {
        let size = data.count * MemoryLayout<Double>.stride
        guard let destination = mmap(nil, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0),
            destination != MAP_FAILED
        else { return .nan }
        defer { munmap(destination, size) }
        let start = Measure.now()
        data.withUnsafeBytes { _ = memcpy(destination, $0.baseAddress!, size) }
        let seconds = Measure.now() - start
        _ = Measure.opaque(destination.load(fromByteOffset: size - 8, as: Double.self))
        return seconds
    }

    static func loadAverage() -> Double {
        var loads = [Double](repeating: .nan, count: 3)
        _ = getloadavg(&loads, 3)
        return loads[0]
    }
}
