/// What a worker does with each message, whatever carries the messages (shared-memory
/// rings locally, MPI messages across ranks). Synchronous by design: no `Task`, no
/// Dispatch — a forked child must not depend on runtime threads.
///
/// Replies are written into `reply` after `MessageBuffer.headroom` bytes; the transport
/// fills the headroom in (or skips it) and sends.
final class WorkerRuntime {
    /// Set (before any task runs) in a process that serves a pool: a pool worker, an MPI
    /// worker rank. A pool cannot be created there (`PoolError.nested`).
    nonisolated(unsafe) static var servesThisProcess = false

    enum Action {
        /// Send `reply`.
        case reply
        /// Nothing to send.
        case none
        /// Send `reply` (the acknowledgement) and leave the serve loop.
        case stop
    }

    /// One function this worker was sent (`define`): its value as received, decoded when a
    /// chunk first uses it (a value whose decoding crashes the worker is then charged to that
    /// chunk's first input).
    ///
    /// Classes in an array, found by id (a worker holds at most a pool's `FunctionCache`
    /// capacity of them): copying, destroying or storing one is a reference count. Tuples (and
    /// structs holding an existential) in optionals and dictionaries made the runtime build
    /// their types' metadata from mangled names at the first task, and a dictionary keyed by
    /// id its storage's (its code shared with other dictionaries', taking the types as
    /// arguments) — in a freshly forked worker ~30 page faults (the runtime's code and tables,
    /// not mapped in the child yet) on the first `apply`'s path (`perf`, pool start-up).
    private final class Function {
        let id: UInt32
        let typeName: String
        /// The value's encoding, until decoded.
        var bytes: [UInt8]
        var decoded: Decoded?

        init(id: UInt32, typeName: String, bytes: [UInt8]) {
            self.id = id
            self.typeName = typeName
            self.bytes = bytes
        }
    }
    /// A decoded function value, and whether its inputs and outputs travel as plain numbers
    /// (`PlainTransport`: its chunks then run through `_runPlainChunk`).
    private final class Decoded {
        let value: any ParallelFunction
        let plain: Bool

        init(value: any ParallelFunction, plain: Bool) {
            self.value = value
            self.plain = plain
        }
    }
    private var functions: [Function] = []

    private func function(withID id: UInt32) -> Function? {
        for function in functions where function.id == id { return function }
        return nil
    }

    private func forget(_ id: UInt32) {
        functions.removeAll { $0.id == id }
    }
    private var broken: [UInt32: String] = [:]
    /// Set when the pool's initializer (task 0) threw: every later task fails with it.
    private var initializerFailure: String?
    /// The reply built by the last `handle`.
    var reply = WireWriter(capacity: 64 << 10)
    /// What large chunks of plain numbers are read into and written from (made at the first).
    private lazy var plainBuffers = _PlainChunkBuffers()
    /// Shared with the engine: which chunk and input this worker runs (`WorkerProgress`).
    private let progress: WorkerProgress

    /// Answers for shared segments a message mentions that this process does not map yet.
    private let attachments: (SegmentID) throws -> Int32?
    /// The same, as the decode context each chunk runs in (made once).
    private let receiver: AttachmentContext.Receiver

    /// Whether `progress` is private to this runtime (freed with it).
    private let ownsProgress: Bool

    init(progress: WorkerProgress? = nil, attachments: @escaping (SegmentID) throws -> Int32? = { _ in nil }) {
        self.progress = progress ?? .unshared()
        self.ownsProgress = progress == nil
        self.attachments = attachments
        self.receiver = AttachmentContext.Receiver(attachments)
    }

    deinit {
        if ownsProgress { UnsafeMutableRawPointer(progress.claim).deallocate() }
    }

    /// Drops every function value this worker holds (and what they hold: served objects'
    /// handles, shared segments), as before it exits.
    func forgetFunctions() {
        functions.removeAll()
        broken.removeAll()
    }

    /// Handles one message (without headroom).
    func handle(_ message: UnsafeRawBufferPointer) -> Action {
        var reader = WireReader(message)
        guard let kind = (try? reader.read(UInt8.self)).flatMap(MasterMessage.init(rawValue:)) else {
            return .none // the master never sends this; ignore rather than crash
        }
        switch kind {
        case .define:
            receiveDefinition(&reader)
            return .none
        case .undefine:
            if let id = try? reader.read(UInt32.self) {
                forget(id)
                broken.removeValue(forKey: id)
            }
            return .none
        case .chunk:
            // A chunk the engine withdrew (it runs elsewhere) is skipped without a word.
            guard progress.takeChunk() else { return .none }
            runChunk(&reader)
            return .reply
        case .stop:
            WorkerCodec.stopped(into: &reply)
            return .stop
        case .release:
            if let count = try? reader.read(UInt32.self) {
                for _ in 0..<count {
                    guard let high = try? reader.read(UInt64.self), let low = try? reader.read(UInt64.self) else { break }
                    SegmentRegistry.release(SegmentID(high: high, low: low))
                }
            }
            return .none
        case .objectReply:
            return .none // an answer nobody waits for any more (its task ended)
        case .bundle:
            return .none // only a backend whose workers schedule inputs sends bundles (`NodeScheduler`)
        }
    }

    private func receiveDefinition(_ reader: inout WireReader) {
        guard let id = try? reader.read(UInt32.self) else { return }
        forget(id)
        broken.removeValue(forKey: id)
        do {
            let name = try reader.read(String.self)
            functions.append(Function(id: id, typeName: name, bytes: Array(try reader.readLengthPrefixed())))
        } catch {
            broken[id] = "the worker cannot decode the function value: \(error)"
        }
    }

    /// Function `id`, decoded.
    private func function(_ id: UInt32) -> Result<Decoded, PoolError> {
        if let reason = broken[id] { return .failure(PoolError(.encoding, reason)) }
        guard let function = function(withID: id) else {
            return .failure(PoolError(.encoding, "the worker has no function \(id)"))
        }
        if let decoded = function.decoded { return .success(decoded) }
        let name = function.typeName
        guard let type = FunctionIdentity.resolve(name) else {
            forget(id)
            broken[id] = "the worker cannot find the function type \(FunctionIdentity.readableName(name)) by name; declare it internal or public at file scope"
            return .failure(PoolError(.unresolvableFunction, broken[id]!))
        }
        do {
            let decoded = try function.bytes.withUnsafeBytes { raw in
                var body = WireReader(raw)
                return try AttachmentContext.receiving(attachments) { try Self.decode(type, &body) }
            }
            let transport = Swift.type(of: decoded)._plainTransport()
            let ready = Decoded(value: decoded, plain: transport.inputs && transport.outputs)
            function.decoded = ready
            function.bytes = []
            return .success(ready)
        } catch {
            forget(id)
            broken[id] = "the worker cannot decode the function value: \(error)"
            return .failure(PoolError(.encoding, broken[id]!))
        }
    }

    private static func decode<F: ParallelFunction>(_: F.Type, _ reader: inout WireReader) throws -> any ParallelFunction {
        try reader.decode(F.self)
    }

    private func runChunk(_ reader: inout WireReader) {
        guard let taskID = try? reader.read(UInt64.self), let id = try? reader.read(UInt32.self) else {
            fail(task: 0, kind: .machinery, type: "PoolError", message: "a chunk message was truncated")
            return
        }
        if let initializerFailure {
            fail(task: taskID, kind: .initializer, type: "PoolError", message: initializerFailure)
            return
        }
        let function: Decoded
        switch self.function(id) {
        case .success(let found): function = found
        case .failure(let error):
            fail(task: taskID, kind: .machinery, type: "PoolError", message: error.message)
            return
        }
        WorkerCodec.beginResult(task: taskID, into: &reply)
        do {
            try receiver.run {
                let failed = { (writer: inout WireWriter, index: Int, error: any Error) in
                    let type = String(reflecting: Swift.type(of: error))
                    if taskID == 0 {
                        self.initializerFailure = "the pool's initializer threw \(type): \(error)"
                    }
                    // A result that could not be encoded (`_runChunk`) is the pool's failure, not the task's.
                    let unencodable = (error as? PoolError).flatMap { $0.code == .encoding ? $0 : nil }
                    WorkerCodec.beginFailure(
                        task: taskID, index: index, kind: unencodable == nil ? .threw : .resultNotEncodable, typeName: type,
                        message: unencodable?.message ?? String(describing: error), into: &writer)
                }
                if function.plain,
                    try function.value._runPlainChunk(
                        &reader, into: &reply, buffers: plainBuffers, progress: progress.input, failed: failed)
                {
                    return
                }
                try function.value._runChunk(&reader, into: &reply, progress: progress.input, failed: failed)
            }
        } catch {
            fail(
                task: taskID, kind: .machinery, type: String(reflecting: type(of: error)),
                message: "cannot transport inputs or outputs of \(String(reflecting: type(of: function.value))): \(error)")
        }
    }

    /// The whole chunk failed (nothing ran): reported at position 0 with no outputs.
    private func fail(task: UInt64, kind: FailureKind, type: String, message: String) {
        WorkerCodec.beginFailure(task: task, index: 0, kind: kind, typeName: type, message: message, into: &reply)
        _VoidTransport.encode(count: 0, into: &reply)
    }
}
