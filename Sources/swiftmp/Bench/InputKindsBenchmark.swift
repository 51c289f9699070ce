import Multiprocessing

/// `x * x` of a one-argument tuple, for `starmap`.
struct SquareArguments: ParallelFunction {
    func callAsFunction(_ arguments: Arguments<Int>) -> Int { arguments.values &* arguments.values }
}

/// Every input kind through every entry point (`map`, `mapAsync`, `starmap`, `imap`), each
/// kind's time ÷ the same call's over a ready `Array` in the same repetition (interleaved:
/// each repetition calls the kinds in another order, `InputOrder`), at the default chunk size, 100 and 1:
/// `pool.inputs.<api>.<tasks>.chunk_<c>.input_<kind>` with `vs_array` (the median of the
/// per-repetition ratios). Run only when asked for (`bench pool --only pool.inputs`, or a
/// prefix of one figure, e.g. `--only pool.inputs.map`). Chunk size 1, and `starmap` (its
/// `Arguments` go through `Codable`), run a tenth of the tasks; `imap` is measured at 100
/// and 1 (its default).
struct InputKindsBenchmark {
    var pool: Pool
    var tasks = 200_000
    var repetitions = 10
    var only: String
    var inputOrder = InputOrder()

    static let kinds = ["array", "range", "closedRange", "stride", "lazyMap", "set"]
    static let apis = ["map", "mapAsync", "starmap", "imap"]

    func run(_ emit: (Figure) -> Void) throws {
        for api in Self.apis {
            for (label, chunk) in [("default", nil), ("100", 100), ("1", 1)] as [(String, Int?)] {
                // imap's default chunk size is 1: the same as chunk_1.
                if api == "imap" && chunk == nil { continue }
                // starmap's Arguments are encoded one by one (Codable): slow enough on fewer.
                let n = chunk == 1 || api == "starmap" ? tasks / 10 : tasks
                let prefix = "pool.inputs.\(api).\(n).chunk_\(label)"
                guard prefix.hasPrefix(only) || only.hasPrefix(prefix) else { continue }
                try measure(api: api, chunk: chunk, n: n, prefix: prefix, emit)
            }
        }
    }

    private func measure(api: String, chunk: Int?, n: Int, prefix: String, _ emit: (Figure) -> Void) throws {
        let array = Array(0..<n)
        let set = Set(array)
        let expected = array.map { $0 &* $0 }
        let setExpected = set.map { $0 &* $0 }
        let kinds = inputOrder.selected(Self.kinds)
        var rates: [[Double]] = []
        let idle = try Measure.idleShare {
            rates = try timeKinds(
                kinds, tasks: n, repetitions: repetitions, order: inputOrder, prefix: prefix, emit: emit,
                call: { kind -> [Int] in
                    switch kind {
                    case "array": return try call(api, array, chunk)
                    case "range": return try call(api, 0..<n, chunk)
                    case "closedRange": return try call(api, 0...(n - 1), chunk)
                    case "stride": return try call(api, stride(from: 0, to: n, by: 1), chunk)
                    case "lazyMap": return try call(api, (0..<n).lazy.map { $0 }, chunk)
                    default: return try call(api, set, chunk)
                    }
                },
                check: { kind, results in
                    guard results == (kind == "set" ? setExpected : expected) else {
                        throw BenchmarkError.wrongResult("\(prefix) input \(kind)")
                    }
                })
        }
        for (k, kind) in kinds.enumerated() {
            var extra = ["min": rates[k].min() ?? .nan, "max": rates[k].max() ?? .nan, "idle_cpu_share": idle]
            if kind != "array" { extra["vs_array"] = Measure.median(zip(rates[0], rates[k]).map { $0 / $1 }) }
            emit(Figure(name: "\(prefix).input_\(kind)", value: Measure.median(rates[k]), unit: "tasks/s", extra: extra))
        }
    }

    /// One call, as a user writes it: the sequence passed as its own type.
    private func call(_ api: String, _ inputs: some Sequence<Int> & Sendable, _ chunk: Int?) throws -> [Int] {
        switch api {
        case "map": return try pool.map(SquareTask(), inputs, chunkSize: chunk)
        case "mapAsync": return try pool.mapAsync(SquareTask(), inputs, chunkSize: chunk).get()
        case "starmap": return try pool.starmap(SquareArguments(), inputs, chunkSize: chunk)
        default: return try pool.imap(SquareTask(), inputs, chunkSize: chunk ?? 1).map { try $0.get() }
        }
    }
}
