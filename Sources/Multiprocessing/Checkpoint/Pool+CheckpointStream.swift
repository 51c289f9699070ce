#if canImport(Glibc)
import Glibc
#endif

extension Pool {
    /// `imap` with a checkpoint journal: each result is appended to the journal at `path` as
    /// the stream hands it to you, and running the same call again (after a crash, a kill, a
    /// wall-time limit) hands back what the journal holds without running it — in input
    /// order, interleaved with what it computes — so the stream gives the same results.
    ///
    /// The inputs are read lazily, so they cannot be checked up front as `map`'s are: the
    /// journal keeps a hash of each input with its result, and an input that differs from
    /// the one recorded at its position ends the stream with `CheckpointError(.otherWork)`.
    /// A journal of a `map`, or of another function value, is refused when the stream is
    /// made. Failed inputs are not recorded (they run again next time). A result is handed to
    /// the journal's writer thread, which writes it at once, before the stream next waits for
    /// one (and every 0.1 s while results keep coming), and flushed to the disk at most a
    /// second later and right after the stream ends or is dropped; results received but not
    /// written when the process dies run again. Inputs and outputs must be `Codable`.
    @inlinable
    public func imap<F: ParallelFunction>(
        _ function: F, _ inputs: some Sequence<F.Input> & Sendable,
        chunkSize: Int = 1, timeout: Double? = nil, retry: RetryPolicy? = nil,
        progress: ProgressReport? = nil, checkpoint: String
    ) throws -> ResultStream<F>
    where F.Input: Codable, F.Output: Codable {
        try _checkpointedStream(
            function, AnyIterator(inputs.makeIterator()), chunkSize: chunkSize, ordered: true,
            timeout: timeout, retry: retry, progress: progress, path: checkpoint)
    }

    /// `imapUnordered` with a checkpoint journal (see `imap(_:_:chunkSize:timeout:retry:progress:checkpoint:)`):
    /// a resumed run hands back the recorded results first, as it reads their inputs.
    @inlinable
    public func imapUnordered<F: ParallelFunction>(
        _ function: F, _ inputs: some Sequence<F.Input> & Sendable,
        chunkSize: Int = 1, timeout: Double? = nil, retry: RetryPolicy? = nil,
        progress: ProgressReport? = nil,
        checkpoint: String
    ) throws -> ResultStream<F>
    where F.Input: Codable, F.Output: Codable {
        try _checkpointedStream(
            function, AnyIterator(inputs.makeIterator()), chunkSize: chunkSize, ordered: false,
            timeout: timeout, retry: retry, progress: progress, path: checkpoint)
    }

    @usableFromInline
    func _checkpointedStream<F: ParallelFunction>(
        _ function: F, _ inputs: AnyIterator<F.Input>, chunkSize: Int,
        ordered: Bool, timeout: Double?, retry: RetryPolicy?,
        progress: ProgressReport?, path: String
    ) throws -> ResultStream<F>
    where F.Input: Codable, F.Output: Codable {
        let definition = try FunctionDefinition.make(function)
        let work = CheckpointJournal.Work(
            typeName: definition.typeName, functionHash: stripeHash(definition.bytes),
            inputsHash: CheckpointedStream<F>.streamMarker, count: Int.max)
        let (journal, records) = try CheckpointJournal.open(path: path, work: work)
        let state: CheckpointedStream<F>
        do {
            state = try CheckpointedStream<F>(journal: journal, records: records, inputs: inputs, ordered: ordered)
        } catch {
            journal.close()
            throw error
        }
        // The call's progress: the inputs the journal answers are done (`ProgressMeter.resume`).
        let meter = progress.map { ProgressMeter($0, total: nil) }
        state.meter = meter
        let inner = try stream(
            PositionedFunction(function: function), state.pending(), chunkSize: chunkSize,
            ordered: ordered, timeout: timeout, retry: retry, meter: meter)
        state.inner = inner
        return ResultStream(
            results: { state.next(until: $0) }, finished: { state.isFinished },
            cancel: { [weak inner] in
                inner?.cancel()
                state.stop()
            })
    }
}

/// A stream input with its position in the caller's sequence (a checkpointed stream's).
struct PositionedInput<Value: Codable & Sendable>: Codable, Sendable {
    var index: Int
    var value: Value
}

/// A result with its input's position.
struct PositionedOutput<Value: Codable & Sendable>: Codable, Sendable {
    var index: Int
    var value: Value
}

/// `function` on positioned inputs: the results say which input they belong to, also in
/// completion order.
struct PositionedFunction<F: ParallelFunction>: ParallelFunction where F.Input: Codable, F.Output: Codable {
    var function: F
    func callAsFunction(_ input: PositionedInput<F.Input>) throws -> PositionedOutput<F.Output> {
        PositionedOutput(index: input.index, value: try function(input.value))
    }
}

/// The consumer's side of a checkpointed `imap`: reads the inputs (on the pool's thread),
/// sends on those the journal does not hold, replays those it does, records new results.
final class CheckpointedStream<F: ParallelFunction>: @unchecked Sendable where F.Input: Codable, F.Output: Codable {
    /// The header's inputs hash of a stream journal (a map journal hashes its inputs).
    static var streamMarker: UInt64 { stripeHash(Array("swiftmp checkpointed stream".utf8)) }

    private let journal: CheckpointJournal
    private let ordered: Bool
    /// The journal's results: input position → (input hash, output).
    private var known: [Int: (hash: UInt64, output: F.Output)] = [:]
    var inner: ResultStream<PositionedFunction<F>>?
    /// The call's progress (the pool's thread only, which reads the inputs).
    var meter: ProgressMeter?

    // Shared with the pool's thread, which reads the inputs.
    private let lock = ConditionLock()
    private var source: AnyIterator<F.Input>
    /// The inputs sent to the pool, in order: position among those sent → position in the
    /// caller's sequence (errors name the first, the caller wants the second).
    private var sentOrder: [Int] = []
    /// Hashes of the inputs sent and not done yet, by position.
    private var hashes: [Int: UInt64] = [:]
    /// Inputs the journal answers, in order, not handed out yet.
    private var replays: [(index: Int, result: Result<F.Output, any Error>)] = []
    private var replayHead = 0

    // Consumer only.
    /// Results taken from the pool (ordered: the next one is for input `sentOrder[taken]`).
    private var taken = 0
    private var innerEnded = false
    private var finished = false
    private var stopError: (any Error)?

    var isFinished: Bool { finished }

    init(
        journal: CheckpointJournal, records: [CheckpointJournal.Record], inputs: AnyIterator<F.Input>,
        ordered: Bool
    ) throws {
        self.journal = journal
        self.ordered = ordered
        self.source = inputs
        for record in records {
            guard record.indices.count == 1 else {
                throw CheckpointError(
                    .corrupt,
                    "the checkpoint \(journal.path) holds a record of \(record.indices.count) "
                        + "inputs, not one stream result; delete it to start again")
            }
            let entry = try record.outputs.withUnsafeBytes { raw -> (UInt64, F.Output) in
                var reader = WireReader(raw)
                do {
                    let hash = try reader.read(UInt64.self)
                    let outputs = try F._decodeOutputs(from: &reader)
                    guard outputs.count == 1 else { throw WireError.corrupt("\(outputs.count) outputs") }
                    return (hash, outputs[0])
                } catch {
                    throw CheckpointError(
                        .corrupt,
                        "the checkpoint \(journal.path) holds results that are not "
                            + "\(F.Output.self): \(error); delete it to start again")
                }
            }
            known[record.indices[0]] = entry
        }
    }

    /// The inputs to run, with their positions; replays the others (on the pool's thread).
    func pending() -> AnyIterator<PositionedInput<F.Input>> {
        var position = 0
        return AnyIterator { [weak self] in
            guard let self else { return nil }
            return lock.withLock {
                while let value = source.next() {
                    let index = position
                    position += 1
                    let hash = Self.hash(value)
                    if let entry = known[index] {
                        if entry.hash == hash {
                            replays.append((index, .success(entry.output)))
                            meter?.resume(1)
                            continue
                        }
                        replays.append(
                            (
                                index,
                                .failure(
                                    CheckpointError(
                                        .otherWork,
                                        """
                                        the checkpoint \(journal.path) records another input at position \(index) than this \
                                        stream's; delete it to start again, or use another path
                                        """))
                            ))
                        return nil
                    }
                    sentOrder.append(index)
                    hashes[index] = hash
                    return PositionedInput(index: index, value: value)
                }
                return nil
            }
        }
    }

    static func hash(_ value: F.Input) -> UInt64 {
        var writer = WireWriter(capacity: 64)
        do {
            try withUnsafePointer(to: value) { try F._encodeInputs(UnsafeBufferPointer(start: $0, count: 1), into: &writer) }
        } catch {
            return 0 // cannot be encoded: the pool reports it when it sends the input
        }
        return stripeHash(writer.bytes)
    }

    /// The next results for the consumer (never empty), waiting for them at most until
    /// `deadline` (monotonic ns; nil: for ever).
    func next(until deadline: UInt64?) -> StreamBatch<F.Output> {
        while !finished {
            if let stopError {
                finish()
                return .results([.failure(stopError)])
            }
            // Replays first: all of them (unordered), or those before the next input sent.
            var out: [Result<F.Output, any Error>] = []
            lock.withLock {
                let before = ordered && !innerEnded && taken < sentOrder.count ? sentOrder[taken] : Int.max
                while replayHead < replays.count, replays[replayHead].index < before {
                    let replay = replays[replayHead]
                    replayHead += 1
                    if case .failure(let error) = replay.result {
                        stopError = error
                        break
                    }
                    out.append(replay.result)
                }
            }
            if stopError != nil { inner?.cancel() }
            if !out.isEmpty { return .results(out) }
            if stopError != nil { continue }
            if innerEnded {
                finish()
                return .ended
            }
            guard let inner else {
                finish()
                return .ended
            }
            var result = inner.nextBuffered()
            if result == nil {
                // About to wait: what was received is written first.
                do {
                    try journal.writeNow()
                } catch {
                    stopError = error
                    continue
                }
                switch inner.next(until: deadline) {
                case .result(let next): result = next
                case .end: result = nil
                case .timedOut: return .timedOut
                }
            }
            guard let result else {
                innerEnded = true
                continue
            }
            // Ordered: the replays the pool's thread found meanwhile before this input come first.
            var earlier: [Result<F.Output, any Error>] = []
            lock.withLock {
                let current = ordered && taken < sentOrder.count ? sentOrder[taken] : Int.max
                while replayHead < replays.count, replays[replayHead].index < current,
                    case .success = replays[replayHead].result
                {
                    earlier.append(replays[replayHead].result)
                    replayHead += 1
                }
            }
            taken += 1
            switch result {
            case .success(let positioned):
                let hash = lock.withLock { hashes.removeValue(forKey: positioned.index) } ?? 0
                record(positioned.index, hash: hash, output: positioned.value)
                return .results(earlier + [.success(positioned.value)])
            case .failure(let error):
                // The error names the input's position among those sent: give the caller's.
                let sentPosition =
                    (error as? RemoteError)?.inputIndex ?? (error as? WorkerDied)?.inputIndex
                    ?? (error as? TaskTimedOut)?.inputIndex ?? (error as? RetriesExhausted)?.inputIndex
                let index = lock.withLock { () -> Int? in
                    guard let sentPosition, sentPosition >= 0, sentPosition < sentOrder.count else { return nil }
                    let index = sentOrder[sentPosition]
                    hashes[index] = nil
                    return index
                }
                return .results(earlier + [.failure(index.map { index in renumbered(error) { _ in index } } ?? error)])
            }
        }
        return .ended
    }

    private func record(_ index: Int, hash: UInt64, output: F.Output) {
        var writer = WireWriter(capacity: 64)
        writer.write(hash)
        do {
            try withUnsafePointer(to: output) { try F._encodeOutputs(UnsafeBufferPointer(start: $0, count: 1), into: &writer) }
            try writer.bytes.withUnsafeBytes { try journal.append(indices: .list([index]), outputs: $0) }
        } catch {
            stopError = error
            inner?.cancel()
        }
    }

    /// The stream was cancelled or dropped: the journal is written, flushed and let go.
    func stop() {
        finish()
    }

    private func finish() {
        guard !finished else { return }
        finished = true
        journal.close()
    }
}
