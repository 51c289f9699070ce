/// A benchmark whose result is wrong: it fails the command instead of reporting a figure.
enum BenchmarkError: Error, CustomStringConvertible {
    /// A pool call returned something other than the inputs' images.
    case wrongResult(String)
    /// A kernel's checksum differs from the reference (or the parallel run from the serial one).
    case checksumMismatch(String)
    /// The suite cannot run in this setting (the message says how to run it).
    case setup(String)

    var description: String {
        switch self {
        case .wrongResult(let what): return "benchmark \(what) returned a wrong result"
        case .checksumMismatch(let what): return "checksum mismatch: \(what)"
        case .setup(let message): return message
        }
    }
}
