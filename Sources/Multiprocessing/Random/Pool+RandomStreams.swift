/// A function whose every input gets its own reproducible random stream: `pool.map(f, inputs,
/// seed: s)` calls `f(inputs[i], random: &stream)` with `stream` = `RandomStream(seed: s,
/// stream: i)` at its first draw, in whichever worker runs input `i`.
///
/// Input `i`'s stream depends only on the seed and `i` — not on the backend, the worker count,
/// the chunk size, the start method or a retry — so the results are those of
/// `f.serial(inputs, seed: s)`, bit for bit.
///
/// ```swift
/// struct Walk: RandomizedFunction {
///     var steps: Int
///     func callAsFunction(_ start: Double, random: inout RandomStream) -> Double {
///         var x = start
///         for _ in 0..<steps { x += Double.random(in: -1...1, using: &random) }
///         return x
///     }
/// }
/// let ends = try pool.map(Walk(steps: 1_000), [0, 10, 20], seed: 42)
/// ```
public protocol RandomizedFunction<Input, Output>: Codable, Sendable {
    associatedtype Input: Codable & Sendable
    associatedtype Output: Codable & Sendable

    /// Computes the result for one input, drawing from the input's own stream.
    func callAsFunction(_ input: Input, random: inout RandomStream) throws -> Output
}

extension RandomizedFunction {
    /// The results in this process, one input after the other: input `i` (0-based position
    /// in `inputs`) draws from stream `i` of `seed` — what `Pool.map(_:_:seed:)` returns.
    public func serial(_ inputs: some Sequence<Input>, seed: UInt64) throws -> [Output] {
        try inputs.enumerated().map { i, input in
            var random = RandomStream(seed: seed, stream: UInt64(i))
            return try self(input, random: &random)
        }
    }
}

/// An input and its position: what `WithRandomStreams` receives.
public struct IndexedInput<Value: Codable & Sendable>: Codable, Sendable {
    /// The input's stream index: its position in the submitted sequence.
    public var index: UInt64
    public var value: Value

    public init(index: UInt64, value: Value) {
        self.index = index
        self.value = value
    }
}

/// A `RandomizedFunction` as a `ParallelFunction` of indexed inputs: input
/// `IndexedInput(index: i, value: x)` runs `function(x, random: &stream)` with `stream` =
/// `RandomStream(seed: seed, stream: i)`. `Pool.map(_:_:seed:)` and the other `seed:` helpers
/// wrap the function in it and index the inputs by their position; use it directly to give
/// any pool call (`apply`, `imap`, …) explicit stream numbers.
public struct WithRandomStreams<F: RandomizedFunction>: ParallelFunction {
    public var function: F
    public var seed: UInt64

    public init(_ function: F, seed: UInt64) {
        self.function = function
        self.seed = seed
    }

    public func callAsFunction(_ input: IndexedInput<F.Input>) throws -> F.Output {
        var random = RandomStream(seed: seed, stream: input.index)
        return try function(input.value, random: &random)
    }

    /// `inputs`, each indexed by its position.
    @inlinable
    public static func indexed(_ inputs: some Sequence<F.Input>) -> [IndexedInput<F.Input>] {
        inputs.enumerated().map { IndexedInput(index: UInt64($0.offset), value: $0.element) }
    }
}

extension Pool {
    /// `map` for a `RandomizedFunction`: input `i` (its position in `inputs`) draws from
    /// `RandomStream(seed: seed, stream: i)`, so the results are the same, bit for bit, for
    /// every backend, worker count, chunk size, start method and retry — those of
    /// `function.serial(inputs, seed: seed)`. Two calls with the same seed give input `i` the
    /// same numbers; give each call that must draw new numbers its own seed. The other
    /// parameters are `map`'s (a checkpoint journal records the seed with the function).
    @inlinable
    public func map<F: RandomizedFunction>(
        _ function: F, _ inputs: some Sequence<F.Input>, seed: UInt64,
        chunkSize: Int? = nil, timeout: Double? = nil, retry: RetryPolicy? = nil,
        progress: ProgressReport? = nil, checkpoint: String? = nil
    ) throws -> [F.Output] {
        try _map(
            WithRandomStreams(function, seed: seed), WithRandomStreams<F>.indexed(inputs), chunkSize: chunkSize,
            timeout: timeout, retry: retry, progress: progress, checkpoint: checkpoint)
    }

    /// `mapAsync` for a `RandomizedFunction`: streams as in `map(_:_:seed:)`.
    @inlinable
    public func mapAsync<F: RandomizedFunction>(
        _ function: F, _ inputs: some Sequence<F.Input>, seed: UInt64,
        chunkSize: Int? = nil, timeout: Double? = nil, retry: RetryPolicy? = nil,
        progress: ProgressReport? = nil, checkpoint: String? = nil,
        callback: (@Sendable ([F.Output]) -> Void)? = nil,
        errorCallback: (@Sendable (any Error) -> Void)? = nil
    )
        throws -> AsyncResult<[F.Output]>
    {
        try _mapAsync(
            WithRandomStreams(function, seed: seed), WithRandomStreams<F>.indexed(inputs), chunkSize: chunkSize,
            timeout: timeout, retry: retry, progress: progress, checkpoint: checkpoint, callback: callback,
            errorCallback: errorCallback)
    }

    /// `asyncMap` for a `RandomizedFunction`: streams as in `map(_:_:seed:)`.
    @inlinable
    public func asyncMap<F: RandomizedFunction>(
        _ function: F, _ inputs: some Sequence<F.Input>, seed: UInt64,
        chunkSize: Int? = nil, timeout: Double? = nil, retry: RetryPolicy? = nil,
        progress: ProgressReport? = nil,
        checkpoint: String? = nil
    ) async throws -> [F.Output] {
        try await _mapAsync(
            WithRandomStreams(function, seed: seed), WithRandomStreams<F>.indexed(inputs),
            chunkSize: chunkSize, timeout: timeout, retry: retry, progress: progress,
            checkpoint: checkpoint, callback: nil, errorCallback: nil
        ).value
    }

    /// `imap` for a `RandomizedFunction`: input `i` of the sequence (counted as it is read)
    /// draws from stream `i` of `seed`; results in input order.
    @inlinable
    public func imap<F: RandomizedFunction>(
        _ function: F, _ inputs: some Sequence<F.Input> & Sendable, seed: UInt64,
        chunkSize: Int = 1, timeout: Double? = nil, retry: RetryPolicy? = nil,
        progress: ProgressReport? = nil
    ) throws -> ResultStream<WithRandomStreams<F>> {
        try _stream(
            WithRandomStreams(function, seed: seed), Self.indexedIterator(inputs), chunkSize: chunkSize,
            ordered: true, timeout: timeout, retry: retry, progress: progress)
    }

    /// `imapUnordered` for a `RandomizedFunction`: streams as in `imap(_:_:seed:)`, results in
    /// the order they finish.
    @inlinable
    public func imapUnordered<F: RandomizedFunction>(
        _ function: F, _ inputs: some Sequence<F.Input> & Sendable,
        seed: UInt64, chunkSize: Int = 1, timeout: Double? = nil,
        retry: RetryPolicy? = nil, progress: ProgressReport? = nil
    )
        throws -> ResultStream<WithRandomStreams<F>>
    {
        try _stream(
            WithRandomStreams(function, seed: seed), Self.indexedIterator(inputs), chunkSize: chunkSize,
            ordered: false, timeout: timeout, retry: retry, progress: progress)
    }

    @inlinable
    static func indexedIterator<S: Sequence>(_ inputs: S) -> AnyIterator<IndexedInput<S.Element>> {
        var iterator = inputs.makeIterator()
        var index: UInt64 = 0
        return AnyIterator {
            guard let value = iterator.next() else { return nil }
            defer { index &+= 1 }
            return IndexedInput(index: index, value: value)
        }
    }
}
