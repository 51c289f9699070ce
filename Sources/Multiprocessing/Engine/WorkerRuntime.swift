/// What a worker does with each message, whatever carries the messages (shared-memory
/// rings locally, MPI messages across ranks). Synchronous by design: no `Task`, no
/// Dispatch — a forked child must not depend on runtime threads.
final class WorkerRuntime {
    enum Action {
        /// Send `frame` (a complete frame, header included).
        case reply
        /// Nothing to send.
        case none
        /// Acknowledge with `frame` and leave the serve loop.
        case stop
    }

    private var functions: [UInt32: any ParallelFunction] = [:]
    private var broken: [UInt32: String] = [:]
    /// Set when the pool's initializer (task 0) threw: every later task fails with it.
    private var initializerFailure: String?
    /// The reply built by the last `handle`.
    var frame = WireWriter(capacity: 64 << 10)
    /// Whether `frame` includes the 8-byte frame header (ring transports) or not (MPI).
    let framed: Bool

    /// Answers for shared segments a message mentions that this process does not map yet.
    private let attachments: (SegmentID) throws -> Int32?

    init(framed: Bool, attachments: @escaping (SegmentID) throws -> Int32? = { _ in nil }) {
        self.framed = framed
        self.attachments = attachments
    }

    func handle(_ message: UnsafeRawBufferPointer) -> Action {
        var reader = WireReader(message)
        guard let kind = (try? reader.read(UInt8.self)).flatMap(MasterMessage.init(rawValue:)) else {
            return .none  // the master never sends this; ignore rather than crash
        }
        switch kind {
        case .define:
            define(&reader)
            return .none
        case .undefine:
            if let id = try? reader.read(UInt32.self) {
                functions.removeValue(forKey: id)
                broken.removeValue(forKey: id)
            }
            return .none
        case .chunk:
            runChunk(&reader)
            return .reply
        case .stop:
            begin()
            frame.write(WorkerMessage.stopped.rawValue)
            finish()
            return .stop
        }
    }

    private func begin() {
        if framed { Frame.begin(&frame) } else { frame.bytes.removeAll(keepingCapacity: true) }
    }

    private func finish() {
        if framed { Frame.finish(&frame) }
    }

    private func define(_ reader: inout WireReader) {
        guard let id = try? reader.read(UInt32.self) else { return }
        do {
            let name = try reader.read(String.self)
            guard let type = FunctionIdentity.resolve(name) else {
                broken[id] = "the worker cannot find the function type \(name) by name; declare it internal or public at file scope"
                return
            }
            var body = WireReader(try reader.readLengthPrefixed())
            functions[id] = try AttachmentContext.receiving(attachments) { try Self.decode(type, &body) }
        } catch {
            broken[id] = "the worker cannot decode the function value: \(error)"
        }
    }

    private static func decode<F: ParallelFunction>(_: F.Type, _ reader: inout WireReader) throws -> any ParallelFunction {
        try reader.decode(F.self)
    }

    private func runChunk(_ reader: inout WireReader) {
        begin()
        defer { finish() }
        guard let taskID = try? reader.read(UInt64.self), let id = try? reader.read(UInt32.self) else {
            fail(task: 0, index: 0, kind: .machinery, type: "PoolError", message: "a chunk message was truncated")
            return
        }
        if let initializerFailure {
            fail(task: taskID, index: 0, kind: .initializer, type: "PoolError", message: initializerFailure)
            return
        }
        guard let function = functions[id] else {
            fail(task: taskID, index: 0, kind: .machinery, type: "PoolError",
                 message: broken[id] ?? "the worker has no function \(id)")
            return
        }
        frame.write(WorkerMessage.result.rawValue)
        frame.write(taskID)
        do {
            if let (index, error) = try AttachmentContext.receiving(attachments, { try function._runChunk(&reader, into: &frame) }) {
                begin()
                if taskID == 0 {
                    initializerFailure = "the pool's initializer threw \(String(reflecting: type(of: error))): \(error)"
                }
                fail(task: taskID, index: index, kind: .threw, type: String(reflecting: type(of: error)),
                     message: String(describing: error))
            }
        } catch {
            begin()
            fail(task: taskID, index: 0, kind: .machinery, type: String(reflecting: type(of: error)),
                 message: "cannot transport inputs or outputs of \(String(reflecting: type(of: function))): \(error)")
        }
    }

    private func fail(task: UInt64, index: Int, kind: FailureKind, type: String, message: String) {
        frame.write(WorkerMessage.failure.rawValue)
        frame.write(task)
        frame.write(Int64(index))
        frame.write(kind.rawValue)
        frame.write(type)
        frame.write(message)
    }
}
