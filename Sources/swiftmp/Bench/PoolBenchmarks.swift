import Multiprocessing

#if canImport(Glibc)
import Glibc
#endif

/// The trivial task of the pool benchmarks (Python's `x*x`).
struct SquareTask: ParallelFunction {
    func callAsFunction(_ x: Int) -> Int { x &* x }
}

/// Pool throughput and latency, measured the same way as `Scripts/bench_python_pool.py` measures
/// Python's multiprocessing (`BENCHMARKS.md` puts the two side by side).
struct PoolBenchmarks {
    var pool: Pool
    var tasks = 200_000
    var repetitions = 10
    /// Only the figures whose names start with this (nil: all), e.g. `pool.apply`.
    var only: String?
    /// The order of the input kinds in each repetition, and which kinds run.
    var inputOrder = InputOrder()

    private func wanted(_ prefix: String) -> Bool {
        guard let only else { return true }
        return prefix.hasPrefix(only) || only.hasPrefix(prefix)
    }

    /// The inputs of the `map` figures, passed as the README passes them: an array built
    /// beforehand (`pool.map.<tasks>.chunk_<c>`, the figure compared with Python's), and, in
    /// the same repetitions, interleaved so that each sees the same machine load, an array
    /// built in the call, a `Range`, a `ClosedRange`, a `stride`, a lazy map and a `Set`
    /// (`pool.map.<tasks>.chunk_<c>.input_<kind>`, with `vs_array`: the median over the
    /// repetitions of the array's rate ÷ this input's rate in the same repetition), in a
    /// new order in every repetition (`InputOrder`). Beside them, in the same repetitions, the
    /// two costs no map can avoid (`pool.map.<tasks>.chunk_<c>.alone_<what>`, in µs, with
    /// `vs_array`): `makeArray`, the caller's own `Array(0..<n)` made and freed (what the
    /// "made in the call" figure pays beyond a ready array), and `readSet`, the `Set` read
    /// once into memory kept between repetitions (what the `Set`'s map must do at least).
    static let inputKinds = [
        "array", "arrayOfRange", "range", "closedRange", "stride", "lazyMap", "set", "makeArray", "readSet",
    ]

    /// Reads `set` into `raw` as the library's `Set` path does (its iterator, raw stores).
    @inline(never)
    static func read(_ set: Set<Int>, into raw: UnsafeMutableRawPointer) -> Int {
        var iterator = set.makeIterator()
        var count = 0
        while let x = iterator.next() {
            raw.storeBytes(of: x, toByteOffset: count &* MemoryLayout<Int>.stride, as: Int.self)
            count &+= 1
        }
        return count
    }

    func run(_ emit: (Figure) -> Void) throws {
        if wanted("pool.map") { try maps(emit) }
        if wanted("pool.apply") { try roundTrips(emit) }
        // Every entry point over every input kind: only when asked for (InputKindsBenchmark).
        if let only, only.hasPrefix("pool.inputs") {
            try InputKindsBenchmark(pool: pool, tasks: tasks, repetitions: repetitions, only: only, inputOrder: inputOrder)
                .run(emit)
        }
    }

    private func maps(_ emit: (Figure) -> Void) throws {
        let inputs = Array(0..<tasks)
        let expected = inputs.map { $0 &* $0 }
        let set = Set(inputs)
        let setExpected = set.map { $0 &* $0 }
        let kinds = inputOrder.selected(Self.inputKinds)
        let kept = UnsafeMutableRawPointer.allocate(byteCount: tasks * MemoryLayout<Int>.stride, alignment: 64)
        defer { kept.deallocate() }
        kept.initializeMemory(as: UInt8.self, repeating: 0, count: tasks * MemoryLayout<Int>.stride)
        for (label, chunk) in [("default", nil), ("100", 100), ("1", 1)] as [(String, Int?)] {
            let prefix = "pool.map.\(tasks).chunk_\(label)"
            guard wanted(prefix) else { continue }
            let reps = chunk == 1 ? max(3, repetitions / 3) : repetitions
            var rates: [[Double]] = []
            let idle = try Measure.idleShare {
                // Each repetition calls the kinds in another order (`InputOrder`): no kind
                // always runs first, last, or after the same other kind.
                rates = try timeKinds(
                    kinds, tasks: tasks, repetitions: reps, order: inputOrder, prefix: prefix, emit: emit,
                    call: { kind -> [Int] in
                        switch kind {
                        case "array": return try pool.map(SquareTask(), inputs, chunkSize: chunk)
                        case "arrayOfRange": return try pool.map(SquareTask(), Array(0..<tasks), chunkSize: chunk)
                        case "range": return try pool.map(SquareTask(), 0..<tasks, chunkSize: chunk)
                        case "closedRange": return try pool.map(SquareTask(), 0...(tasks - 1), chunkSize: chunk)
                        case "stride": return try pool.map(SquareTask(), stride(from: 0, to: tasks, by: 1), chunkSize: chunk)
                        case "lazyMap": return try pool.map(SquareTask(), (0..<tasks).lazy.map { $0 }, chunkSize: chunk)
                        case "set": return try pool.map(SquareTask(), set, chunkSize: chunk)
                        // The array made and freed, without a map: its count.
                        case "makeArray": return [Measure.opaque(Array(0..<tasks)).count]
                        default: return [Self.read(set, into: kept)]
                        }
                    },
                    check: { kind, results in
                        let ok: Bool
                        switch kind {
                        case "makeArray", "readSet": ok = results == [tasks]
                        case "set": ok = results == setExpected
                        default: ok = results == expected
                        }
                        guard ok else { throw BenchmarkError.wrongResult("map chunk \(label), input \(kind)") }
                    })
            }
            for (k, kind) in kinds.enumerated() {
                let vsArray = Measure.median(zip(rates[0], rates[k]).map { $0 / $1 })
                if kind == "makeArray" || kind == "readSet" {
                    let microseconds = rates[k].map { 1e6 * Double(tasks) / $0 }
                    emit(
                        Figure(
                            name: "\(prefix).alone_\(kind)", value: Measure.median(microseconds), unit: "us",
                            extra: ["min": microseconds.min() ?? .nan, "max": microseconds.max() ?? .nan, "vs_array": vsArray]))
                    continue
                }
                let name = prefix + (kind == "array" ? "" : ".input_\(kind)")
                var extra = ["min": rates[k].min() ?? .nan, "max": rates[k].max() ?? .nan, "idle_cpu_share": idle]
                if kind != "array" { extra["vs_array"] = vsArray }
                emit(Figure(name: name, value: Measure.median(rates[k]), unit: "tasks/s", extra: extra))
            }
        }
        // What a progress report and a checkpoint journal cost on a long map (10× the tasks,
        // so that the journal's fixed cost per call — two fsyncs — weighs little) at chunk
        // size 100, beside the plain map measured in the same rounds (interleaved: the same
        // machine load; each repetition starts with another variant, so that none always
        // runs first — the first map after another's paid for the memory the other let go).
        guard wanted("pool.map.\(10 * tasks)") else { return }
        let long = Array(0..<(10 * tasks))
        let longExpected = long.map { $0 &* $0 }
        var rates: [[Double]] = [[], [], []]
        let journal = "/tmp/swiftmp-bench-\(getpid()).journal"
        for rep in 0..<max(3, repetitions / 2) {
            for step in 0..<3 {
                let variant = (rep + step) % 3
                unlink(journal)
                let start = Measure.now()
                let results: [Int]
                switch variant {
                case 0: results = try pool.map(SquareTask(), long, chunkSize: 100)
                case 1: results = try pool.map(SquareTask(), long, chunkSize: 100, progress: .callback(every: 1) { _ in })
                default: results = try pool.map(SquareTask(), long, chunkSize: 100, checkpoint: journal)
                }
                rates[variant].append(Double(long.count) / (Measure.now() - start))
                guard results == longExpected else { throw BenchmarkError.wrongResult("map variant \(variant)") }
            }
        }
        unlink(journal)
        // The long map at the default chunk size (chunks of 2 MB each way on 2 workers: the
        // worker reads them from the caller's array and writes into blocks it keeps,
        // `_PlainChunkBuffers`), compared with Python's as the 200 000-task figures are.
        var largeRates: [Double] = []
        let idle = try Measure.idleShare {
            for _ in 0..<max(3, repetitions / 3) {
                let start = Measure.now()
                let results = try pool.map(SquareTask(), long)
                largeRates.append(Double(long.count) / (Measure.now() - start))
                guard results == longExpected else { throw BenchmarkError.wrongResult("the large map") }
            }
        }
        emit(
            Figure(
                name: "pool.map.\(long.count).chunk_default", value: Measure.median(largeRates), unit: "tasks/s",
                extra: ["idle_cpu_share": idle, "min": largeRates.min() ?? .nan, "max": largeRates.max() ?? .nan]))
        for (variant, name) in ["plain", "progress", "checkpoint"].enumerated() {
            emit(
                Figure(
                    name: "pool.map.\(long.count).chunk_100.\(name)", value: Measure.median(rates[variant]),
                    unit: "tasks/s", extra: ["vs_plain": Measure.median(zip(rates[variant], rates[0]).map { $0 / $1 })]))
        }
    }

    private func roundTrips(_ emit: (Figure) -> Void) throws {
        for (label, pause) in [("hot", 0.0), ("cold", 0.001)] where wanted("pool.apply.roundtrip.\(label)") {
            var latencies: [Double] = []
            let rounds = pause == 0 ? 2_000 : 300
            let idle = try Measure.idleShare {
                for i in 0..<rounds {
                    if pause > 0 { usleep(UInt32(pause * 1e6)) }
                    let start = Measure.now()
                    let value = try pool.apply(SquareTask(), i)
                    latencies.append((Measure.now() - start) * 1e6)
                    guard value == i &* i else { throw BenchmarkError.wrongResult("apply") }
                }
            }
            emit(
                Figure(
                    name: "pool.apply.roundtrip.\(label)", value: Measure.median(latencies), unit: "us",
                    extra: [
                        "min": latencies.min() ?? .nan, "idle_cpu_share": idle,
                        "p10": percentile(latencies, 0.1), "p90": percentile(latencies, 0.9),
                    ]))
        }
    }

    private func percentile(_ values: [Double], _ fraction: Double) -> Double {
        let sorted = values.sorted()
        return sorted.isEmpty ? .nan : sorted[min(sorted.count - 1, Int(Double(sorted.count) * fraction))]
    }
}
