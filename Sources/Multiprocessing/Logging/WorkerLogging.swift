// swift-log's `Logger`, `LogHandler` and `LoggingSystem` come with `import Multiprocessing`.
@_exported import Logging

#if canImport(Glibc)
import Glibc
#endif

/// swift-log records from workers, seen where the pool is: a `Logger` in a task works as in
/// `main`. In a pool worker (a local process of any start method, or an MPI worker rank) a
/// record is sent to the process that owns the pool over the pool's own channel — ordered
/// with the task's results, written before the task goes on, so a worker that crashes right
/// after logging loses nothing it logged — and emitted there by that process's handler, with
/// the worker's `pid`, `rank` and `host` added to its metadata.
///
/// ```swift
/// WorkerLogging.bootstrap()            // first thing in main, instead of LoggingSystem.bootstrap
/// let log = Logger(label: "sweep")      // in a task: log.info("T = \(t)") reaches main's stderr
/// ```
///
/// Workers started with `.spawn` or `.forkserver`, and MPI worker ranks, never run `main`:
/// they forward on their own. `.fork` workers inherit `main`'s logging set-up: records reach
/// the parent's handler only if `main` called `WorkerLogging.bootstrap` (with
/// `LoggingSystem.bootstrap` alone, a fork worker writes them itself, to the same stderr).
/// Records logged by other threads than the one running the task, and by `Process` children,
/// are written by the worker itself.
public enum WorkerLogging {
    /// Sets up swift-log for this program: records logged here go to `factory`'s handler,
    /// records logged in pool workers are forwarded here first. Call once, at the start.
    public static func bootstrap(_ factory: @escaping @Sendable (String) -> any LogHandler = { StreamLogHandler.standardError(label: $0) }) {
        LoggingSystem.bootstrap { label in ForwardingLogHandler(label: label, local: factory(label)) }
    }

    /// In a worker that never ran `main` (spawned, fork server, MPI rank): forward records.
    static func bootstrapInFreshWorker() {
        bootstrap()
    }
}

/// Where a worker sends its records (installed by the worker's serve loop; nil elsewhere).
/// `send` runs only on the thread that installed it (the one running tasks).
final class WorkerLogSink: @unchecked Sendable {
    nonisolated(unsafe) static var current: WorkerLogSink?

    private let thread = pthread_self()
    private let send: (inout WireWriter) -> Void
    private var writer = WireWriter(capacity: 1024)

    init(send: @escaping (inout WireWriter) -> Void) {
        self.send = send
    }

    /// Whether the calling thread may send through this sink.
    var isOnSendingThread: Bool { pthread_equal(pthread_self(), thread) != 0 }

    func forward(
        level: Logger.Level, label: String, message: String, metadata: Logger.Metadata,
        source: String, file: String, function: String, line: UInt
    ) {
        WorkerCodec.log(
            level: level, label: label, message: message, metadata: metadata, source: source,
            file: file, function: function, line: line, into: &writer)
        send(&writer)
    }
}

/// The handler `WorkerLogging.bootstrap` installs: here, `local`; in a pool worker's task
/// thread, the record goes to the pool's process.
struct ForwardingLogHandler: LogHandler {
    let label: String
    var local: any LogHandler

    init(label: String, local: any LogHandler) {
        self.label = label
        self.local = local
    }

    var metadata: Logger.Metadata {
        get { local.metadata }
        set { local.metadata = newValue }
    }

    var logLevel: Logger.Level {
        get { local.logLevel }
        set { local.logLevel = newValue }
    }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { local[metadataKey: key] }
        set { local[metadataKey: key] = newValue }
    }

    func log(event: LogEvent) {
        if let sink = WorkerLogSink.current, sink.isOnSendingThread {
            let merged = local.metadata.merging(event.metadata ?? [:]) { $1 }
            sink.forward(
                level: event.level, label: label, message: event.message.description, metadata: merged,
                source: event.source, file: event.file, function: event.function, line: event.line)
        } else {
            local.log(event: event)
        }
    }
}

/// A forwarded record, emitted in the pool's process.
struct ForwardedRecord {
    var level: Logger.Level
    var label: String
    var message: String
    var metadata: [(String, String)]
    var source: String
    var file: String
    var function: String
    var line: UInt

    /// Emits it through this process's logging system, tagged with where it came from.
    func emit(from worker: WorkerDied) {
        var logger = Logger(label: label)
        logger.logLevel = .trace
        var tagged = Logger.Metadata()
        for (key, value) in metadata { tagged[key] = .string(value) }
        if let pid = worker.pid { tagged["pid"] = .stringConvertible(pid) }
        if let rank = worker.rank { tagged["rank"] = .stringConvertible(rank) }
        if let host = worker.host { tagged["host"] = .string(host) }
        logger.log(level: level, "\(message)", metadata: tagged, source: source, file: file, function: function, line: line)
    }
}

extension Logger.Level {
    var code: UInt8 {
        switch self {
        case .trace: return 0
        case .debug: return 1
        case .info: return 2
        case .notice: return 3
        case .warning: return 4
        case .error: return 5
        case .critical: return 6
        }
    }

    init(code: UInt8) {
        switch code {
        case 0: self = .trace
        case 1: self = .debug
        case 2: self = .info
        case 3: self = .notice
        case 4: self = .warning
        case 5: self = .error
        default: self = .critical
        }
    }
}
