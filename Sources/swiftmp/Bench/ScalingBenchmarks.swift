import Multiprocessing

/// Strong scaling: each kernel timed serially and through pools of 1…N workers, interleaved
/// (every repetition runs, for each kernel, the serial baseline and then each worker count), so
/// all of them see the same machine load. A fresh pool is started for each parallel run; its start-up (the
/// pool's initialiser plus one `apply` round trip, as Python's figure) is timed separately and
/// not counted in the kernel's time.
///
/// Names: `scaling.<kernel>.serial` (s), `scaling.<backend>.<kernel>.workers_<w>` (speedup
/// = median serial time / median parallel time, with `efficiency` = speedup / w) and
/// `scaling.<backend>.pool.startup.workers_<w>` (s). Each carries the machine's idle CPU share
/// during its runs: a serial run on a quiet machine of N CPUs leaves about (N − 1)/N idle, so a
/// lower share means another user's work competed for the CPUs the workers needed.
/// `master_cpu_share`: the CPU time the pool's own process (the caller, its pool thread; rank 0
/// under MPI) used during a parallel run, per second of the run — CPU the workers did not get.
struct ScalingBenchmarks {
    var kernels: [ScalingKernel]
    var workerCounts: [Int]
    var startMethod: StartMethod
    var repetitions = 3

    /// One kernel's measurements, gathered across the interleaved repetitions.
    private struct Samples {
        var serial: [Double] = []
        var serialIdle: [Double] = []
        var parallel: [Int: [Double]] = [:]
        var parallelIdle: [Int: [Double]] = [:]
        var masterCPU: [Int: [Double]] = [:]
        var checksum: Int?
    }

    func run(_ emit: (Figure) -> Void) throws {
        var startups: [Int: [Double]] = [:]
        var backend = "local"
        var samples = Array(repeating: Samples(), count: kernels.count)
        // Repetitions outermost, so that every kernel and worker count sees the same spells of
        // load from other users of the machine.
        for _ in 0..<repetitions {
            for (index, kernel) in kernels.enumerated() {
                var checksum = 0
                let start = Measure.now()
                samples[index].serialIdle.append(Measure.idleShare { checksum = kernel.serial() })
                samples[index].serial.append(Measure.now() - start)
                if let reference = samples[index].checksum, reference != checksum {
                    throw BenchmarkError.checksumMismatch("\(kernel.name) serial gave \(reference), then \(checksum)")
                }
                samples[index].checksum = checksum
                for workers in workerCounts {
                    let (pool, startup) = try startPool(workers: workers)
                    defer { pool.close(); try? pool.join() }
                    startups[workers, default: []].append(startup)
                    backend = Self.backendName(pool)
                    var result = 0
                    let start = Measure.now()
                    let cpuBefore = Measure.processCPUSeconds()
                    let idle = try Measure.idleShare { result = try kernel.parallel(on: pool) }
                    let elapsed = Measure.now() - start
                    samples[index].parallel[workers, default: []].append(elapsed)
                    samples[index].masterCPU[workers, default: []].append((Measure.processCPUSeconds() - cpuBefore) / elapsed)
                    samples[index].parallelIdle[workers, default: []].append(idle)
                    if result != checksum {
                        throw BenchmarkError.checksumMismatch(
                            "\(kernel.name) on \(workers) workers gave \(result), serially \(checksum)")
                    }
                }
            }
        }
        for (kernel, measured) in zip(kernels, samples) {
            let serialMedian = Measure.median(measured.serial)
            emit(
                Figure(
                    name: "scaling.\(kernel.name).serial", value: serialMedian, unit: "s",
                    extra: [
                        "min": measured.serial.min() ?? .nan, "max": measured.serial.max() ?? .nan,
                        "idle_cpu_share": Measure.median(measured.serialIdle),
                    ],
                    exact: kernel.size.merging(["checksum": Double(measured.checksum ?? 0)]) { a, _ in a }))
            for workers in workerCounts {
                let times = measured.parallel[workers] ?? []
                let speedup = serialMedian / Measure.median(times)
                emit(
                    Figure(
                        name: "scaling.\(backend).\(kernel.name).workers_\(workers)", value: speedup, unit: "x",
                        extra: [
                            "efficiency": speedup / Double(workers), "seconds": Measure.median(times),
                            "min": times.min() ?? .nan, "max": times.max() ?? .nan,
                            "workers": Double(workers),
                            "idle_cpu_share": Measure.median(measured.parallelIdle[workers] ?? []),
                            "master_cpu_share": Measure.median(measured.masterCPU[workers] ?? []),
                        ]))
            }
        }
        for workers in workerCounts {
            let times = startups[workers] ?? []
            emit(
                Figure(
                    name: "scaling.\(backend).pool.startup.workers_\(workers)", value: Measure.median(times),
                    unit: "s",
                    extra: [
                        "min": times.min() ?? .nan, "max": times.max() ?? .nan,
                        "workers": Double(workers),
                    ]))
        }
    }

    /// A new pool of `workers` and the seconds from its creation to its first result.
    private func startPool(workers: Int) throws -> (Pool, Double) {
        let start = Measure.now()
        let pool = try Pool(processes: workers, startMethod: startMethod)
        guard try pool.apply(SquareTask(), 3) == 9 else {
            throw BenchmarkError.wrongResult("apply after start-up")
        }
        return (pool, Measure.now() - start)
    }

    /// The backend's short name (`local`, `mpi`) for figure names.
    static func backendName(_ pool: Pool) -> String {
        String(pool.backendSummary.prefix { $0 != "," })
    }
}
