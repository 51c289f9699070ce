import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// A child process that runs one function value: Python's `multiprocessing.Process`.
///
/// ```swift
/// struct Job: ParallelFunction {
///     var a: Int, b: Int
///     func callAsFunction(_: Void) { print(a + b) }
/// }
/// let p = Process(target: Job(a: 1, b: 2))
/// try p.start()
/// try p.join()
/// print(p.exitCode!)   // 0
/// ```
///
/// The target is a `ParallelFunction<Void, Void>` value: its stored properties are its
/// arguments (Python's `args`). It is encoded when the process starts and decoded in the
/// child — except that with `.fork` a target that mentions no `Queue`, shared value, lock or
/// `Connection` is called as it is in the child's copy of the parent's memory, as in
/// Python (the same values, unless its `Codable` conformance leaves something out).
/// `Queue`s, shared values, locks and `Connection`s stored in it reach the child
/// (connections are passed as descriptors when the child starts — with every start method).
///
/// A target that throws makes the child print the error to standard error and exit with
/// status 1: a failed child is a result (`exitCode`), not an error thrown in the parent.
/// A child killed by a signal has `exitCode == -signal`, as in Python.
///
/// Children die with their parent (`PR_SET_PDEATHSIG`). When the program exits normally,
/// daemon children are terminated and the others are waited for, as in Python — so join
/// your children, or mark them `daemon`.
///
/// **Under mpirun** (rank 0 of a job with worker ranks, unless `SWIFTMP_MPI_OBJECTS=local`)
/// the target runs on a worker rank, in one of the local worker processes it hosts, instead of
/// a local child (`startMethod` does not apply): one process per such worker at a time, each
/// alone on its worker; `join`, `isAlive` and
/// `exitCode` (0, or 1 if the target threw — the error is printed by that rank) work as
/// usual, `pid` is nil, and `terminate()` / `kill()` end the local worker that runs the target
/// (its rank kills it; `exitCode` is then −15 or −9, as for a local child).
///
/// With Foundation imported, `Process` also names `Foundation.Process`: write
/// `Multiprocessing.Process` then.
public final class Process: @unchecked Sendable {
    /// The process's name: unless given, `Process-N` for the N-th created in the main
    /// program and `Process-N:M` for the M-th created in that one (as Python names them:
    /// unique among the program's processes). The child sees it as
    /// `Multiprocessing.currentProcess.name`.
    public let name: String
    /// Whether the child is terminated, rather than waited for, when this program exits.
    public let daemon: Bool
    /// How the child is started.
    public let startMethod: StartMethod

    /// The target and what starts it, until the process started: then it is let go (with
    /// what it captures), as Python's `Process.start()` drops its target.
    private let launcher: Mutex<Launcher?>
    private let state: ProcessState

    private struct Launcher: Sendable {
        let target: any ParallelFunction<Void, Void>
        /// Calls the target (in a forked child that uses it as it is in memory).
        let call: @Sendable () throws -> Void
    }
    /// Under mpirun, once started: the target's outcome on its rank.
    private let onRank = Mutex<AsyncResult<Int32>?>(nil)
    /// The signal `terminate()`/`kill()` stood for on an MPI rank (its input was cancelled:
    /// the rank killed the worker running it).
    private let interruptedBy = Mutex<Int32?>(nil)
    private let lifecycle = Mutex<Lifecycle>(.created)

    private enum Lifecycle: Sendable { case created, started, closed }

    /// The `Process`es created in this process so far (high 32 bits: the pid they were
    /// counted in; a child counts its own from 1, as Python's do).
    private static let counter = Atomic<Int>(0)

    /// The next number of a `Process` created in this process: 1, 2, … (again from 1 in a child).
    private static func nextNumber() -> Int {
        let pid = Int(getpid())
        var seen = counter.load(ordering: .relaxed)
        while true {
            let next = seen >> 32 == pid ? seen + 1 : pid << 32 | 1
            let (exchanged, original) = counter.compareExchange(expected: seen, desired: next, ordering: .relaxed)
            if exchanged { return next & 0xFFFF_FFFF }
            seen = original
        }
    }

    /// Where it sits among the program's processes, as Python's `_identity`: its number in
    /// its parent, after its parent's own (`CurrentProcess.ordinal`): "2", "2:1", …
    let ordinal: String

    /// Whether the child's output lines are tagged (`tagOutput:` of `init`).
    private let tagOutput: Bool?
    /// Whether they are, decided when the child started (then `join` waits for its last lines).
    private let outputTagged = Atomic<Bool>(false)

    /// A process that will run `target` once when started.
    ///
    /// `tagOutput`: each line the child writes on its standard output or error reaches this
    /// program's own prefixed with `[pid N] `, like `mpirun --tag-output` (and `join()`
    /// returns once its last lines are out). nil (the default): as the environment variable
    /// `SWIFTMP_TAG_OUTPUT` says; true or false win over it. Not for a target run on an MPI
    /// rank (there the variable decides).
    ///
    /// `daemon`: nil (the default) takes the current process's flag, as Python does — false
    /// in the main program, true in a daemon child.
    public init(
        target: some ParallelFunction<Void, Void>, name: String? = nil, daemon: Bool? = nil,
        startMethod: StartMethod = .automatic, tagOutput: Bool? = nil
    ) {
        self.tagOutput = tagOutput
        self.launcher = Mutex(Launcher(target: target, call: { try target(()) }))
        let parent = CurrentProcess.ordinal
        let number = Process.nextNumber()
        self.ordinal = parent.isEmpty ? "\(number)" : "\(parent):\(number)"
        // Unique among the program's processes: Process-2, and Process-2:1 for its first child.
        self.name = name ?? "Process-\(ordinal)"
        let daemon = daemon ?? Multiprocessing.currentProcess.daemon
        self.daemon = daemon
        self.startMethod = startMethod
        self.state = ProcessState(daemon: daemon)
    }

    /// Starts the child. Throws if it was started before, if the target cannot be sent to
    /// another process, or if the system cannot start a process.
    public func start() throws {
        try lifecycle.withLock { (phase: inout Lifecycle) throws(ProcessError) in
            switch phase {
            case .created: phase = .started
            case .started: throw ProcessError(.alreadyStarted, "process \(name) was already started; a Process runs once — create a new one")
            case .closed: throw ProcessError(.closed, "process \(name) is closed")
            }
        }
        // Only one start gets past the check above; a failed one may be tried again.
        guard let launcher = launcher.withLock({ $0 }) else { return }
        do {
            if MPIObjects.isServing {
                let result = try MPIProcessHost.shared.start(launcher.target, name: name)
                onRank.withLock { $0 = result }
            } else {
                // In ForkGuard's activity, as the library's own threads are while they run: a
                // `.fork` child started meanwhile by another thread is forked when this start's
                // encoding (inside the Swift runtime, whose locks a child cannot undo) is done.
                try ForkGuard.withActivity { try launch(launcher.target, call: launcher.call) }
            }
            self.launcher.withLock { $0 = nil }
        } catch {
            lifecycle.withLock { $0 = .created }
            if error is ProcessError { throw error }
            throw ProcessError(.startFailed, "cannot start process \(name): \(error)")
        }
    }

    private func launch<F: ParallelFunction>(_ target: F, call: @escaping @Sendable () throws -> Void) throws {
        let typeName: String
        do {
            typeName = try FunctionIdentity.name(of: F.self)
        } catch {
            throw ProcessError(.encoding, error.message)
        }
        let bytes: [UInt8], segments: [SegmentStorage], descriptors: [(SegmentID, Int32)]
        do {
            (bytes, segments, descriptors) = try AttachmentContext.collectingWithDescriptors { try Wire.encode(target) }
        } catch {
            throw ProcessError(.encoding, "cannot encode the target \(String(reflecting: F.self)) of process \(name): \(error)")
        }
        let payload = ProcessPayload(typeName: typeName, name: name, daemon: daemon, ordinal: ordinal, target: bytes)
        let state = self.state
        ProcessRegistry.add(state, process: self)
        // Encoded all the same: the encode checks that the target may reach a child
        // (served objects refuse) and finds what it mentions.
        let inMemory = segments.isEmpty && descriptors.isEmpty ? call : nil
        let tagged = OutputTagging.isEnabled(option: tagOutput)
        outputTagged.store(tagged, ordering: .relaxed)
        // A decoder only for a forked child that decodes its target (one object less to
        // allocate, and write after the fork, per start otherwise).
        let decode = inMemory == nil ? Self.decoder(for: F.self) : nil
        do {
            // Outside it while it forks or waits for the supervisor (ForkGuard.withActivity).
            _ = try ForkGuard.whileBlocked {
                try ProcessLauncher.start(
                    method: startMethod.resolved, tagOutput: tagged, payload: payload, segments: segments,
                    descriptors: descriptors, inMemory: inMemory, decode: decode, state: state)
            }
        } catch {
            ProcessRegistry.remove(state)
            throw error
        }
    }

    private static func decoder<F: ParallelFunction>(
        for _: F.Type
    ) -> (@Sendable (inout WireReader) throws -> any ParallelFunction)? {
        { reader in try reader.decode(F.self) }
    }

    /// Waits until the child ends, at most `timeout` seconds (nil: without limit). Returns
    /// whether it ended; check `exitCode`. Throws if the process was never started, or closed.
    @discardableResult
    public func join(timeout: Double? = nil) throws -> Bool {
        try checkStarted("join()")
        if let result = onRank.withLock({ $0 }) {
            guard result.wait(timeout: timeout) else { return false }
            MPIProcessHost.shared.releaseIfIdle()
            return true
        }
        let end = deadline(after: timeout)
        guard state.waitForExit(until: end) else { return false }
        // Tagged output (tagOutput): its last lines are written out before join returns — within
        // the join's own time limit, and at most 2 s (a process the child left running may
        // hold its output open), once: after a full 2 s, later joins do not wait again. (Until
        // session 22 every join waited up to 2 s, `join(timeout: 0)` too.)
        if outputTagged.load(ordering: .relaxed), let pid {
            let longest = monotonicNanoseconds() &+ 2_000_000_000
            OutputTagging.awaitEnd(of: [pid], deadline: min(longest, end ?? longest))
            if monotonicNanoseconds() >= longest { outputTagged.store(false, ordering: .relaxed) }
        }
        return true
    }

    /// Whether the child was started and has not ended (been reaped) yet.
    public var isAlive: Bool {
        if let result = onRank.withLock({ $0 }) { return !result.isReady }
        state.poll()
        return state.lock.withLock { state.pid > 0 && state.exit == nil }
    }

    /// The child's process id once started.
    public var pid: Int32? {
        state.lock.withLock { state.pid > 0 ? state.pid : nil }
    }

    /// nil while the child runs (or before it starts); then its exit status, or minus the
    /// signal that killed it (Python's convention: -15 after `terminate()`).
    public var exitCode: Int32? {
        if let result = onRank.withLock({ $0 }) {
            guard result.isReady else { return nil }
            if case .failure(let error as PoolError)? = result.completion.outcome, error.code == .cancelled,
                let signal = interruptedBy.withLock({ $0 })
            {
                return -signal
            }
            // The target's worker ended (exit, crash, killed): its status or signal, as a local
            // child's.
            if case .failure(let died as WorkerDied)? = result.completion.outcome {
                if let signal = died.signal { return -signal }
                if let status = died.exitCode { return status }
            }
            return (try? result.get(timeout: 0)) ?? 1
        }
        state.poll()
        return state.lock.withLock { state.exit?.pythonExitCode }
    }

    /// Sends SIGTERM to the child (nothing if it is not running). Python's `terminate()`.
    /// Throws `.closed` after `close()`.
    public func terminate() throws {
        try checkNotClosed("terminate()")
        if interruptOnRank(SIGTERM) { return }
        state.send(SIGTERM)
    }

    /// Sends SIGINT to the child (nothing if it is not running), as Ctrl-C would. Python's
    /// `interrupt()` (3.14): a child that does not handle SIGINT ends killed by it
    /// (`exitCode` −2; Python's child raises `KeyboardInterrupt` and exits with 1).
    /// Throws `.closed` after `close()`.
    public func interrupt() throws {
        try checkNotClosed("interrupt()")
        if interruptOnRank(SIGINT) { return }
        state.send(SIGINT)
    }

    /// Sends SIGKILL to the child (nothing if it is not running). Python's `kill()`.
    /// Throws `.closed` after `close()`.
    public func kill() throws {
        try checkNotClosed("kill()")
        if interruptOnRank(SIGKILL) { return }
        state.send(SIGKILL)
    }

    /// A descriptor that becomes readable (`poll`, `select`, `epoll`) when the child ends,
    /// and stays readable: Python's `sentinel`, to wait for any of several processes (or a
    /// process and other descriptors) at once. The child's pidfd for `.fork` and `.spawn`;
    /// an eventfd signalled when its end is reported for `.forkserver`. It belongs to this
    /// `Process` (do not close or read it) and is closed by `close()` or when the `Process`
    /// is released. Throws `.notStarted` before `start()`, `.closed` after `close()`, and
    /// `.unsupported` for a target on an MPI rank (use `join(timeout:)` there).
    public var sentinel: Int32 {
        get throws {
            try checkStarted("sentinel")
            if onRank.withLock({ $0 }) != nil {
                throw ProcessError(.unsupported, "process \(name) runs on an MPI rank and has no sentinel descriptor; use join(timeout:)")
            }
            do {
                return try state.sentinel()
            } catch {
                throw ProcessError(.startFailed, "cannot make the sentinel of process \(name): \(error)")
            }
        }
    }

    private func checkNotClosed(_ call: String) throws(ProcessError) {
        if lifecycle.withLock({ $0 }) == .closed {
            throw ProcessError(.closed, "process \(name) is closed; \(call) cannot be used after close()")
        }
    }

    private func checkStarted(_ call: String) throws(ProcessError) {
        switch lifecycle.withLock({ $0 }) {
        case .created:
            throw ProcessError(.notStarted, "process \(name) was never started; call start() before \(call)")
        case .closed:
            throw ProcessError(.closed, "process \(name) is closed; \(call) cannot be used after close()")
        case .started:
            return
        }
    }

    /// Under mpirun: cancels the target's input, so that its rank kills the local worker
    /// running it (its exit code is then −`signal`, as for a local child); returns true. False
    /// for a local child.
    private func interruptOnRank(_ signal: Int32) -> Bool {
        guard let result = onRank.withLock({ $0 }) else { return false }
        if !result.isReady {
            interruptedBy.withLock { if $0 == nil { $0 = signal } }
            result.cancel()
        }
        return true
    }

    /// Releases what the process object holds (its descriptors); throws if the child still
    /// runs. Afterwards `start`, `join`, `terminate`, `kill` and `sentinel` throw `.closed`
    /// (Python's ValueError); `isAlive` is false and `exitCode` and `pid` keep their last
    /// values. Closing again does nothing.
    public func close() throws {
        if lifecycle.withLock({ $0 }) == .closed { return }
        if isAlive {
            throw ProcessError(.stillRunning, "process \(name) is still running; join() or terminate() it before close()")
        }
        lifecycle.withLock { $0 = .closed }
        state.releaseDescriptors()
    }
}

/// `Multiprocessing.Process`, for code that also imports Foundation (which has a `Process`).
public typealias MultiprocessingProcess = Process

extension Multiprocessing {
    /// The library's `Process` (spelled this way where Foundation's `Process` is visible).
    public typealias Process = MultiprocessingProcess
}

/// A process is `Waitable`: `Multiprocessing.wait(on:timeout:)` reports it once it has ended
/// (Python passes `process.sentinel` to `multiprocessing.connection.wait`), so a parent can
/// wait for the first of several children and connections at once. It is polled through its
/// `sentinel`; a process never started is never ready; after `close()` it stays ready.
extension Process: Waitable {
    public var _waitDescriptor: Int32? { try? sentinel }
    public func _isReady() -> Bool { exitCode != nil }
}
