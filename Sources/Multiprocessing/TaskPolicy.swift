/// When and how often a failed input runs again: `Pool(retry:)` or per call (`map(…, retry:)`).
///
/// An input that fails in one of the ways in `on` runs again with the same input value, on
/// any worker, after `backoff` seconds (growing by `multiplier` after each attempt, at most
/// `maximumBackoff`), until it succeeds or has run `attempts` times. Results keep their
/// input order whatever was retried. When the attempts are used up the caller gets
/// `RetriesExhausted`, which lists what each attempt ended with.
///
/// ```swift
/// let retry = RetryPolicy(attempts: 3, on: [.workerDied, .timedOut])
/// let results = try pool.map(Simulate(), seeds, timeout: 60, retry: retry)
/// ```
public struct RetryPolicy: Sendable {
    /// The ways an attempt can fail.
    public enum Failure: Sendable, Hashable {
        /// The worker process (or rank) ended while it ran the input: `WorkerDied`.
        case workerDied
        /// The input ran past its time limit: `TaskTimedOut`.
        case timedOut
        /// The function threw: `RemoteError` (and `when`, if given, agrees).
        case threw

        static let all: [Failure] = [.workerDied, .timedOut, .threw]
        static func bits(of failures: Set<Failure>) -> UInt8 { failures.reduce(0) { $0 | $1.bit } }
        var bit: UInt8 {
            switch self {
            case .workerDied: 1
            case .timedOut: 2
            case .threw: 4
            }
        }
    }

    /// How many times an input may run in all (1: never again).
    public var attempts: Int
    /// Which failures are retried.
    public var on: Set<Failure> {
        get { Set(Failure.all.filter { failureBits & $0.bit != 0 }) }
        set { failureBits = Failure.bits(of: newValue) }
    }
    /// `on` as bits (`Failure.bit`): a policy is copied and read with every call, and a
    /// `Set` of an enum of this module has its metadata built from its mangled name at its
    /// first use (a scan of every protocol conformance in the process, ~0.07 ms, in the
    /// first `Pool(…)` of a process).
    private var failureBits: UInt8
    /// For `.threw`: which thrown errors are retried (nil: all).
    public var when: (@Sendable (RemoteError) -> Bool)?
    /// Seconds before the second attempt.
    public var backoff: Double
    /// Each further wait is the previous one times this.
    public var multiplier: Double
    /// The longest wait between two attempts, in seconds.
    public var maximumBackoff: Double

    public init(
        attempts: Int, on: Set<Failure> = [.workerDied, .timedOut], when: (@Sendable (RemoteError) -> Bool)? = nil,
        backoff: Double = 0, multiplier: Double = 2, maximumBackoff: Double = 60
    ) {
        self.init(
            attempts: attempts, failureBits: Failure.bits(of: on), when: when, backoff: backoff,
            multiplier: multiplier, maximumBackoff: maximumBackoff)
    }

    private init(
        attempts: Int, failureBits: UInt8, when: (@Sendable (RemoteError) -> Bool)?, backoff: Double,
        multiplier: Double, maximumBackoff: Double
    ) {
        self.attempts = attempts
        self.failureBits = failureBits
        self.when = when
        self.backoff = backoff
        self.multiplier = multiplier
        self.maximumBackoff = maximumBackoff
    }

    /// Every input runs once (the default).
    public static let none = RetryPolicy(
        attempts: 1, failureBits: 0, when: nil, backoff: 0, multiplier: 2, maximumBackoff: 60)

    func validate() throws(PoolError) {
        guard attempts >= 1 else {
            throw PoolError(.invalidArgument, "RetryPolicy.attempts must be at least 1, not \(attempts)")
        }
        guard backoff >= 0, multiplier >= 1, maximumBackoff >= 0, backoff.isFinite, maximumBackoff.isFinite else {
            throw PoolError(.invalidArgument, "RetryPolicy: backoff and maximumBackoff must be finite and ≥ 0, multiplier ≥ 1")
        }
    }

    /// Whether an input that failed this way after `attempt` attempts runs again.
    func retries(_ failure: Failure, error: any Error, after attempt: Int) -> Bool {
        guard attempt < attempts, failureBits & failure.bit != 0 else { return false }
        if failure == .threw, let when, let remote = error as? RemoteError { return when(remote) }
        return true
    }

    /// Nanoseconds to wait before attempt `attempt + 1` — at most 10⁹ s (about 32 years, what
    /// every timeout of the API takes for "for ever"), so that it fits in the engine's clock.
    func delayNanoseconds(after attempt: Int) -> UInt64 {
        guard backoff > 0 else { return 0 }
        var seconds = backoff
        for _ in 1..<max(1, attempt) { seconds = min(maximumBackoff, seconds * multiplier) }
        return UInt64(min(seconds, maximumBackoff, 1e9) * 1e9)
    }
}

/// Validated per-call options: a time limit per input and a retry policy.
struct TaskOptions: Sendable {
    var timeoutNanoseconds: UInt64?
    var retry: RetryPolicy

    static let none = TaskOptions(timeoutNanoseconds: nil, retry: .none)

    init(timeoutNanoseconds: UInt64?, retry: RetryPolicy) {
        self.timeoutNanoseconds = timeoutNanoseconds
        self.retry = retry
    }

    /// A call's options over the pool's defaults.
    init(timeout: Double?, retry: RetryPolicy?, defaults: TaskOptions) throws(PoolError) {
        if let timeout {
            guard timeout > 0, !timeout.isNaN else {
                throw PoolError(.invalidArgument, "timeout must be a positive number of seconds, not \(timeout)")
            }
            // 10⁹ s and more (and infinity) is no limit, as for every other timeout in the API.
            // At least 1 ns: a limit under a nanosecond is a limit too (a bundle's header,
            // `MessageCodec.beginBundle`, says "none" with 0).
            timeoutNanoseconds = timeout >= 1e9 ? nil : max(1, UInt64(timeout * 1e9))
        } else {
            timeoutNanoseconds = defaults.timeoutNanoseconds
        }
        self.retry = retry ?? defaults.retry
        try self.retry.validate()
    }
}

/// An input that ran longer than its time limit (`Pool(taskTimeout:)` or `timeout:` of a
/// call). Its worker was killed and replaced (local backend) or, under MPI, the input was
/// given up while its rank finishes it (see the README).
public struct TaskTimedOut: Error, CustomStringConvertible, Sendable, Equatable {
    /// The input's position in the submitted sequence (0-based).
    public var inputIndex: Int
    /// The limit, in seconds.
    public var seconds: Double
    /// The worker that ran it.
    public var pid: Int32?
    public var rank: Int?
    public var host: String?

    public init(inputIndex: Int, seconds: Double, pid: Int32? = nil, rank: Int? = nil, host: String? = nil) {
        self.inputIndex = inputIndex
        self.seconds = seconds
        self.pid = pid
        self.rank = rank
        self.host = host
    }

    public var description: String {
        let who = workerPlace(pid: pid, rank: rank, host: host, unnamed: "its worker")
        return "input \(inputIndex) ran longer than its limit of \(seconds) s on \(who)"
    }
}

/// An input that failed on every attempt its `RetryPolicy` allowed.
public struct RetriesExhausted: Error, CustomStringConvertible, Sendable {
    /// The input's position in the submitted sequence (0-based).
    public var inputIndex: Int
    /// What each attempt ended with, first to last.
    public var failures: [String]
    /// The last attempt's error (`WorkerDied`, `TaskTimedOut` or `RemoteError`).
    public var lastError: any Error

    public var attempts: Int { failures.count }
    /// Each attempt's error, when the engine made this (`failures` are their descriptions):
    /// kept so that all of them can name the input by its position in the call (`renumber`).
    private var attemptErrors: [any Error] = []

    public init(inputIndex: Int, failures: [String], lastError: any Error) {
        self.inputIndex = inputIndex
        self.failures = failures
        self.lastError = lastError
    }

    /// The engine's: `errors` are the attempts' errors, first to last (at least one).
    init(inputIndex: Int, errors: [any Error]) {
        self.init(inputIndex: inputIndex, failures: errors.map { String(describing: $0) }, lastError: errors[errors.count - 1])
        attemptErrors = errors
    }

    /// The input, in all it holds, named through `position` (a resumed run's or a
    /// checkpointed stream's position among the inputs it sent → the call's input index).
    mutating func renumber(_ position: (Int) -> Int) {
        inputIndex = position(inputIndex)
        lastError = renumbered(lastError, position)
        guard attemptErrors.count == failures.count else { return }
        attemptErrors = attemptErrors.map { renumbered($0, position) }
        failures = attemptErrors.map { String(describing: $0) }
    }

    /// One line per attempt (the first line of what it ended with), then the rest of the
    /// last attempt's description — a crash report's frames, once:
    ///
    /// ```
    /// input 4 failed 3 times:
    ///   attempt 1: worker process 812 on node1 was killed by signal 11 (SIGSEGV) while running input 4
    ///   attempt 2: …
    ///   attempt 3: …
    /// the last attempt's report (every attempt's is in `failures`):
    /// Thread 0 "swiftmp-worker" crashed: …
    /// ```
    public var description: String {
        var text = "input \(inputIndex) failed \(failures.count) times:"
        for (number, failure) in failures.enumerated() {
            text += "\n  attempt \(number + 1): " + failure.prefix { $0 != "\n" }
        }
        let last = String(describing: lastError)
        if let newline = last.firstIndex(of: "\n") {
            text += "\nthe last attempt's report (every attempt's is in `failures`):" + last[newline...]
        }
        return text
    }
}
