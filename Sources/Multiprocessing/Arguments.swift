/// Several arguments for one call, for `starmap` — Python's argument tuples, typed.
///
/// ```swift
/// struct Power: ParallelFunction {
///     func callAsFunction(_ args: Arguments<Double, Int>) -> Double {
///         let (base, exponent) = args.values
///         return pow(base, Double(exponent))
///     }
/// }
/// let results = try pool.starmap(Power(), [(2.0, 3), (3.0, 2)])   // [8.0, 9.0]
/// ```
public struct Arguments<each T: Codable & Sendable>: Codable, Sendable {
    public var values: (repeat each T)

    public init(_ values: repeat each T) {
        self.values = (repeat each values)
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.unkeyedContainer()
        for value in repeat each values {
            try container.encode(value)
        }
    }

    public init(from decoder: any Decoder) throws {
        var container = try decoder.unkeyedContainer()
        func next<V: Decodable>(_: V.Type) throws -> V { try container.decode(V.self) }
        values = (repeat try next((each T).self))
    }
}

extension Pool {
    /// `map` for functions of several arguments: each element of `arguments` is a tuple
    /// that becomes one `Arguments` value. Python's `starmap`.
    @inlinable
    public func starmap<F: ParallelFunction, each T>(
        _ function: F, _ arguments: some Sequence<(repeat each T)>, chunkSize: Int? = nil,
        timeout: Double? = nil, retry: RetryPolicy? = nil, progress: ProgressReport? = nil, checkpoint: String? = nil
    ) throws -> [F.Output] where F.Input == Arguments<repeat each T> {
        try map(
            function, arguments.lazy.map { Arguments(repeat each $0) }, chunkSize: chunkSize, timeout: timeout, retry: retry,
            progress: progress, checkpoint: checkpoint)
    }

    /// `starmap`, awaited without blocking a thread; cancelling the awaiting `Task` cancels it.
    @inlinable
    public func asyncStarmap<F: ParallelFunction, each T>(
        _ function: F, _ arguments: some Sequence<(repeat each T)>, chunkSize: Int? = nil,
        timeout: Double? = nil, retry: RetryPolicy? = nil, progress: ProgressReport? = nil, checkpoint: String? = nil
    ) async throws -> [F.Output] where F.Input == Arguments<repeat each T> {
        try await asyncMap(
            function, arguments.lazy.map { Arguments(repeat each $0) }, chunkSize: chunkSize, timeout: timeout,
            retry: retry, progress: progress, checkpoint: checkpoint)
    }

    /// `starmap` without waiting; see `mapAsync`.
    @inlinable
    public func starmapAsync<F: ParallelFunction, each T>(
        _ function: F, _ arguments: some Sequence<(repeat each T)>, chunkSize: Int? = nil,
        timeout: Double? = nil, retry: RetryPolicy? = nil, progress: ProgressReport? = nil, checkpoint: String? = nil,
        callback: (@Sendable ([F.Output]) -> Void)? = nil,
        errorCallback: (@Sendable (any Error) -> Void)? = nil
    ) throws -> AsyncResult<[F.Output]> where F.Input == Arguments<repeat each T> {
        try mapAsync(
            function, arguments.lazy.map { Arguments(repeat each $0) }, chunkSize: chunkSize, timeout: timeout,
            retry: retry, progress: progress, checkpoint: checkpoint, callback: callback, errorCallback: errorCallback)
    }
}
