/// What the engine needs from a backend: a way to send frames to worker slots, to learn of
/// replies and of workers that ended, and to start or replace workers. The public API never
/// mentions a backend; `Pool` picks one at run time.
protocol PoolBackend: AnyObject {
    /// Worker slots (fixed for the pool's life).
    var workerCount: Int { get }
    /// Whether frames carry the 8-byte length header (ring transports) or not (MPI).
    var framed: Bool { get }
    /// Whether a dead worker can be replaced (local) or ends everything (MPI).
    var canReplaceWorkers: Bool { get }
    /// Replies longer than this many bytes may reach the engine only after the worker has
    /// finished its next task (nil: every reply arrives when sent); see the default below.
    var lateReplyBytes: Int? { get }
    /// A short description for `swiftmp info` and errors.
    var summary: String { get }

    /// Starts every worker.
    func start() throws
    /// Queues a frame for `worker`; never waits.
    func send(_ frame: UnsafeRawBufferPointer, to worker: Int)
    /// Whether `worker`'s outbound queue is short enough to take more work.
    func canAccept(worker: Int) -> Bool
    /// Moves bytes without waiting and reports what arrived. Returns whether anything moved.
    func poll(_ handler: (BackendEvent) -> Void) -> Bool
    /// Sleeps until something may have arrived, `wake()` is called, `ready()` holds, or the
    /// timeout passes.
    func waitForActivity(spinning: Bool, timeoutNanoseconds: Int64, ready: () -> Bool)
    /// The engine's estimate of how often a busy worker replies (ns; 0: unknown), given
    /// before `waitForActivity`; see the default below.
    func pace(replyEvery nanoseconds: Int64)
    /// Wakes `waitForActivity` from another thread.
    func wake()
    /// Sleeps while nothing is in flight; see the default below.
    func waitIdle(timeoutNanoseconds: Int64, ready: () -> Bool)
    /// Starts a new worker in `slot` after its predecessor ended.
    func replace(worker: Int) throws
    /// The identity of the worker in a slot, for `WorkerDied`.
    func identity(of worker: Int) -> WorkerDied
    /// Ends a misbehaving worker; see the default below.
    func kill(worker: Int) -> Bool
    /// Sends shared segments' descriptors to `worker`, ahead of the frames that mention them.
    func sendAttachments(_ segments: [SegmentStorage], to worker: Int) throws
    /// Ends every worker: delivers frames still queued (the `stop`s), waits up to
    /// `deadline` (monotonic ns) for the workers to exit, then kills what is left and reaps
    /// everything.
    func shutdown(deadline: UInt64)
}

extension PoolBackend {
    /// Whether a caller waiting for a result may run the engine itself (saving two thread
    /// hand-offs per call) while the pool's thread sleeps in `waitForActivity` without the
    /// engine's lock. Only for backends whose `waitForActivity` touches no state that
    /// `poll`/`send` change, and needs no exclusive use of a library (MPI does).
    var allowsCallerDriving: Bool { false }

    /// Replies arrive as soon as the worker sends them.
    var lateReplyBytes: Int? { nil }

    /// Backends woken by their workers (a doorbell) need no estimate.
    func pace(replyEvery nanoseconds: Int64) {}

    /// Sleeps while nothing is in flight: only a submission (`wake()`) or a worker's end
    /// matters then, not a worker's ordinary traffic.
    func waitIdle(timeoutNanoseconds: Int64, ready: () -> Bool) {
        waitForActivity(spinning: false, timeoutNanoseconds: timeoutNanoseconds, ready: ready)
    }

    /// Ends a misbehaving worker (its end is then reported as usual); false when the backend
    /// cannot, and the pool must break instead.
    func kill(worker: Int) -> Bool { false }

    func sendAttachments(_ segments: [SegmentStorage], to worker: Int) throws {
        guard segments.isEmpty else {
            throw PoolError(.backendUnavailable, """
                shared memory objects (locks, shared values, queues) cannot be sent to this \
                backend's workers (\(summary)); pass plain values instead
                """)
        }
    }
}

enum BackendEvent {
    /// A complete message from a worker (without frame header).
    case message(worker: Int, UnsafeRawBufferPointer)
    /// A worker ended (all its earlier messages were reported first).
    case ended(worker: Int, ChildExit)
    /// The transport failed (an MPI call returned an error): the pool is broken.
    case failed(PoolError)
}
