import Multiprocessing

#if canImport(Glibc)
import Glibc
#endif

/// Takes a byte array and returns its length and a checksum of a few of its bytes.
struct LargeInputTask: ParallelFunction {
    func callAsFunction(_ bytes: [UInt8]) -> Int { bytes.count &+ Int(bytes.first ?? 0) &+ Int(bytes.last ?? 0) }
}

/// Returns `count` bytes (byte i is `i & 255`).
struct LargeResultTask: ParallelFunction {
    func callAsFunction(_ count: Int) -> [UInt8] {
        [UInt8](unsafeUninitializedCapacity: count) { buffer, initialized in
            for i in 0..<count { buffer[i] = UInt8(truncatingIfNeeded: i) }
            initialized = count
        }
    }
}

/// One large value through a local pool (one worker, fork), each direction: MB/s (10^6 bytes)
/// of `pool.apply` with a `size`-byte `[UInt8]` argument (`pool.largeInput.<size>`) or result
/// (`pool.largeResult.<size>`), and the caller's peak resident memory over the call as a
/// multiple of the value's size (`peak_rss_ratio`: the peak minus the resident memory before
/// the value was built, so the value itself counts 1). Each repetition runs in a process of
/// its own (a fresh pool, nothing retained from an earlier transfer). Beside them,
/// `memory.fresh.<size>`: MB/s of writing `size` bytes of freshly mapped memory, the floor of
/// anything that builds a new value of that size (slow on virtual machines that hand freed
/// memory back to their host: there every transfer pays it at least once, for the value it
/// builds). The transport is the pool's own choice (process_vm_readv from the sender's memory
/// where permitted, else a memfd); `SWIFTMP_PROCESS_VM_READV=0` forces the memfd and
/// `SWIFTMP_LARGE_HUGEPAGES=0` drops the huge-page advice, to compare them in one build
/// (Benchmarks/reports/large-values.md).
struct LargeMessageBenchmarks {
    var size = 512 << 20
    var repetitions = 3

    var label: String { size % (1 << 20) == 0 ? "\(size >> 20)MiB" : "\(size)B" }

    func run(only: String?, _ emit: (Figure) -> Void) throws {
        let names = ["pool.largeInput.\(label)", "pool.largeResult.\(label)", "memory.fresh.\(label)"]
        for (kind, name) in names.enumerated() {
            if let only, name != only, !name.hasPrefix(only + ".") { continue }
            var rates: [Double] = []
            var ratios: [Double] = []
            for _ in 0..<repetitions {
                if kind == 2 {
                    rates.append(Self.freshMemoryRate(size))
                    continue
                }
                let queue = try Queue<[Double]>()
                let child = Process(
                    target: LargeTransferProbe(queue: queue, result: kind == 1, size: size),
                    startMethod: .fork)
                try child.start()
                let figures = try queue.get(timeout: 300)
                try child.join(timeout: 60)
                guard figures.count == 2 else { throw BenchFailure("\(name): the measuring process failed") }
                rates.append(figures[0])
                ratios.append(figures[1])
            }
            var extra = ["min": rates.min() ?? .nan, "max": rates.max() ?? .nan]
            if kind < 2 { extra["peak_rss_ratio"] = Measure.median(ratios) }
            emit(Figure(name: name, value: Measure.median(rates), unit: "MB/s", extra: extra))
        }
    }

    /// MB/s of writing `size` bytes into a fresh anonymous mapping.
    static func freshMemoryRate(_ size: Int) -> Double {
        let start = Measure.now()
        guard let pointer = mmap(nil, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0),
            pointer != MAP_FAILED
        else { return .nan }
        memset(pointer, 1, size)
        let seconds = Measure.now() - start
        munmap(pointer, size)
        return Double(size) / seconds / 1e6
    }
}

/// In a process of its own: starts a one-worker pool, moves one value (an argument or, with
/// `result`, a result), and puts [MB/s, peak ratio] on `queue` ([] on a wrong value).
struct LargeTransferProbe: ParallelFunction {
    var queue: Queue<[Double]>
    var result: Bool
    var size: Int

    func callAsFunction(_: Void) throws {
        let pool = try Pool(processes: 1, startMethod: .fork)
        defer {
            pool.close()
            try? pool.join()
        }
        _ = try pool.apply(LargeResultTask(), 16) // started, and the function defined
        _ = try pool.apply(LargeInputTask(), [1])
        let before = PeakMemory.reset()
        let start: Double
        var correct: Bool
        if result {
            start = Measure.now()
            let bytes = try pool.apply(LargeResultTask(), size)
            correct = bytes.count == size && bytes[size - 1] == UInt8(truncatingIfNeeded: size - 1) && bytes[300] == 44
        } else {
            var bytes = [UInt8](repeating: 0, count: size)
            bytes[0] = 7
            bytes[size - 1] = 9
            start = Measure.now()
            correct = try pool.apply(LargeInputTask(), bytes) == size + 16
        }
        let seconds = Measure.now() - start
        let peak = PeakMemory.peakBytes()
        try queue.put(correct ? [Double(size) / seconds / 1e6, (peak - before) / Double(size)] : [])
    }
}

/// This process's resident memory and its peak (`VmRSS`, `VmHWM` of /proc/self/status).
enum PeakMemory {
    /// Resets the peak to the current resident memory; returns that (bytes; NaN if unknown).
    static func reset() -> Double {
        let fd = open("/proc/self/clear_refs", O_WRONLY)
        guard fd >= 0 else { return .nan }
        let written = write(fd, "5", 1)
        close(fd)
        guard written == 1 else { return .nan }
        return status("VmRSS:")
    }

    /// The peak resident memory since the last reset (bytes; NaN if unknown).
    static func peakBytes() -> Double { status("VmHWM:") }

    private static func status(_ key: String) -> Double {
        guard let file = fopen("/proc/self/status", "r") else { return .nan }
        defer { fclose(file) }
        var line = [CChar](repeating: 0, count: 256)
        while fgets(&line, Int32(line.count), file) != nil {
            let text = String(decoding: line.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            if text.hasPrefix(key), let kib = Double(text.dropFirst(key.count).split(whereSeparator: { $0 == " " || $0 == "\t" }).first ?? "") {
                return kib * 1024
            }
        }
        return .nan
    }
}
