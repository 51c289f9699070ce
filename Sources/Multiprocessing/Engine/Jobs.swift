import Synchronization

/// A function value encoded once, sent to each worker once (`FunctionCache`).
final class FunctionDefinition {
    let typeName: String
    let bytes: [UInt8]
    /// Assigned by the engine when first used.
    var id: UInt32 = 0
    var activeJobs = 0
    var lastUsed: UInt64 = 0
    /// Shared segments the function value mentions (sent to a worker before the value). Held
    /// only while a job uses the definition (`FunctionCache.release` lets go), so that a
    /// cached definition does not keep a dropped queue's memory alive.
    var attachments: [SegmentStorage]
    /// Their ids: a cached definition that mentions a segment that is gone is dropped.
    let attachmentIDs: Set<SegmentID>
    /// `FunctionCache.contentHash(bytes)`, taken once, on the submitting thread.
    let contentHash: UInt64
    /// The value `bytes` encode, kept so that a later equal value reuses them (`FunctionEncodings`).
    let source: EncodedFunction?

    init(typeName: String, bytes: [UInt8], attachments: [SegmentStorage] = [], source: EncodedFunction? = nil) {
        self.typeName = typeName
        self.bytes = bytes
        self.attachments = attachments
        self.attachmentIDs = Set(attachments.map(\.id))
        self.contentHash = source?.hash ?? FunctionCache.contentHash(bytes)
        self.source = source
    }

    static func make<F: ParallelFunction>(_ function: F) throws(PoolError) -> FunctionDefinition {
        try FunctionEncodings.definition(of: function)
    }
}

/// Consecutive inputs of one job, sent as one task: positions `first ..< first + count` in
/// the submitted sequence.
struct InputSpan: Equatable {
    var first: Int
    var count: Int
    var end: Int { first + count }
}

/// Work submitted to the engine: a map, an apply, an imap. Inputs are handed out as spans
/// (a fresh chunk, or a piece of one that runs again); every input ends exactly once —
/// delivered, or failed — and the job tells its caller. The engine calls everything here
/// on its own thread, except `requestCancel` (hence `@unchecked Sendable`). The state the
/// engine touches for every task is `@exclusivity(unchecked)`, as the engine's own
/// (`PoolEngine`): one thread uses it, and the runtime's dynamic checks cost per access.
class Job: @unchecked Sendable {
    /// The function value (the engine swaps in its cached equal, `FunctionCache`).
    var function: FunctionDefinition
    let options: TaskOptions
    /// Set when the job needs nothing more (done, failed or cancelled). Engine thread only;
    /// other threads read `isFinished`. Its progress's last report goes out here, before the
    /// caller is given the outcome (the call returns after it, as a bar's last line comes
    /// before the program's next one).
    @exclusivity(unchecked) var finished = false {
        didSet {
            guard finished else { return }
            progress?.finish()
            finishedFlag.store(true, ordering: .releasing)
        }
    }
    private let finishedFlag = Atomic<Bool>(false)
    /// `finished`, for any thread (a result stream's owner, when it drops the stream).
    var isFinished: Bool { finishedFlag.load(ordering: .acquiring) }
    /// Runs alone on its worker (a `Process` target on an MPI rank): its chunk goes only to a
    /// worker with nothing in flight, which then gets nothing else until it finishes.
    var exclusive = false
    /// Counts settled inputs for the call's `ProgressReport` (nil: none asked for).
    var progress: ProgressMeter?
    /// Runs every engine round while the job lives (a checkpoint journal writes what waits),
    /// given the job: a closure that captured it weakly would move its reference count to a
    /// side table, where each of the engine's retains and releases of it takes the slow path
    /// (3.7 ms of the pool thread's time per checkpointed map of 2 M inputs).
    var everyRound: ((Job) -> Void)?
    private let cancelFlag = Atomic<Bool>(false)
    /// Spans to run again (after a worker died, a withdrawal, or a retried failure), each
    /// not before its time; taken before fresh inputs.
    @exclusivity(unchecked) private var again: [(span: InputSpan, notBefore: UInt64)] = []
    /// What each failed attempt of an input ended with (inputs that failed at least once).
    @exclusivity(unchecked) private var history: [Int: [any Error]] = [:]

    init(function: FunctionDefinition, options: TaskOptions) {
        self.function = function
        self.options = options
    }

    // MARK: for subclasses

    /// Whether fresh inputs can be taken now.
    var hasFreshInput: Bool { false }
    /// The pool was closed: no job comes after this one (a stream stops holding back for its
    /// consumer).
    func poolClosed() {}
    /// Whether the caller is still writing inputs the engine will send (a map over a
    /// collection read on the calling thread): the engine waits for them as for replies,
    /// spinning first, not asleep until the caller's next publication wakes it.
    var awaitsInput: Bool { false }
    /// Takes the next fresh chunk.
    func takeFresh() -> InputSpan? { nil }
    /// Takes up to `limit` fresh inputs (at least a chunk), for a worker that schedules inputs
    /// itself (`MasterMessage.bundle`); by default one chunk.
    func takeFresh(upTo limit: Int) -> InputSpan? { takeFresh() }
    /// The call's chunk size: how many inputs a worker runs as one task.
    var inputsPerChunk: Int { 1 }
    /// Whether the job still takes work (a failed map takes none).
    var wantsWork: Bool { !finished }
    /// Encodes the inputs of `span` into `writer`.
    func encode(_ span: InputSpan, into writer: inout WireWriter) throws {}
    /// Whether `encode` writes the inputs as raw plain numbers (`PlainTransport`): then they
    /// cannot mention a shared segment, and the engine encodes them without collecting any.
    var encodesPlainInputs: Bool { false }
    /// The outputs of every input of `span` arrived.
    func deliver(_ span: InputSpan, outputs reader: inout WireReader) throws {}
    /// The input at `index` failed for good (`span` is it alone).
    func failInput(_ index: Int, error: any Error) {}
    /// The job ends with `error` (the pool broke, was terminated, or the call was cancelled).
    func failAll(_ error: any Error) { finished = true }
    /// `span` is now run as the pieces in `pieces` (a partition of it).
    func split(_ span: InputSpan, into pieces: [InputSpan]) {}
    /// Reports what arrived in this engine round (a map fails with its lowest failed input).
    func settle() {}

    // MARK: for the engine

    /// Asks the engine to cancel this job (any thread).
    func requestCancel() { cancelFlag.store(true, ordering: .releasing) }
    var cancelRequested: Bool { cancelFlag.load(ordering: .acquiring) }

    /// Whether a span can be taken at `now`.
    func hasSpan(now: UInt64) -> Bool {
        guard wantsWork else { return false }
        if !again.isEmpty && again.contains(where: { $0.notBefore <= now }) { return true }
        return hasFreshInput
    }

    /// The next span to send: a span to run again if one is due, else a fresh chunk.
    func takeSpan(now: UInt64) -> InputSpan? {
        guard wantsWork else { return nil }
        if let position = again.firstIndex(where: { $0.notBefore <= now }) {
            return again.remove(at: position).span
        }
        return takeFresh()
    }

    /// `takeSpan(now:)` for a worker that schedules inputs itself: up to `limit` fresh inputs.
    func takeSpan(now: UInt64, upTo limit: Int) -> InputSpan? {
        guard wantsWork else { return nil }
        if let position = again.firstIndex(where: { $0.notBefore <= now }) {
            return again.remove(at: position).span
        }
        return takeFresh(upTo: limit)
    }

    /// When the earliest waiting retry becomes due (nil: none waits).
    var nextRetryTime: UInt64? { again.lazy.map(\.notBefore).min() }

    /// `span` runs again (not before `notBefore`), ahead of fresh inputs.
    func runAgain(_ span: InputSpan, notBefore: UInt64 = 0) {
        guard wantsWork, span.count > 0 else { return }
        let position = again.firstIndex(where: { $0.span.first > span.first }) ?? again.endIndex
        again.insert((span, notBefore), at: position)
    }

    /// The input at `index` failed this way: runs it again if the retry policy says so,
    /// otherwise fails it (with `RetriesExhausted` after more than one attempt).
    func inputFailed(_ index: Int, error: any Error, as failure: RetryPolicy.Failure?, now: UInt64) {
        guard wantsWork else { return }
        let attempt = (history[index]?.count ?? 0) + 1
        if let failure, options.retry.retries(failure, error: error, after: attempt) {
            history[index, default: []].append(error)
            runAgain(InputSpan(first: index, count: 1), notBefore: now &+ options.retry.delayNanoseconds(after: attempt))
            return
        }
        if let earlier = history.removeValue(forKey: index) {
            failInput(
                index,
                error: RetriesExhausted(inputIndex: index, errors: earlier + [error]))
        } else {
            failInput(index, error: error)
        }
    }

    /// A span succeeded: its inputs need no retry history any more.
    func forgetHistory(_ span: InputSpan) {
        guard !history.isEmpty else { return }
        for index in span.first..<span.end { history.removeValue(forKey: index) }
    }
}

/// Writes a span of inputs held by `owner` (an array, a slice or a job: it keeps them alive and
/// unchanged): when they travel as the library writes plain numbers (`plain`, from
/// `PlainTransport`) as raw bytes — a large span as a reference to them, which the worker reads
/// where they are (`WireWriter.defersLargeBlocks`) — else with the function's own encoding.
func encodeInputs<F: ParallelFunction>(
    _: F.Type, _ inputs: UnsafeBufferPointer<F.Input>, owner: Any, plain: Bool, into writer: inout WireWriter
) throws {
    if plain {
        writer._appendRawElements(F.Input.self, count: inputs.count, block: UnsafeRawBufferPointer(inputs), owner: owner)
    } else {
        try F._encodeInputs(inputs, into: &writer)
    }
}

/// `map`, `starmap`, `apply` and their async forms: all inputs known up front, results in
/// input order. The first input that fails for good fails the whole call at once (the lowest
/// of those that failed in the same engine round); work still running for it is abandoned.
final class BatchJob<F: ParallelFunction>: Job, @unchecked Sendable {
    private let inputs: [F.Input]
    /// `inputs`' elements (the array is the job's, never changed): spans are encoded from
    /// there without an operation on the generic array (a run-time metadata lookup each).
    private let inputsStart: UnsafePointer<F.Input>?
    /// Inputs the caller writes after submitting (`producing:`), on its own thread, while the
    /// engine sends those it has published (`publish`): the first `available` are written.
    private let written: UnsafeMutablePointer<F.Input>?
    private let available: Atomic<Int>
    /// Inputs computed from their position (an integer range or stride), not stored.
    private let progression: _IntegerProgression?
    /// Inputs read from the caller's collection by position as each span goes out, not stored.
    private let collection: _CollectionInputs?
    private let count: Int
    private let chunkSize: Int
    /// Whether the inputs travel as the library writes plain numbers (`PlainTransport`).
    private let plainInputs: Bool
    @exclusivity(unchecked) private var nextStart = 0
    @exclusivity(unchecked) private var resolved = 0
    /// Where results go, by input position: for plain numbers (`PlainTransport`) the array
    /// the call returns, written in place (its elements need no initialization, so it is made
    /// whole when the first span's results arrive and filled span by span: no copy at the
    /// end); for other types a buffer moved into the array once every result is there.
    ///
    /// The array is made on the engine's thread, not the caller's: from the engine thread's
    /// own malloc arena, whose freed top is kept for the next call's array, where the
    /// caller's (the main arena, given back to the kernel past glibc's trim threshold) made
    /// each map's array fresh pages — a page fault per 4 KiB on the engine's thread
    /// (`Benchmarks/engine-ab.md`, session 11).
    @exclusivity(unchecked) private var rawResults: [F.Output]?
    /// `rawResults`' elements (the array is made whole once and never grows, and only this job
    /// holds it until it ends): each span's results are decoded there without an operation on
    /// the generic array, each of which looks up its type's metadata at run time (this code is
    /// not specialised: a job's methods are called through its class).
    @exclusivity(unchecked) private var rawStart: UnsafeMutablePointer<F.Output>?
    private let plainOutputs: Bool
    private let results: UnsafeMutablePointer<F.Output>?
    /// Spans whose results are initialized in `results`.
    @exclusivity(unchecked) private var filled: [InputSpan] = []
    @exclusivity(unchecked) private var failure: (index: Int, error: any Error)?
    private let finish: (Result<[F.Output], any Error>) -> Void

    init(
        function: FunctionDefinition, options: TaskOptions, inputs: [F.Input], producing: Int? = nil,
        progression: _IntegerProgression? = nil, collection: _CollectionInputs? = nil, chunkSize: Int,
        finish: @escaping (Result<[F.Output], any Error>) -> Void
    ) {
        self.inputs = inputs
        inputsStart = inputs.withUnsafeBufferPointer { $0.baseAddress }
        self.progression = progression
        self.collection = collection
        count = progression?.count ?? collection?.count ?? producing ?? inputs.count
        written = producing.map { InputBufferCache.take(F.Input.self, capacity: $0) }
        available = Atomic(producing == nil ? count : 0)
        self.chunkSize = chunkSize
        plainInputs = PlainTransport.of(F.self).inputs
        plainOutputs = PlainTransport.of(F.self).outputs
        if plainOutputs {
            results = nil
        } else {
            results = .allocate(capacity: max(count, 1))
        }
        self.finish = finish
        super.init(function: function, options: options)
        if count == 0 {
            finished = true
            finish(.success([]))
        }
    }

    deinit {
        if let results {
            for span in filled { (results + span.first).deinitialize(count: span.count) }
            results.deallocate()
        }
        if let written {
            written.deinitialize(count: available.load(ordering: .acquiring))
            InputBufferCache.give(written, capacity: count)
        }
    }

    /// Where the caller of a `producing:` job writes its inputs, in order (nil otherwise).
    var producedInputs: UnsafeMutablePointer<F.Input>? { written }

    /// The first `count` produced inputs are written (the caller's thread; wake the engine).
    /// Sequentially consistent: the pool's thread announces its sleep, then looks at
    /// `available` (`PoolEngine.loop`); the caller stores here, then looks whether it sleeps.
    func publish(_ count: Int) { available.store(count, ordering: .sequentiallyConsistent) }

    override var wantsWork: Bool { !finished && failure == nil }
    override var hasFreshInput: Bool { nextStart < available.load(ordering: .acquiring) }
    override var awaitsInput: Bool {
        written != nil && !finished && failure == nil && available.load(ordering: .acquiring) < count
    }

    override func takeFresh() -> InputSpan? { takeFresh(upTo: chunkSize) }

    override var inputsPerChunk: Int { chunkSize }

    override func takeFresh(upTo limit: Int) -> InputSpan? {
        let ready = available.load(ordering: .acquiring)
        guard nextStart < ready else { return nil }
        let span = InputSpan(first: nextStart, count: min(max(limit, chunkSize), ready - nextStart))
        nextStart = span.end
        return span
    }

    override var encodesPlainInputs: Bool { plainInputs }

    override func encode(_ span: InputSpan, into writer: inout WireWriter) throws {
        if let progression { return progression.encode(span, into: &writer) }
        if let collection { return try collection.encode(span.first, span.count, plainInputs, &writer) }
        if let written {
            // The buffer is the job's until it ends: the job keeps it for a reference.
            let span = UnsafeBufferPointer(start: written + span.first, count: span.count)
            return try encodeInputs(F.self, span, owner: self, plain: plainInputs, into: &writer)
        }
        // The job holds the inputs for as long as it lives: it is their owner for a reference.
        precondition(span.first >= 0 && span.end <= count, "a span beyond the job's inputs")
        let slice = UnsafeBufferPointer(start: inputsStart.map { $0 + span.first }, count: span.count)
        try encodeInputs(F.self, slice, owner: self, plain: plainInputs, into: &writer)
    }

    /// Sees each span's encoded outputs once they decoded correctly (the checkpoint journal).
    var onDeliver: ((InputSpan, UnsafeRawBufferPointer) throws -> Void)?

    override func deliver(_ span: InputSpan, outputs reader: inout WireReader) throws {
        guard !finished else { return }
        let encoded = UnsafeRawBufferPointer(rebasing: reader.buffer[reader.offset...])
        var outputs: [F.Output]?
        let delivered: Int
        if plainOutputs {
            // Plain numbers: straight from the message into their place (no array between).
            let start = rawStart ?? makeRawResults()
            delivered = try reader._decodeRawArray(F.Output.self, into: start + span.first, expected: span.count)
        } else {
            let decoded = try F._decodeOutputs(from: &reader)
            delivered = decoded.count
            outputs = decoded
        }
        guard delivered == span.count else {
            throw PoolError(.protocolViolation, "a worker returned \(delivered) results for \(span.count) inputs")
        }
        if let onDeliver {
            let region = UnsafeRawBufferPointer(rebasing: encoded[..<(encoded.count - reader.remaining)])
            if WireRemoteRanges.intersects(region) {
                // Large arrays of it are still in the worker's memory (read only by decoding):
                // the outputs as they decoded, encoded again.
                var record = WireWriter(capacity: 64)
                if let rawResults {
                    rawResults.withUnsafeBufferPointer { all in
                        let block = UnsafeRawBufferPointer(UnsafeBufferPointer(rebasing: all[span.first..<span.end]))
                        record._appendRawElements(F.Output.self, count: span.count, block: block, owner: rawResults)
                    }
                } else if let outputs {
                    try outputs.withUnsafeBufferPointer { try F._encodeOutputs($0, into: &record) }
                }
                try record.bytes.withUnsafeBytes { try onDeliver(span, $0) }
            } else {
                try onDeliver(span, region)
            }
        }
        if let results, let outputs {
            outputs.withUnsafeBufferPointer { source in
                (results + span.first).initialize(from: source.baseAddress!, count: span.count)
            }
            filled.append(span)
        }
        resolved += span.count
        progress?.advance(done: span.count)
        guard resolved == count, failure == nil else { return }
        finished = true
        filled.removeAll()
        if let all = rawResults {
            rawResults = nil
            rawStart = nil
            return finish(.success(all))
        }
        let all = [F.Output](unsafeUninitializedCapacity: count) { buffer, initialized in
            buffer.baseAddress!.moveInitialize(from: results!, count: count)
            initialized = count
        }
        finish(.success(all))
    }

    /// Makes the array of plain results, whole (its elements need no initialization), and
    /// returns where its elements start.
    private func makeRawResults() -> UnsafeMutablePointer<F.Output> {
        let count = count
        var all = [F.Output](unsafeUninitializedCapacity: count) { _, initialized in initialized = count }
        let start = all.withUnsafeMutableBufferPointer { $0.baseAddress! }
        rawResults = all
        rawStart = start
        return start
    }

    override func failInput(_ index: Int, error: any Error) {
        guard !finished else { return }
        progress?.advance(failed: 1)
        if failure == nil || index < failure!.index { failure = (index, error) }
    }

    override func settle() {
        guard !finished, let failure else { return }
        finished = true
        finish(.failure(failure.error))
    }

    override func failAll(_ error: any Error) {
        guard !finished else { return }
        finished = true
        finish(.failure(error))
    }
}

/// What waiting for a stream's next piece ends with.
enum StreamTake<Output> {
    case piece(StreamPiece<Output>)
    /// Every input's result was taken.
    case ended
    /// The deadline passed first.
    case timedOut
}

/// What a stream hands its consumer: the outputs of consecutive inputs, or the failure of
/// `count` consecutive inputs.
enum StreamPiece<Output> {
    case outputs([Output])
    case failure(any Error, count: Int)

    var count: Int {
        switch self {
        case .outputs(let outputs): return outputs.count
        case .failure(_, let count): return count
        }
    }
}

/// Inputs of a stream whose sequence the pool's thread may not read (not `Sendable`: a
/// `lazy.map`, …): the thread that iterates the results reads it (`ResultStream.feed`) and
/// hands the inputs over here, at most the stream's window ahead of what it consumed.
final class FedInputs<Input>: @unchecked Sendable {
    private let lock = ConditionLock()
    private var items: [Input] = []
    private var head = 0
    private var ended = false
    /// How many inputs were handed over in all (the feeding thread's).
    private(set) var handed = 0

    /// Hands `inputs` over; `ended`: the sequence has no more.
    func push(_ inputs: [Input], ended: Bool) {
        handed += inputs.count
        lock.withLock {
            items.append(contentsOf: inputs)
            if ended { self.ended = true }
        }
    }

    /// Whether inputs wait here, or the end does.
    var isReady: Bool { lock.withLock { head < items.count || ended } }

    /// Up to `limit` inputs, and whether the sequence has ended with them.
    func pop(upTo limit: Int) -> (inputs: [Input], drained: Bool) {
        lock.withLock {
            let end = min(items.count, head + limit)
            let taken = Array(items[head..<end])
            head = end
            if head == items.count {
                items.removeAll(keepingCapacity: true)
                head = 0
            }
            return (taken, ended && head == items.count)
        }
    }
}

/// `imap` and `imapUnordered`: inputs pulled lazily from the caller's sequence, at most
/// `window` inputs ahead of the consumer (back-pressure), results handed over as they come.
/// The pool's thread pulls a `Sendable` sequence (`source`); any other is fed by the
/// consumer's thread (`fed`).
final class StreamJob<F: ParallelFunction>: Job, @unchecked Sendable {
    private var source: AnyIterator<F.Input>
    let fed: FedInputs<F.Input>?
    private let chunkSize: Int
    private let ordered: Bool
    private let window: Int
    private var sourceDone = false
    /// The pool was closed: the inputs run ahead of the consumer without bound, so that `join`
    /// does not wait for it (Python's `imap` reads them all at once) — pulled by the pool's
    /// thread, or fed (by the consumer or `Pool.join()`, `feedRoom`).
    private let windowLifted = Atomic<Bool>(false)
    private var pulled = 0
    private var unresolved = 0
    /// Inputs of the spans not yet resolved, keyed by each span's first position.
    private var held: [Int: ArraySlice<F.Input>] = [:]
    /// Whether the inputs travel as the library writes plain numbers (`PlainTransport`).
    private let plainInputs = PlainTransport.of(F.self).inputs

    // Shared with the consumer, under `lock`.
    let lock = ConditionLock()
    private var ready: [Int: StreamPiece<F.Output>] = [:]
    private var arrivalOrder: [Int] = []
    private var arrivalHead = 0
    private var consumed = 0
    private var total: Int? // known once the source is exhausted
    private var fatal: (any Error)?
    private var nextToConsume = 0
    private let wake: @Sendable () -> Void

    init(
        function: FunctionDefinition, options: TaskOptions, source: AnyIterator<F.Input>?, chunkSize: Int, ordered: Bool,
        window: Int, wake: @escaping @Sendable () -> Void
    ) {
        self.source = source ?? AnyIterator { nil }
        self.fed = source == nil ? FedInputs() : nil
        self.chunkSize = chunkSize
        self.ordered = ordered
        self.window = window
        self.wake = wake
        super.init(function: function, options: options)
    }

    override var hasFreshInput: Bool {
        if finished || sourceDone { return false }
        if let fed, !fed.isReady { return false }
        if windowLifted.load(ordering: .relaxed) { return true }
        let consumedNow = lock.withLock { consumed }
        return pulled - consumedNow < window
    }

    override func poolClosed() { windowLifted.store(true, ordering: .relaxed) }

    /// How many inputs a feed hands over at most once the window is lifted.
    static var liftedFeed: Int { 1 << 16 }

    /// Tells the engine that inputs were fed.
    func wakeEngine() { wake() }

    /// How many more inputs the consumer's thread may hand over now (`fed`).
    var feedRoom: Int {
        guard let fed else { return 0 }
        if windowLifted.load(ordering: .relaxed) { return Self.liftedFeed }
        return window - (fed.handed - lock.withLock { consumed })
    }

    override func takeFresh() -> InputSpan? { takeFresh(upTo: chunkSize) }

    override var inputsPerChunk: Int { chunkSize }

    override func takeFresh(upTo limit: Int) -> InputSpan? {
        guard hasFreshInput else { return nil }
        // Never past the window: the consumer's back-pressure holds for bundles too.
        let room = windowLifted.load(ordering: .relaxed) ? Int.max : window - (pulled - lock.withLock { consumed })
        let wanted = max(chunkSize, min(limit, room))
        var inputs: [F.Input] = []
        if let fed {
            let (taken, drained) = fed.pop(upTo: wanted)
            inputs = taken
            if drained { markSourceDone(total: pulled + inputs.count) }
        } else {
            // Not more than a source that ends early needs: the chunk size may be large.
            inputs.reserveCapacity(min(wanted, 1 << 16))
            while inputs.count < wanted, let next = source.next() { inputs.append(next) }
            if inputs.count < wanted { markSourceDone(total: pulled + inputs.count) }
        }
        guard !inputs.isEmpty else {
            finishIfResolved()
            return nil
        }
        let span = InputSpan(first: pulled, count: inputs.count)
        held[span.first] = inputs[...]
        pulled += inputs.count
        unresolved += inputs.count
        return span
    }

    private func markSourceDone(total count: Int) {
        sourceDone = true
        progress?.setTotal(count)
        lock.withLock {
            total = count
            lock.broadcast()
        }
    }

    private func finishIfResolved() {
        if sourceDone && unresolved == 0 { finished = true }
    }

    override var encodesPlainInputs: Bool { plainInputs }

    override func encode(_ span: InputSpan, into writer: inout WireWriter) throws {
        guard let inputs = held[span.first], inputs.count == span.count else {
            throw PoolError(.protocolViolation, "the stream holds no inputs \(span.first)..<\(span.end)")
        }
        try inputs.withUnsafeBufferPointer {
            try encodeInputs(F.self, $0, owner: inputs, plain: plainInputs, into: &writer)
        }
    }

    override func split(_ span: InputSpan, into pieces: [InputSpan]) {
        guard let inputs = held.removeValue(forKey: span.first) else { return }
        for piece in pieces {
            held[piece.first] = inputs[(inputs.startIndex + piece.first - span.first)...].prefix(piece.count)
        }
    }

    override func deliver(_ span: InputSpan, outputs reader: inout WireReader) throws {
        guard !finished else { return }
        let outputs = try F._decodeOutputs(from: &reader)
        guard outputs.count == span.count else {
            throw PoolError(.protocolViolation, "a worker returned \(outputs.count) results for \(span.count) inputs")
        }
        held.removeValue(forKey: span.first)
        progress?.advance(done: span.count)
        store(span.first, .outputs(outputs))
    }

    override func failInput(_ index: Int, error: any Error) {
        guard !finished else { return }
        held.removeValue(forKey: index)
        progress?.advance(failed: 1)
        store(index, .failure(error, count: 1))
    }

    override func failAll(_ error: any Error) {
        guard !finished else { return }
        held.removeAll()
        lock.withLock {
            fatal = error
            lock.broadcast()
        }
        finished = true
    }

    private func store(_ first: Int, _ piece: StreamPiece<F.Output>) {
        unresolved -= piece.count
        lock.withLock {
            ready[first] = piece
            if !ordered { arrivalOrder.append(first) }
            lock.broadcast()
        }
        finishIfResolved()
    }

    /// The next piece for the consumer, waiting for it; nil at the end.
    func take() -> StreamPiece<F.Output>? {
        if case .piece(let piece) = take(until: nil) { return piece }
        return nil
    }

    /// `take()` waiting at most until `deadline` (monotonic ns; nil: for ever).
    func take(until deadline: UInt64?) -> StreamTake<F.Output> {
        lock.withLock {
            while true {
                if let fatal { return .piece(.failure(fatal, count: 0)) }
                if let total, nextToConsume >= total { return .ended }
                let key: Int?
                if ordered {
                    key = ready[nextToConsume] != nil ? nextToConsume : nil
                } else {
                    key = arrivalHead < arrivalOrder.count ? arrivalOrder[arrivalHead] : nil
                }
                if let key, let piece = ready.removeValue(forKey: key) {
                    if !ordered {
                        arrivalHead += 1
                        if arrivalHead > 1024 && arrivalHead * 2 > arrivalOrder.count {
                            arrivalOrder.removeFirst(arrivalHead)
                            arrivalHead = 0
                        }
                    }
                    nextToConsume += piece.count
                    consumed += piece.count
                    wake()
                    return .piece(piece)
                }
                if !lock.wait(until: deadline), let deadline, monotonicNanoseconds() >= deadline { return .timedOut }
            }
        }
    }
}
