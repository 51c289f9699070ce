import Runtime

/// An error that remembers where it was thrown: `throw TracedError(MyError.badInput(x))`.
///
/// A thrown Swift error carries no stack: by the time a pool worker catches it, the frames
/// between the `throw` and the worker's loop are gone. `TracedError` captures them where it
/// is made — the thread's frames, symbolicated with file and line where the binary has debug
/// information (Swift's `Runtime.Backtrace`) — and its description shows them after the
/// error's own, so a `RemoteError` for it says where the task threw (`RemoteError.backtrace`
/// has them alone). Capturing costs about a millisecond: make one where a failure is rare
/// and worth explaining, not in a hot loop.
///
/// ```swift
/// struct Fit: ParallelFunction {
///     func callAsFunction(_ sample: [Double]) throws -> Double {
///         guard !sample.isEmpty else { throw TracedError(FitError.emptySample) }
///         …
///     }
/// }
/// ```
public struct TracedError: Error, CustomStringConvertible, Sendable {
    /// The error thrown.
    public let error: any Error
    /// Where it was made: one frame a line, innermost first (the caller of `init` first).
    public let backtrace: String

    /// Wraps `error` with the frames of the calling thread.
    @inline(never)
    public init(_ error: any Error) {
        self.error = error
        self.backtrace = Self.frames(skipping: 1)
    }

    /// The line that separates the error's description from its frames.
    public static let marker = "\n  thrown at:\n"

    public var description: String {
        "\(String(reflecting: type(of: error))): \(error)" + Self.marker + backtrace
    }

    /// The calling thread's frames, symbolicated, without the `skipping` innermost ones
    /// (below the caller of this function), without Swift's thunks, and — in a pool task —
    /// without the pool's own frames below the task (from `_runChunk` or `_runPlainChunk` on).
    @inline(never)
    static func frames(skipping: Int) -> String {
        guard let captured = try? Backtrace.capture() else { return "    (no backtrace: the stack could not be read)" }
        guard let symbolicated = captured.symbolicated() else {
            return captured.frames.dropFirst(skipping + 1).map { "    \($0)" }.joined(separator: "\n")
        }
        var lines: [String] = []
        for frame in symbolicated.frames.dropFirst(skipping + 1) where !frame.isSwiftThunk {
            if let name = frame.symbol?.name,
                name.contains("ParallelFunction._runChunk(") || name.contains("ParallelFunction._runPlainChunk(")
            {
                break
            }
            lines.append("    \(frame)")
        }
        return lines.joined(separator: "\n")
    }
}

extension RemoteError {
    /// Where the task threw, when it threw a `TracedError`: its frames in the worker, one a
    /// line (also part of `message`); nil for other errors.
    public var backtrace: String? {
        guard typeName == String(reflecting: TracedError.self),
            let range = message.firstRange(of: TracedError.marker)
        else { return nil }
        return String(message[range.upperBound...])
    }
}
