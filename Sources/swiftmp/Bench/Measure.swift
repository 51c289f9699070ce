#if canImport(Glibc)
import Glibc
#endif

/// Timing helpers for the benchmark command: monotonic clock, medians, and the share of
/// the machine's CPU time that stayed idle (from /proc/stat).
enum Measure {
    static func now() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
    }

    static func median(_ values: [Double]) -> Double {
        let sorted = values.sorted()
        guard !sorted.isEmpty else { return .nan }
        let middle = sorted.count / 2
        return sorted.count % 2 == 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2
    }

    /// Hides `value` from the optimiser, so a timed run cannot be hoisted out of its loop.
    @_optimize(none)
    static func opaque<T>(_ value: T) -> T { value }

    /// Cumulative (idle, total) jiffies of all CPUs.
    static func cpuJiffies() -> (idle: Double, total: Double) {
        guard let file = fopen("/proc/stat", "r") else { return (0, 0) }
        defer { fclose(file) }
        var line = [CChar](repeating: 0, count: 512)
        guard fgets(&line, 512, file) != nil else { return (0, 0) }
        let text = String(decoding: line.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        let fields = text.split(separator: " ").dropFirst().compactMap { Double($0) }
        guard fields.count >= 5 else { return (0, 0) }
        return (fields[3] + fields[4], fields.reduce(0, +))
    }

    /// CPU seconds (user + system) this process has used so far, all threads.
    static func processCPUSeconds() -> Double {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        func seconds(_ t: timeval) -> Double { Double(t.tv_sec) + Double(t.tv_usec) * 1e-6 }
        return seconds(usage.ru_utime) + seconds(usage.ru_stime)
    }

    /// The number of mappings (lines of /proc/self/maps) and the anonymous resident memory
    /// (RssAnon of /proc/self/status, KiB) of this process; NaN where unreadable.
    static func processShape() -> (mappings: Double, anonKiB: Double) {
        func lines(_ path: String) -> [String] {
            guard let file = fopen(path, "r") else { return [] }
            defer { fclose(file) }
            var result: [String] = []
            var line = [CChar](repeating: 0, count: 1024)
            while fgets(&line, Int32(line.count), file) != nil {
                result.append(String(decoding: line.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))
            }
            return result
        }
        let maps = lines("/proc/self/maps")
        let anon = lines("/proc/self/status").first { $0.hasPrefix("RssAnon:") }
            .flatMap { Double($0.dropFirst("RssAnon:".count).split(whereSeparator: { $0 == " " || $0 == "\t" }).first ?? "") }
        return (maps.isEmpty ? .nan : Double(maps.filter { $0.hasSuffix("\n") }.count), anon ?? .nan)
    }

    /// Runs `body` and returns the fraction of CPU time the machine left idle meanwhile.
    static func idleShare(_ body: () throws -> Void) rethrows -> Double {
        let before = cpuJiffies()
        try body()
        let after = cpuJiffies()
        let total = after.total - before.total
        return total > 0 ? (after.idle - before.idle) / total : .nan
    }
}

/// One benchmark figure, printed as a JSON line.
struct Figure {
    var name: String
    var value: Double
    var unit: String
    var extra: [String: Double] = [:]
    /// Fields printed with every digit (checksums, problem sizes), after `extra`.
    var exact: [String: Double] = [:]

    var json: String {
        var fields = ["\"name\":\"\(name)\"", "\"value\":\(format(value))", "\"unit\":\"\(unit)\""]
        for (key, value) in extra.sorted(by: { $0.key < $1.key }) { fields.append("\"\(key)\":\(format(value))") }
        for (key, value) in exact.sorted(by: { $0.key < $1.key }) {
            fields.append("\"\(key)\":\(format(value, digits: 17))")
        }
        return "{" + fields.joined(separator: ",") + "}"
    }

    private func format(_ value: Double, digits: Int = 6) -> String {
        value.isFinite ? formatG(value, digits: digits) : "null"
    }
}

/// `value` as C's `%.<digits>g` prints it.
func formatG(_ value: Double, digits: Int) -> String {
    var buffer = [CChar](repeating: 0, count: 64)
    let written = withVaList([value]) { arguments in
        vsnprintf(&buffer, buffer.count, "%.\(digits)g", arguments)
    }
    precondition(written >= 0 && Int(written) < buffer.count, "vsnprintf(%g) failed")
    return String(decoding: buffer.prefix(Int(written)).map { UInt8(bitPattern: $0) }, as: UTF8.self)
}

#if canImport(Glibc)
import Glibc
#endif
