import Wire

/// A bundle's answer, once every input of it is settled (`NodeScheduler`).
protocol BundleAnswer: AnyObject {
    /// Rank 0's task id of the bundle.
    var task: UInt64 { get }
    /// Writes the answer: one `result` if every input succeeded, else `outcomes`.
    func writeAnswer(into writer: inout WireWriter) throws
}

/// The inputs of one bundle (`MasterMessage.bundle`), run by a worker rank's own engine over
/// its local workers (`NodeScheduler`): handed out a chunk (the call's chunk size) at a time;
/// every input ends once — an output, or the error it failed with (the engine's exact
/// accounting decides which input a dying worker charges). No retry here: the engine on
/// rank 0 applies the call's retry policy to what the answer says.
final class BundleJob<F: ParallelFunction>: Job, BundleAnswer, @unchecked Sendable {
    let task: UInt64
    private let inputs: [F.Input]
    private let chunkSize: Int
    /// Whether the inputs travel as the library writes plain numbers (`PlainTransport`).
    private let plainInputs = PlainTransport.of(F.self).inputs
    private var nextStart = 0
    /// Which inputs have ended (an output or a failure).
    private var settled: [Bool]
    /// Outputs as the workers returned them, a run of consecutive inputs each: kept whole,
    /// so that the per-input work here is on `settled` alone. This code runs unspecialised (the
    /// function's type is resolved by name at run time), where each generic operation per
    /// element costs far more than a bulk copy: a per-input array of optionals took this rank
    /// ~160 ns per input.
    private var runs: [(first: Int, outputs: [F.Output])] = []
    private var failures: [Int: OutcomeFailure] = [:]
    private var resolved = 0
    private let complete: (any BundleAnswer) -> Void

    /// Decodes the bundle's inputs from `reader`.
    init(
        task: UInt64, function: FunctionDefinition, chunkSize: Int, timeoutNanoseconds: UInt64?,
        inputs reader: inout WireReader, complete: @escaping (any BundleAnswer) -> Void
    ) throws {
        self.task = task
        inputs = try F._decodeInputs(from: &reader)
        self.chunkSize = max(1, chunkSize)
        settled = Array(repeating: false, count: inputs.count)
        self.complete = complete
        super.init(function: function, options: TaskOptions(timeoutNanoseconds: timeoutNanoseconds, retry: .none))
    }

    var inputCount: Int { inputs.count }

    override var inputsPerChunk: Int { chunkSize }
    override var hasFreshInput: Bool { !finished && nextStart < inputs.count }

    override func takeFresh() -> InputSpan? {
        guard hasFreshInput else { return nil }
        let span = InputSpan(first: nextStart, count: min(chunkSize, inputs.count - nextStart))
        nextStart = span.end
        return span
    }

    override func encode(_ span: InputSpan, into writer: inout WireWriter) throws {
        try inputs.withUnsafeBufferPointer { all in
            try encodeInputs(
                F.self, UnsafeBufferPointer(rebasing: all[span.first..<span.end]), owner: inputs,
                plain: plainInputs, into: &writer)
        }
    }

    override func deliver(_ span: InputSpan, outputs reader: inout WireReader) throws {
        guard !finished else { return }
        let decoded = try F._decodeOutputs(from: &reader)
        guard decoded.count == span.count else {
            throw PoolError(.protocolViolation, "a worker returned \(decoded.count) results for \(span.count) inputs")
        }
        // Inputs already settled keep what they have: the run is split around them. (One
        // access to `settled` for the span, not one checked access per input.)
        var pieces: [Range<Int>] = []
        settled.withUnsafeMutableBufferPointer { settled in
            var start = span.first
            while start < span.end {
                while start < span.end && settled[start] { start += 1 }
                var end = start
                while end < span.end && !settled[end] {
                    settled[end] = true
                    end += 1
                }
                if end > start { pieces.append(start..<end) }
                start = end
            }
        }
        for piece in pieces {
            runs.append(
                (
                    piece.lowerBound,
                    piece.count == decoded.count
                        ? decoded : Array(decoded[(piece.lowerBound - span.first)..<(piece.upperBound - span.first)])
                ))
            resolved += piece.count
        }
        finishIfSettled()
    }

    override func failInput(_ index: Int, error: any Error) {
        guard !finished, !settled[index] else { return }
        settled[index] = true
        failures[index] = OutcomeFailure(error)
        resolved += 1
        finishIfSettled()
    }

    /// Cancelled, or the rank's pool ended: every input not settled fails with `error`.
    override func failAll(_ error: any Error) {
        guard !finished else { return }
        let failure = OutcomeFailure(error)
        for index in inputs.indices where !settled[index] {
            settled[index] = true
            failures[index] = failure
        }
        resolved = inputs.count
        finishIfSettled()
    }

    private func finishIfSettled() {
        guard resolved == inputs.count, !finished else { return }
        finished = true
        complete(self)
    }

    func writeAnswer(into writer: inout WireWriter) throws {
        runs.sort { $0.first < $1.first }
        if failures.isEmpty {
            WorkerCodec.beginResult(task: task, into: &writer)
            try Self.joined(runs[...]).withUnsafeBufferPointer { try F._encodeOutputs($0, into: &writer) }
            return
        }
        // In input order: each failure, and between failures the runs of outputs joined.
        Outcomes.begin(task: task, into: &writer)
        var index = 0
        var run = 0
        while index < inputs.count {
            if let failure = failures[index] {
                Outcomes.appendFailure(failure, into: &writer)
                index += 1
                continue
            }
            var next = run
            var end = index
            while next < runs.count, runs[next].first == end {
                end += runs[next].outputs.count
                next += 1
            }
            guard end > index else {
                throw PoolError(.protocolViolation, "input \(index) of a bundle ended with neither an output nor a failure")
            }
            let outputs = Self.joined(runs[run..<next])
            try Outcomes.appendOutputs(count: outputs.count, into: &writer) { writer in
                try outputs.withUnsafeBufferPointer { try F._encodeOutputs($0, into: &writer) }
            }
            run = next
            index = end
        }
    }

    /// The outputs of consecutive runs as one array (the run itself when it is one).
    private static func joined(_ runs: ArraySlice<(first: Int, outputs: [F.Output])>) -> [F.Output] {
        if runs.count == 1 { return runs.first!.outputs }
        var all: [F.Output] = []
        all.reserveCapacity(runs.reduce(0) { $0 + $1.outputs.count })
        for run in runs { all.append(contentsOf: run.outputs) }
        return all
    }
}
