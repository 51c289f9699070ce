import Synchronization

/// A function value encoded once, sent to each worker once (DESIGN.md §4).
final class FunctionDefinition {
    let typeName: String
    let bytes: [UInt8]
    /// Assigned by the engine when first used.
    var id: UInt32 = 0
    var activeJobs = 0
    var lastUsed: UInt64 = 0
    /// Shared segments the function value mentions (sent to a worker before the value).
    let attachments: [SegmentStorage]

    init(typeName: String, bytes: [UInt8], attachments: [SegmentStorage] = []) {
        self.typeName = typeName
        self.bytes = bytes
        self.attachments = attachments
    }

    static func make<F: ParallelFunction>(_ function: F) throws(PoolError) -> FunctionDefinition {
        let name = try FunctionIdentity.name(of: F.self)
        do {
            let (bytes, attachments) = try AttachmentContext.collecting { try Wire.encode(function) }
            return FunctionDefinition(typeName: name, bytes: bytes, attachments: attachments)
        } catch {
            throw PoolError(.encoding, "cannot encode the function value \(String(reflecting: F.self)): \(error)")
        }
    }
}

/// The chunk a task carries.
struct ChunkSpan {
    var index: Int
    var firstInput: Int
    var count: Int
}

/// Work submitted to the engine: a map, an apply, an imap. The engine calls everything
/// here on its own thread; jobs talk to waiting callers through their completions.
class Job {
    let function: FunctionDefinition
    /// Set by the engine when the job needs nothing more (done, failed or cancelled).
    var finished = false
    /// Runs alone on its worker (a `Process` target on an MPI rank): its chunk goes only to a
    /// worker with nothing in flight, which then gets nothing else until it finishes.
    var exclusive = false

    init(function: FunctionDefinition) {
        self.function = function
    }

    /// Whether a chunk can be taken now.
    var hasChunkReady: Bool { false }
    /// Encodes the next chunk's inputs into `writer`.
    func encodeNextChunk(into writer: inout WireWriter) throws -> ChunkSpan? { nil }
    /// A chunk's outputs arrived; returns whether the job is now finished.
    func deliver(_ span: ChunkSpan, outputs reader: inout WireReader) throws -> Bool { true }
    /// A chunk failed; returns whether the job is now finished.
    func fail(_ span: ChunkSpan?, error: any Error) -> Bool { true }
    /// Whether the caller stopped caring (e.g. an abandoned imap).
    var isCancelled: Bool { false }
}

/// `map`, `starmap`, `apply` and their async forms: all inputs known up front, results in
/// input order. A failure fails the whole call; no new chunk is sent after it, and the call
/// reports the failure of the lowest input among the chunks already sent — so the error a
/// caller sees does not depend on timing.
final class BatchJob<F: ParallelFunction>: Job {
    private let inputs: [F.Input]
    private let chunkSize: Int
    private var nextStart = 0
    private var chunksLeft: Int
    private let results: UnsafeMutablePointer<F.Output>
    private var chunkDone: [Bool]
    private var inFlight = 0
    private var failure: (firstInput: Int, error: any Error)?
    private let finish: (Result<[F.Output], any Error>) -> Void

    init(function: FunctionDefinition, inputs: [F.Input], chunkSize: Int,
         finish: @escaping (Result<[F.Output], any Error>) -> Void) {
        self.inputs = inputs
        self.chunkSize = chunkSize
        let chunks = (inputs.count + chunkSize - 1) / chunkSize
        self.chunksLeft = chunks
        self.chunkDone = Array(repeating: false, count: chunks)
        self.results = .allocate(capacity: max(inputs.count, 1))
        self.finish = finish
        super.init(function: function)
        if inputs.isEmpty {
            finished = true
            finish(.success([]))
        }
    }

    deinit {
        for (index, done) in chunkDone.enumerated() where done {
            let first = index * chunkSize
            (results + first).deinitialize(count: min(chunkSize, inputs.count - first))
        }
        results.deallocate()
    }

    override var hasChunkReady: Bool { !finished && failure == nil && nextStart < inputs.count }

    override func encodeNextChunk(into writer: inout WireWriter) throws -> ChunkSpan? {
        guard hasChunkReady else { return nil }
        let first = nextStart
        let count = min(chunkSize, inputs.count - first)
        try inputs.withUnsafeBufferPointer { all in
            try F._encodeInputs(UnsafeBufferPointer(rebasing: all[first..<(first + count)]), into: &writer)
        }
        nextStart += count
        inFlight += 1
        return ChunkSpan(index: first / chunkSize, firstInput: first, count: count)
    }

    override func deliver(_ span: ChunkSpan, outputs reader: inout WireReader) throws -> Bool {
        if finished { return true }
        inFlight -= 1
        if failure != nil { return failIfSettled() }
        let outputs = try F._decodeOutputs(from: &reader)
        guard outputs.count == span.count, !chunkDone[span.index] else {
            throw PoolError(.protocolViolation, "a worker returned \(outputs.count) results for a chunk of \(span.count)")
        }
        outputs.withUnsafeBufferPointer { source in
            (results + span.firstInput).initialize(from: source.baseAddress!, count: span.count)
        }
        chunkDone[span.index] = true
        chunksLeft -= 1
        if chunksLeft == 0 {
            finished = true
            let count = inputs.count
            let all = Array<F.Output>(unsafeUninitializedCapacity: count) { buffer, initialized in
                buffer.baseAddress!.moveInitialize(from: results, count: count)
                initialized = count
            }
            for index in chunkDone.indices { chunkDone[index] = false }
            finish(.success(all))
        }
        return finished
    }

    override func fail(_ span: ChunkSpan?, error: any Error) -> Bool {
        if finished { return true }
        guard let span else {
            finished = true
            finish(.failure(error))
            return true
        }
        inFlight -= 1
        if failure == nil || span.firstInput < failure!.firstInput {
            failure = (span.firstInput, error)
        }
        return failIfSettled()
    }

    /// After a failure: finish once no chunk sent before it can report a lower input.
    private func failIfSettled() -> Bool {
        guard inFlight == 0, let failure else { return false }
        finished = true
        finish(.failure(failure.error))
        return true
    }
}

/// `imap` and `imapUnordered`: inputs pulled lazily from the caller's sequence, at most
/// `window` chunks ahead of the consumer (back-pressure), results handed over one chunk at
/// a time.
final class StreamJob<F: ParallelFunction>: Job, @unchecked Sendable {
    private var source: AnyIterator<F.Input>
    private let chunkSize: Int
    private let ordered: Bool
    private let window: Int
    private var sourceDone = false
    private var nextChunk = 0
    private var nextInput = 0
    private var chunksOutstanding = 0   // dispatched, result not yet arrived

    // Shared with the consumer, under `lock`.
    let lock = ConditionLock()
    private var ready: [Int: (ChunkSpan, Result<[F.Output], any Error>)] = [:]
    private var arrivalOrder: [Int] = []
    private var consumedChunks = 0
    private var totalChunks: Int?          // known once the source is exhausted
    private var fatal: (any Error)?
    private let cancelled = Atomic<Bool>(false)
    private var nextToConsume = 0
    private let wake: @Sendable () -> Void

    init(function: FunctionDefinition, source: AnyIterator<F.Input>, chunkSize: Int, ordered: Bool,
         window: Int, wake: @escaping @Sendable () -> Void) {
        self.source = source
        self.chunkSize = chunkSize
        self.ordered = ordered
        self.window = window
        self.wake = wake
        super.init(function: function)
    }

    override var isCancelled: Bool { cancelled.load(ordering: .relaxed) }

    func cancel() {
        cancelled.store(true, ordering: .relaxed)
        wake()
    }

    override var hasChunkReady: Bool {
        if finished || sourceDone { return false }
        let consumed = lock.withLock { consumedChunks }
        return nextChunk - consumed < window
    }

    override func encodeNextChunk(into writer: inout WireWriter) throws -> ChunkSpan? {
        guard hasChunkReady else { return nil }
        var inputs: [F.Input] = []
        inputs.reserveCapacity(chunkSize)
        while inputs.count < chunkSize, let next = source.next() { inputs.append(next) }
        if inputs.count < chunkSize { sourceDone = true }
        if inputs.isEmpty {
            markSourceDone()
            return nil
        }
        try inputs.withUnsafeBufferPointer { try F._encodeInputs($0, into: &writer) }
        let span = ChunkSpan(index: nextChunk, firstInput: nextInput, count: inputs.count)
        nextChunk += 1
        nextInput += inputs.count
        chunksOutstanding += 1
        if sourceDone { markSourceDone() }
        return span
    }

    private func markSourceDone() {
        sourceDone = true
        lock.withLock {
            totalChunks = nextChunk
            lock.broadcast()
        }
        if chunksOutstanding == 0 { finished = true }
    }

    override func deliver(_ span: ChunkSpan, outputs reader: inout WireReader) throws -> Bool {
        let outputs = try F._decodeOutputs(from: &reader)
        guard outputs.count == span.count else {
            throw PoolError(.protocolViolation, "a worker returned \(outputs.count) results for a chunk of \(span.count)")
        }
        store(span, .success(outputs))
        return finished
    }

    override func fail(_ span: ChunkSpan?, error: any Error) -> Bool {
        guard let span else {
            lock.withLock {
                fatal = error
                lock.broadcast()
            }
            finished = true
            return true
        }
        store(span, .failure(error))
        return finished
    }

    private func store(_ span: ChunkSpan, _ result: Result<[F.Output], any Error>) {
        chunksOutstanding -= 1
        lock.withLock {
            ready[span.index] = (span, result)
            if !ordered { arrivalOrder.append(span.index) }
            lock.broadcast()
        }
        if sourceDone && chunksOutstanding == 0 { finished = true }
    }

    /// The next chunk's results for the consumer, waiting for them; nil at the end.
    func take() -> Result<[F.Output], any Error>? {
        lock.withLock {
            while true {
                if let fatal { return .failure(fatal) }
                if let total = totalChunks, nextToConsume >= total { return nil }
                let key: Int?
                if ordered {
                    key = ready[nextToConsume] != nil ? nextToConsume : nil
                } else {
                    key = arrivalOrder.first
                }
                if let key, let (_, result) = ready.removeValue(forKey: key) {
                    if !ordered { arrivalOrder.removeFirst() }
                    nextToConsume += 1
                    consumedChunks += 1
                    wake()
                    return result
                }
                lock.wait(until: nil)
            }
        }
    }
}
