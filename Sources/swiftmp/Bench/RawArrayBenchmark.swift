import Multiprocessing

#if canImport(Glibc)
import Glibc
#endif

/// `RawSharedArray`'s subscript against its `buffer` (an `UnsafeMutableBufferPointer`, checked
/// in debug builds only), in one process, interleaved run by run: a read-modify-write of every
/// element in order (`seq`), and a sum over a fixed shuffled order of indices (`gather`), on
/// 64 Ki `Int64` (512 KiB). Each figure is ns per element (median of the runs, thread CPU
/// time), with `min`/`max` and `per_buffer`, the median of each run's ratio to the `buffer`
/// run beside it. The two ways must give the same sums, or the suite fails.
///
/// Names: `rawarray.seq.subscript`, `rawarray.seq.buffer`, `rawarray.gather.subscript`,
/// `rawarray.gather.buffer`, and `rawarray.outOfRange` (how a write past the end ends).
struct RawArrayBenchmark {
    var repetitions = 15
    var count = 1 << 16
    /// Passes over the array per run.
    var passes = 200

    func run(_ emit: (Figure) -> Void) throws {
        let array = try RawSharedArray<Int64>(count: count)
        // A fixed permutation (a full-period LCG step modulo a power of two).
        var order = [Int](repeating: 0, count: count)
        var x = 0
        for i in 0..<count {
            x = (x &* 5 &+ 1) & (count - 1)
            order[i] = x
        }
        let indices = Measure.opaque(order)
        var times: [String: [Double]] = [:]
        var ratios: [String: [Double]] = [:]
        for _ in 0..<repetitions {
            for pattern in ["seq", "gather"] {
                var pair: [String: Double] = [:]
                var sums: [String: Int64] = [:]
                for way in ["subscript", "buffer"] {
                    array.buffer.update(repeating: 1)
                    let start = try threadCPUSeconds()
                    let sum = pattern == "seq" ? sequential(array, way == "subscript") : gather(array, indices, way == "subscript")
                    let seconds = try threadCPUSeconds() - start
                    sums[way] = sum
                    pair[way] = seconds * 1e9 / Double(count * passes)
                    times["rawarray.\(pattern).\(way)", default: []].append(pair[way]!)
                }
                guard sums["subscript"] == sums["buffer"] else {
                    throw BenchmarkError.wrongResult("rawarray.\(pattern): subscript and buffer gave \(sums)")
                }
                ratios["rawarray.\(pattern).subscript", default: []].append(pair["subscript"]! / pair["buffer"]!)
            }
        }
        emit(try outOfRange())
        for name in times.keys.sorted() {
            let values = times[name]!
            var extra = ["min": values.min()!, "max": values.max()!, "runs": Double(values.count)]
            if let perBuffer = ratios[name] {
                extra["per_buffer"] = Measure.median(perBuffer)
                extra["per_buffer_min"] = perBuffer.min()!
                extra["per_buffer_max"] = perBuffer.max()!
            }
            emit(Figure(name: name, value: Measure.median(values), unit: "ns/element", extra: extra))
        }
    }

    /// `passes` times: every element incremented in order; returns the sum at the end.
    @inline(never)
    private func sequential(_ array: RawSharedArray<Int64>, _ subscripted: Bool) -> Int64 {
        let array = Measure.opaque(array)
        let n = array.count
        if subscripted {
            for _ in 0..<passes {
                for i in 0..<n { array[i] = array[i] &+ 1 }
            }
        } else {
            let buffer = array.buffer
            for _ in 0..<passes {
                for i in 0..<n { buffer[i] = buffer[i] &+ 1 }
            }
        }
        var sum: Int64 = 0
        for value in array.buffer { sum &+= value }
        return sum
    }

    /// `passes` times: the sum of the elements at `indices`, in their order.
    @inline(never)
    private func gather(_ array: RawSharedArray<Int64>, _ indices: [Int], _ subscripted: Bool) -> Int64 {
        let array = Measure.opaque(array)
        var sum: Int64 = 0
        if subscripted {
            for _ in 0..<passes {
                for i in indices { sum &+= array[i] }
            }
        } else {
            let buffer = array.buffer
            for _ in 0..<passes {
                for i in indices { sum &+= buffer[i] }
            }
        }
        return sum
    }

    /// `rawarray.outOfRange`: how a child that writes one element past the end of a
    /// 4-element array (inside the segment's page: nothing else would notice) ends: its exit
    /// code, negative for a signal (-4: SIGILL, the trap of a failed check; 0: unnoticed).
    private func outOfRange() throws -> Figure {
        let child = Process(target: WritePastTheEnd(array: try RawSharedArray<Int64>(count: 4)), startMethod: .fork)
        try child.start()
        guard try child.join(timeout: 60), let code = child.exitCode else {
            throw BenchmarkError.setup("rawarray.outOfRange: the child did not end within 60 s")
        }
        return Figure(name: "rawarray.outOfRange", value: Double(code), unit: "exit code")
    }

    private func threadCPUSeconds() throws -> Double {
        var ts = timespec()
        guard clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) == 0 else {
            throw BenchmarkError.setup("clock_gettime(CLOCK_THREAD_CPUTIME_ID) failed (errno \(errno))")
        }
        return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
    }
}

/// Writes `array[array.count]`.
struct WritePastTheEnd: ParallelFunction {
    var array: RawSharedArray<Int64>
    func callAsFunction(_: Void) {
        array[array.count] = 1
    }
}
