import Wire

/// The answer to a `bundle` (`MasterMessage.bundle`) that did not succeed as a whole: input by
/// input, what became of it. A worker that schedules inputs itself (an MPI worker rank hosting
/// local workers, `NodeScheduler`) sends it when some inputs of the bundle failed; a bundle whose
/// inputs all succeeded is answered with a plain `result`.
///
/// Layout after the task id: pieces in input order until the end of the message, each a tag —
/// `0` outputs (`UInt32` count, then the length-prefixed encoded outputs of that many
/// consecutive inputs), `1` one failed input (`OutcomeFailure`).
enum Outcomes {
    enum Piece {
        case outputs(count: Int, bytes: UnsafeRawBufferPointer)
        case failed(OutcomeFailure)

        var count: Int {
            switch self {
            case .outputs(let count, _): return count
            case .failed: return 1
            }
        }
    }

    static func begin(task: UInt64, into writer: inout WireWriter) {
        MessageBuffer.begin(&writer)
        writer.write(WorkerMessage.outcomes.rawValue)
        writer.write(task)
    }

    /// Appends a run of `count` successful inputs; `encode` writes their outputs.
    static func appendOutputs(count: Int, into writer: inout WireWriter, _ encode: (inout WireWriter) throws -> Void) rethrows {
        writer.write(UInt8(0))
        writer.write(UInt32(count))
        let lengthAt = writer.count
        writer.write(UInt64(0))
        let start = writer.count
        try encode(&writer)
        writer.patch(UInt64(writer.count - start), at: lengthAt)
    }

    static func appendFailure(_ failure: OutcomeFailure, into writer: inout WireWriter) {
        writer.write(UInt8(1))
        failure.write(into: &writer)
    }

    /// The pieces of an `outcomes` message (after its task id); they point into `reader`'s bytes.
    static func pieces(_ reader: inout WireReader) throws -> [Piece] {
        var pieces: [Piece] = []
        while reader.remaining > 0 {
            switch try reader.read(UInt8.self) {
            case 0:
                let count = Int(try reader.read(UInt32.self))
                let bytes = try reader.readLengthPrefixed()
                pieces.append(.outputs(count: count, bytes: bytes))
            case 1:
                pieces.append(.failed(try OutcomeFailure.read(&reader)))
            case let tag:
                throw PoolError(.protocolViolation, "an outcome piece of unknown kind \(tag)")
            }
        }
        return pieces
    }
}

/// One input's failure as it crosses from a scheduling worker to the engine: the error it
/// failed with, by kind, with what identifies the process it ran in (the engine adds the
/// worker's rank and host).
struct OutcomeFailure: Equatable {
    enum Kind: UInt8 {
        case threw = 0
        case machinery = 1
        case initializer = 2
        case died = 3
        case timedOut = 4
        case cancelled = 5
        case terminated = 6
        case other = 7
    }

    var kind: Kind
    var typeName = ""
    var message = ""
    var pid: Int32?
    var signal: Int32?
    var exitCode: Int32?
    var seconds = 0.0
    var crashReport: String?
    /// A `WorkerDied`'s `outOfMemory`.
    var outOfMemory = false

    /// What `error` (as a job's `failInput` got it in the scheduling worker) says.
    init(_ error: any Error) {
        switch error {
        case let remote as RemoteError:
            self.init(kind: .threw, typeName: remote.typeName, message: remote.message, pid: remote.pid)
        case let died as WorkerDied:
            self.init(
                kind: .died, pid: died.pid, signal: died.signal, exitCode: died.exitCode, crashReport: died.crashReport,
                outOfMemory: died.outOfMemory)
        case let timedOut as TaskTimedOut:
            self.init(kind: .timedOut, pid: timedOut.pid, seconds: timedOut.seconds)
        case let pool as PoolError:
            let kind: Kind
            switch pool.code {
            case .encoding, .unresolvableFunction: kind = .machinery
            case .startFailed: kind = .initializer
            case .cancelled: kind = .cancelled
            case .terminated, .closed: kind = .terminated
            default: kind = .other
            }
            self.init(kind: kind, typeName: "PoolError", message: pool.message)
        default:
            self.init(kind: .other, typeName: String(reflecting: type(of: error)), message: String(describing: error))
        }
    }

    init(
        kind: Kind, typeName: String = "", message: String = "", pid: Int32? = nil, signal: Int32? = nil,
        exitCode: Int32? = nil, seconds: Double = 0, crashReport: String? = nil, outOfMemory: Bool = false
    ) {
        self.kind = kind
        self.typeName = typeName
        self.message = message
        self.pid = pid
        self.signal = signal
        self.exitCode = exitCode
        self.seconds = seconds
        self.crashReport = crashReport
        self.outOfMemory = outOfMemory
    }

    /// The error the engine charges input `index` with, run on `worker` (rank, host), and the
    /// kind of failure the call's retry policy looks at.
    func error(inputIndex index: Int, worker: WorkerDied) -> (any Error, RetryPolicy.Failure?) {
        switch kind {
        case .threw:
            return (
                RemoteError(
                    typeName: typeName, message: message, inputIndex: index, pid: pid, rank: worker.rank,
                    host: worker.host), .threw
            )
        case .died:
            return (
                WorkerDied(
                    pid: pid, rank: worker.rank, host: worker.host, signal: signal, exitCode: exitCode,
                    inputIndex: index, crashReport: crashReport, outOfMemory: outOfMemory), .workerDied
            )
        case .timedOut:
            return (TaskTimedOut(inputIndex: index, seconds: seconds, pid: pid, rank: worker.rank, host: worker.host), .timedOut)
        case .machinery:
            return (PoolError(message.contains("by name") ? .unresolvableFunction : .encoding, message), nil)
        case .initializer:
            return (PoolError(.startFailed, message), nil)
        case .cancelled:
            return (PoolError(.cancelled, message), nil)
        case .terminated:
            return (PoolError(.terminated, message), nil)
        case .other:
            return (PoolError(.protocolViolation, "\(typeName): \(message)"), nil)
        }
    }

    func write(into writer: inout WireWriter) {
        writer.write(kind.rawValue)
        writer.write(typeName)
        writer.write(message)
        writer.write(pid ?? -1)
        writer.write(signal ?? -1)
        writer.write(exitCode ?? -1)
        writer.write(seconds.bitPattern)
        writer.write(crashReport ?? "")
        writer.write(UInt8(outOfMemory ? 1 : 0))
    }

    static func read(_ reader: inout WireReader) throws -> OutcomeFailure {
        let raw = try reader.read(UInt8.self)
        let kind = Kind(rawValue: raw) ?? .other
        let typeName = try reader.read(String.self)
        let message = try reader.read(String.self)
        let pid = try reader.read(Int32.self)
        let signal = try reader.read(Int32.self)
        let exitCode = try reader.read(Int32.self)
        let seconds = Double(bitPattern: try reader.read(UInt64.self))
        let report = try reader.read(String.self)
        let outOfMemory = try reader.read(UInt8.self) == 1
        return OutcomeFailure(
            kind: kind, typeName: typeName, message: message, pid: pid < 0 ? nil : pid,
            signal: signal < 0 ? nil : signal, exitCode: exitCode < 0 ? nil : exitCode, seconds: seconds,
            crashReport: report.isEmpty ? nil : report, outOfMemory: outOfMemory)
    }
}
