// Swift twins of 14 tutorial programs of Python's multiprocessing (process, queue, pipe, lock,
// shared value, pool, manager, …): each file starts with what its program shows.
// Usage: seed-examples <number 1-14> [options]   (see each file for its options)
import Multiprocessing

#if canImport(Glibc)
import Glibc
#endif

let examples: [String: (ArraySlice<String>) throws -> Void] = [
    "1": example01, "2": example02, "3": example03, "4": example04, "5": example05,
    "6": example06, "7": example07, "8": example08, "9": example09, "10": example10,
    "11": example11, "12": example12, "13": example13, "14": example14,
]

let arguments = CommandLine.arguments.dropFirst()
guard let which = arguments.first, let run = examples[which] else {
    let available = examples.keys.sorted { Int($0)! < Int($1)! }.joined(separator: ", ")
    printError("usage: seed-examples <example> [options]; available: \(available)")
    exit(64)
}
do {
    try run(arguments.dropFirst())
} catch {
    printError("seed-examples \(which): \(error)")
    exit(1)
}

/// Writes a line to standard error.
func printError(_ message: String) {
    let line = message + "\n"
    _ = line.withCString { write(2, $0, strlen($0)) }
}

/// Seconds since an arbitrary start (monotonic).
func now() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
}

/// `Double(arguments[i])` or `fallback`.
func number(_ arguments: ArraySlice<String>, _ offset: Int, default fallback: Double) -> Double {
    let index = arguments.startIndex + offset
    return index < arguments.endIndex ? Double(arguments[index]) ?? fallback : fallback
}
