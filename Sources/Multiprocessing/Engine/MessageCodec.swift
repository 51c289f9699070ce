import Logging

/// The messages between the engine and its workers, on every backend, and their encoding —
/// the one codec both sides share (the engine in `PoolEngine`, workers in `WorkerRuntime`).
///
/// Engine → worker: `define` (function id, type name, encoded function value — once per
/// function and worker, not per chunk), `undefine`, `chunk` (task id, function id, encoded
/// inputs), `stop`, `release` (shared segments the parent dropped: the worker unmaps them
/// once nothing it holds mentions them). Worker → engine: `result` (task id, encoded outputs), `failure` (task id,
/// position in the chunk, what failed, type name, description, then the encoded outputs of
/// the inputs before that position), `stopped`, `log` (a swift-log record, `WorkerLogging`).
///
/// Every message is written after `MessageBuffer.headroom` reserved bytes: a transport that
/// needs a header (the local rings' length prefix, `Frame`) fills them in place, one that
/// does not (MPI) sends what follows. Neither side knows which.
enum MasterMessage: UInt8 {
    case define = 1
    case undefine = 2
    case chunk = 3
    case stop = 4
    case release = 5
    /// An answer of rank 0's object service for a task in a worker rank's local worker,
    /// relayed by the rank (`ObjectRequestRelay`); read by the task's object call, never by
    /// the serve loop.
    case objectReply = 6
    /// Inputs for a worker that schedules them itself on its own workers (an MPI worker rank,
    /// `NodeScheduler`): task id, function id, the call's chunk size (`UInt32`) and time limit
    /// per input (`UInt64` ns, 0: none), then the inputs. Answered with one `result` for them
    /// all, or with `outcomes` when some failed.
    case bundle = 7
}

enum WorkerMessage: UInt8 {
    case result = 1
    case failure = 2
    case stopped = 3
    case log = 4
    /// A task's request to rank 0's object service, from a worker rank's local worker to its
    /// rank, which forwards it (`RankRelay`); never reaches the engine.
    case objectRequest = 5
    /// A bundle's answer input by input (`Outcomes`), when some of its inputs failed.
    case outcomes = 6
}

/// Why (part of) a chunk failed in a worker.
enum FailureKind: UInt8 {
    /// The function threw: the caller gets `RemoteError`.
    case threw = 0
    /// The function could not be resolved or decoded, or inputs/outputs could not be
    /// decoded/encoded: the caller gets `PoolError`.
    case machinery = 1
    /// The pool's initializer threw in this worker: the caller gets `PoolError.startFailed`.
    case initializer = 2
    /// The input at the failure's index ran, but its result cannot be encoded: that input
    /// gets `PoolError(.encoding)`; the results before it came, the inputs after it run again.
    case resultNotEncodable = 3
}

/// A reusable message buffer with room for a transport header in front.
enum MessageBuffer {
    /// Bytes reserved in front of every message (the local rings' length prefix fits).
    static let headroom = 8

    /// Empties `writer` (its deferred blocks too, `WireWriter.defersLargeBlocks`) and
    /// reserves the headroom.
    static func begin(_ writer: inout WireWriter) {
        writer.removeAll(keepingCapacity: true)
        writer.write(UInt64(0))
    }

    /// The message without the headroom.
    static func withPayload<R>(_ writer: WireWriter, _ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try writer.bytes.withUnsafeBytes { try body(UnsafeRawBufferPointer(rebasing: $0[headroom...])) }
    }
}

/// Engine-side encoders. Each leaves a complete message (with headroom) in `writer`.
enum MasterCodec {
    static func define(_ definition: FunctionDefinition, into writer: inout WireWriter) {
        MessageBuffer.begin(&writer)
        writer.write(MasterMessage.define.rawValue)
        writer.write(definition.id)
        writer.write(definition.typeName)
        definition.bytes.withUnsafeBytes { writer.writeLengthPrefixed($0) }
    }

    static func undefine(_ id: UInt32, into writer: inout WireWriter) {
        MessageBuffer.begin(&writer)
        writer.write(MasterMessage.undefine.rawValue)
        writer.write(id)
    }

    /// The chunk's header; the inputs follow (written by the job).
    /// Written in one append (headroom, kind, task, function: 21 bytes) — one per chunk, where
    /// an append per field cost the pool's thread more than the rest of the header's work.
    static func beginChunk(task: UInt64, function: UInt32, into writer: inout WireWriter) {
        writer.removeAll(keepingCapacity: true)
        var header: (UInt64, UInt64, UInt64) = (0, 0, 0)
        withUnsafeMutableBytes(of: &header) { raw in
            raw.storeBytes(of: MasterMessage.chunk.rawValue.littleEndian, toByteOffset: MessageBuffer.headroom, as: UInt8.self)
            raw.storeBytes(of: task.littleEndian, toByteOffset: MessageBuffer.headroom + 1, as: UInt64.self)
            raw.storeBytes(of: function.littleEndian, toByteOffset: MessageBuffer.headroom + 9, as: UInt32.self)
            writer.writeRaw(UnsafeRawBufferPointer(rebasing: raw[..<(MessageBuffer.headroom + 13)]))
        }
    }

    /// A bundle's header; the inputs follow (written by the job).
    static func beginBundle(
        task: UInt64, function: UInt32, chunkSize: Int, timeoutNanoseconds: UInt64?, into writer: inout WireWriter
    ) {
        MessageBuffer.begin(&writer)
        writer.write(MasterMessage.bundle.rawValue)
        writer.write(task)
        writer.write(function)
        writer.write(UInt32(clamping: chunkSize))
        writer.write(timeoutNanoseconds ?? 0)
    }

    static func stop(into writer: inout WireWriter) {
        MessageBuffer.begin(&writer)
        writer.write(MasterMessage.stop.rawValue)
    }

    static func release(_ segments: [SegmentID], into writer: inout WireWriter) {
        MessageBuffer.begin(&writer)
        writer.write(MasterMessage.release.rawValue)
        writer.write(UInt32(segments.count))
        for segment in segments {
            writer.write(segment.high)
            writer.write(segment.low)
        }
    }
}

/// A worker's message, decoded; the readers point into the received bytes and are valid
/// only while the backend's handler runs.
enum WorkerReply {
    /// A chunk's outputs, all of them.
    case result(task: UInt64, outputs: WireReader)
    /// The input at `index` in the chunk failed; `outputs` holds the outputs of the `index`
    /// inputs before it (the rest did not run).
    case failure(task: UInt64, index: Int, kind: FailureKind, typeName: String, message: String, outputs: WireReader)
    /// A bundle's inputs, some failed: its pieces in input order (`Outcomes.pieces`).
    case outcomes(task: UInt64, pieces: WireReader)
    /// The worker acknowledged `stop` and is leaving.
    case stopped
    /// A swift-log record logged in a task.
    case log(ForwardedRecord)

    /// Decodes a message without its headroom (what a transport delivers).
    static func decode(_ bytes: UnsafeRawBufferPointer) throws -> WorkerReply {
        var reader = WireReader(bytes)
        let kind = try reader.read(UInt8.self)
        switch WorkerMessage(rawValue: kind) {
        case .result:
            let task = try reader.read(UInt64.self)
            return .result(task: task, outputs: reader)
        case .failure:
            let task = try reader.read(UInt64.self)
            let index = Int(try reader.read(Int64.self))
            let failure = FailureKind(rawValue: try reader.read(UInt8.self)) ?? .machinery
            let typeName = try reader.read(String.self)
            let message = try reader.read(String.self)
            return .failure(task: task, index: index, kind: failure, typeName: typeName, message: message, outputs: reader)
        case .outcomes:
            let task = try reader.read(UInt64.self)
            return .outcomes(task: task, pieces: reader)
        case .stopped:
            return .stopped
        case .log:
            let level = Logger.Level(code: try reader.read(UInt8.self))
            let label = try reader.read(String.self)
            let message = try reader.read(String.self)
            let count = try reader.read(UInt32.self)
            guard count <= 10_000 else { throw PoolError(.protocolViolation, "a log record with \(count) metadata entries") }
            var metadata: [(String, String)] = []
            for _ in 0..<count { metadata.append((try reader.read(String.self), try reader.read(String.self))) }
            let source = try reader.read(String.self)
            let file = try reader.read(String.self)
            let function = try reader.read(String.self)
            let line = UInt(try reader.read(UInt64.self))
            return .log(
                ForwardedRecord(
                    level: level, label: label, message: message, metadata: metadata, source: source,
                    file: file, function: function, line: line))
        case .objectRequest:
            throw PoolError(.protocolViolation, "a worker sent an object request outside an MPI job")
        case nil:
            throw PoolError(.protocolViolation, "a worker sent an unknown message kind \(kind)")
        }
    }

    /// Whether `bytes` (without headroom) is a `stopped` message — for transports that
    /// track their workers' departures themselves.
    static func isStopped(_ bytes: UnsafeRawBufferPointer) -> Bool {
        bytes.first == WorkerMessage.stopped.rawValue
    }

    /// Whether `bytes` (without headroom) answers a chunk (`result` or `failure`).
    static func isAnswer(_ bytes: UnsafeRawBufferPointer) -> Bool {
        bytes.first == WorkerMessage.result.rawValue || bytes.first == WorkerMessage.failure.rawValue
            || bytes.first == WorkerMessage.outcomes.rawValue
    }
}

/// Worker-side encoders.
enum WorkerCodec {
    /// Starts a `result`; the outputs follow.
    static func beginResult(task: UInt64, into writer: inout WireWriter) {
        MessageBuffer.begin(&writer)
        writer.write(WorkerMessage.result.rawValue)
        writer.write(task)
    }

    /// Starts a `failure`; the outputs of the inputs before `index` follow.
    static func beginFailure(
        task: UInt64, index: Int, kind: FailureKind, typeName: String, message: String,
        into writer: inout WireWriter
    ) {
        MessageBuffer.begin(&writer)
        writer.write(WorkerMessage.failure.rawValue)
        writer.write(task)
        writer.write(Int64(index))
        writer.write(kind.rawValue)
        writer.write(typeName)
        writer.write(message)
    }

    static func stopped(into writer: inout WireWriter) {
        MessageBuffer.begin(&writer)
        writer.write(WorkerMessage.stopped.rawValue)
    }

    static func log(
        level: Logger.Level, label: String, message: String, metadata: Logger.Metadata, source: String,
        file: String, function: String, line: UInt, into writer: inout WireWriter
    ) {
        MessageBuffer.begin(&writer)
        writer.write(WorkerMessage.log.rawValue)
        writer.write(level.code)
        writer.write(label)
        writer.write(message)
        writer.write(UInt32(metadata.count))
        for (key, value) in metadata.sorted(by: { $0.key < $1.key }) {
            writer.write(key)
            writer.write(value.description)
        }
        writer.write(source)
        writer.write(file)
        writer.write(function)
        writer.write(UInt64(line))
    }
}
