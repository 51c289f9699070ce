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
    private var nextStart = 0
    private var outputs: [F.Output?]
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
        outputs = Array(repeating: nil, count: inputs.count)
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
            try F._encodeInputs(UnsafeBufferPointer(rebasing: all[span.first..<span.end]), into: &writer)
        }
    }

    override func deliver(_ span: InputSpan, outputs reader: inout WireReader) throws {
        guard !finished else { return }
        let decoded = try F._decodeOutputs(from: &reader)
        guard decoded.count == span.count else {
            throw PoolError(.protocolViolation, "a worker returned \(decoded.count) results for \(span.count) inputs")
        }
        for (offset, output) in decoded.enumerated() where outputs[span.first + offset] == nil {
            outputs[span.first + offset] = output
            resolved += 1
        }
        finishIfSettled()
    }

    override func failInput(_ index: Int, error: any Error) {
        guard !finished, outputs[index] == nil, failures[index] == nil else { return }
        failures[index] = OutcomeFailure(error)
        resolved += 1
        finishIfSettled()
    }

    /// Cancelled, or the rank's pool ended: every input not settled fails with `error`.
    override func failAll(_ error: any Error) {
        guard !finished else { return }
        let failure = OutcomeFailure(error)
        for index in inputs.indices where outputs[index] == nil && failures[index] == nil {
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
        if failures.isEmpty {
            WorkerCodec.beginResult(task: task, into: &writer)
            let all = outputs.map { $0! }
            try all.withUnsafeBufferPointer { try F._encodeOutputs($0, into: &writer) }
            return
        }
        Outcomes.begin(task: task, into: &writer)
        var index = 0
        while index < inputs.count {
            if let failure = failures[index] {
                Outcomes.appendFailure(failure, into: &writer)
                index += 1
                continue
            }
            var end = index
            while end < inputs.count, failures[end] == nil { end += 1 }
            let run = outputs[index..<end].map { $0! }
            try Outcomes.appendOutputs(count: run.count, into: &writer) { writer in
                try run.withUnsafeBufferPointer { try F._encodeOutputs($0, into: &writer) }
            }
            index = end
        }
    }
}
