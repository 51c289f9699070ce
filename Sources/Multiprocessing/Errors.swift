/// A function that threw in a worker. Carries what can cross a process boundary: the
/// error's type name and description, and which input failed.
public struct RemoteError: Error, CustomStringConvertible, Sendable, Equatable {
    /// The thrown error's type, as `String(reflecting:)` prints it.
    public var typeName: String
    /// The thrown error's description (`String(describing:)`).
    public var message: String
    /// The failing input's position in the submitted sequence (0-based).
    public var inputIndex: Int
    /// Where it ran: the worker's process id (local backend), its rank (MPI) and host.
    public var pid: Int32?
    public var rank: Int?
    public var host: String?

    public init(
        typeName: String, message: String, inputIndex: Int, pid: Int32? = nil, rank: Int? = nil,
        host: String? = nil
    ) {
        self.typeName = typeName
        self.message = message
        self.inputIndex = inputIndex
        self.pid = pid
        self.rank = rank
        self.host = host
    }

    public var description: String {
        let text = "input \(inputIndex) threw \(typeName): \(message)"
        let place = workerPlace(pid: pid, rank: rank, host: host, unnamed: "")
        return place.isEmpty ? text : text + " (\(place))"
    }

    /// Equal when the same input threw the same error, wherever it ran.
    public static func == (a: RemoteError, b: RemoteError) -> Bool {
        a.typeName == b.typeName && a.message == b.message && a.inputIndex == b.inputIndex
    }
}

/// A worker that ended while it held the calling task: killed by a signal, crashed, or
/// exited. The pool starts a replacement; the call gets this error instead of hanging.
public struct WorkerDied: Error, CustomStringConvertible, Sendable, Equatable {
    /// The worker's process id (local backend).
    public var pid: Int32?
    /// The worker's rank (MPI backend).
    public var rank: Int?
    /// The host the worker ran on, when known.
    public var host: String?
    /// The signal that ended it, if a signal did.
    public var signal: Int32?
    /// Its exit status, if it exited.
    public var exitCode: Int32?
    /// The input it was running (0-based position in the submitted sequence), when known.
    public var inputIndex: Int?
    /// Where it crashed, when it crashed (a crash signal: SIGSEGV, SIGBUS, SIGILL — which is
    /// what `fatalError`, a failed `precondition` or an overflow trap raise —, SIGFPE,
    /// SIGABRT, SIGTRAP): the report of Swift's backtracer in the worker, the crashed
    /// thread's frames symbolicated with file and line where the binary has debug
    /// information (local backend; nil for a worker killed from outside, or under MPI).
    /// `description` shows its frames; the parent also printed it on standard error.
    public var crashReport: String?
    /// Killed (SIGKILL, not by the pool) while the kernel's out-of-memory killer ran: most
    /// likely its task needed more memory than the machine or its limit (a container's, a
    /// Slurm job's `--mem`) allows (local backend).
    public var outOfMemory: Bool

    public init(
        pid: Int32? = nil, rank: Int? = nil, host: String? = nil, signal: Int32? = nil,
        exitCode: Int32? = nil, inputIndex: Int? = nil, crashReport: String? = nil, outOfMemory: Bool = false
    ) {
        self.pid = pid
        self.rank = rank
        self.host = host
        self.signal = signal
        self.exitCode = exitCode
        self.inputIndex = inputIndex
        self.crashReport = crashReport
        self.outOfMemory = outOfMemory
    }

    public var description: String {
        let who = workerPlace(pid: pid, rank: rank, host: host, unnamed: "a worker")
        let how =
            signal.map { "was killed by signal \($0) (\(signalName($0)))" }
            ?? exitCode.map { "exited with status \($0)" } ?? "ended"
        let which = inputIndex.map { " while running input \($0)" } ?? ""
        let memory =
            outOfMemory
            ? """
            ; the kernel's out-of-memory killer ran meanwhile: most likely the task needed more memory than \
            the machine or its limit allows (a container's, Slurm's --mem): give it more, or use less per task
            """ : ""
        let trace = crashReport.map { "\n" + CrashReports.summary($0) } ?? ""
        return "\(who) \(how)\(which)\(memory)\(trace)"
    }

    /// Equal when the same worker ended the same way on the same input (the crash reports
    /// are not compared: they hold addresses).
    public static func == (a: WorkerDied, b: WorkerDied) -> Bool {
        a.pid == b.pid && a.rank == b.rank && a.host == b.host && a.signal == b.signal && a.exitCode == b.exitCode
            && a.inputIndex == b.inputIndex
    }
}

/// Where a worker ran, as the failure messages say it: "worker process 123 of rank 2 on
/// node2" (a local worker hosted by an MPI rank), "worker rank 2 on node2", "worker process
/// 123 on vm"; `unnamed` (then " on host" if known) when neither its pid nor its rank is.
func workerPlace(pid: Int32?, rank: Int?, host: String?, unnamed: String) -> String {
    var place =
        switch (pid, rank) {
        case (let pid?, let rank?): "worker process \(pid) of rank \(rank)"
        case (let pid?, nil): "worker process \(pid)"
        case (nil, let rank?): "worker rank \(rank)"
        case (nil, nil): unnamed
        }
    if let host { place += place.isEmpty ? "on \(host)" : " on \(host)" }
    return place
}

/// A misuse of a pool or a failure of the machinery around the tasks.
public struct PoolError: Error, CustomStringConvertible, Sendable, Equatable {
    public enum Code: Sendable, Equatable {
        /// The pool was closed or terminated; no new work is accepted.
        case closed
        /// An argument is out of range (processes < 1, chunkSize < 1, …).
        case invalidArgument
        /// The function's type cannot be found by name in a worker.
        case unresolvableFunction
        /// An input, output or function value could not be encoded or decoded.
        case encoding
        /// Workers could not be started.
        case startFailed
        /// The pool was terminated while the call waited.
        case terminated
        /// A worker sent a message the pool cannot understand.
        case protocolViolation
        /// The chosen backend is not available here (e.g. MPI outside mpirun).
        case backendUnavailable
        /// Messages between the master and its workers could not be sent or received (an MPI
        /// call failed); the message names the MPI function and error.
        case transport
        /// The call was cancelled (`AsyncResult.cancel()`, a dropped `imap` stream, or the
        /// awaiting Swift `Task` was cancelled).
        case cancelled
        /// `join()` was called on a pool that was neither closed nor terminated, or
        /// `AsyncResult.successful()` before the result was ready.
        case stillRunning
        /// A pool was created inside a pool task.
        case nested
    }
    public var code: Code
    public var message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { message }
}

/// A wait that ran out of time: `AsyncResult.get(timeout:)` and friends.
/// Python's `multiprocessing.TimeoutError`.
public struct TimeoutError: Error, CustomStringConvertible, Sendable, Equatable {
    public var seconds: Double
    public init(seconds: Double) { self.seconds = seconds }
    public var description: String { "timed out after \(seconds) s" }
}

func signalName(_ signal: Int32) -> String {
    switch signal {
    case 1: return "SIGHUP"
    case 2: return "SIGINT"
    case 3: return "SIGQUIT"
    case 4: return "SIGILL"
    case 5: return "SIGTRAP"
    case 6: return "SIGABRT"
    case 7: return "SIGBUS"
    case 8: return "SIGFPE"
    case 9: return "SIGKILL"
    case 11: return "SIGSEGV"
    case 13: return "SIGPIPE"
    case 14: return "SIGALRM"
    case 15: return "SIGTERM"
    default: return "signal \(signal)"
    }
}
