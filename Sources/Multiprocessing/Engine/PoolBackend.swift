/// What the engine needs from a backend: a way to send messages to worker slots, to learn
/// of replies and of workers that ended, and to start, stop, kill or replace workers. The
/// public API never mentions a backend; `Pool` picks one at run time.
///
/// Messages travel as the engine wrote them (after `MessageBuffer.headroom` bytes the
/// backend may use for its own header); replies are decoded with the shared codec
/// (`WorkerReply.decode`) and reported as typed events.
protocol PoolBackend: AnyObject {
    /// Worker slots (fixed for the pool's life).
    var workerCount: Int { get }
    /// Whether a dead worker can be replaced (local) or ends everything (MPI).
    var canReplaceWorkers: Bool { get }
    /// Replies longer than this many bytes may reach the engine only after the worker has
    /// finished its next task (nil: every reply arrives when sent).
    var lateReplyBytes: Int? { get }
    /// How long a task takes to reach an idle worker and its answer to come back (ns): the
    /// engine keeps this much of short tasks queued at each worker (`WorkerTable.depth`).
    var pipelineNanoseconds: Int64 { get }
    /// How long an idle engine may go without a round while callers drive it
    /// (`EngineBaton`): the backend's duties between calls (MPI: rank 0 serves objects).
    var idleCheckNanoseconds: Int64 { get }
    /// A short description for `swiftmp info` and errors (`Pool.backendSummary`).
    var summary: String { get }

    /// Starts every worker.
    func start() throws
    /// Queues the message in `message` (with headroom) for `worker`; never waits. The
    /// backend may write into the headroom.
    func send(_ message: inout WireWriter, to worker: Int)
    /// Sends what `send` queued: a backend may gather the messages of one engine round for one
    /// destination into one transport message (MPI). The engine calls it at the end of every
    /// round that may have sent; the backend also flushes before it waits.
    func flush()
    /// Tells `worker` to finish what it holds and exit (`MasterMessage.stop`).
    func stop(worker: Int)
    /// Whether `worker`'s outbound queue is short enough to take more work.
    func canAccept(worker: Int) -> Bool
    /// Moves bytes without waiting and reports what arrived. Returns whether anything moved.
    func poll(_ handler: (BackendEvent) -> Void) -> Bool
    /// Sleeps until something may have arrived, `wake()` is called, `ready()` holds, or the
    /// timeout passes.
    func waitForActivity(spinning: Bool, timeoutNanoseconds: Int64, ready: () -> Bool)
    /// The engine's estimate of how often a busy worker replies (ns; 0: unknown), given
    /// before `waitForActivity` (backends that are woken by their workers ignore it).
    func pace(replyEvery nanoseconds: Int64)
    /// Wakes `waitForActivity` or `waitIdle` from another thread.
    func wake()
    /// Sleeps while nothing is in flight: only a submission (`wake()`) or a worker's end
    /// matters then, not a worker's ordinary traffic.
    func waitIdle(timeoutNanoseconds: Int64, ready: () -> Bool)
    /// Starts a new worker in `slot` after its predecessor ended, or asks whoever hosts the
    /// slot to (`ReplacementStart`).
    func replace(worker: Int) throws -> ReplacementStart
    /// The identity of the worker in a slot, for `WorkerDied`.
    func identity(of worker: Int) -> WorkerDied
    /// Ends a worker now (its end is then reported as usual); false when the backend
    /// cannot (an MPI rank).
    func kill(worker: Int) -> Bool
    /// The progress words the worker in a slot shares with the engine (`WorkerProgress`),
    /// or nil when the engine cannot see the worker's memory (MPI): it then assumes a worker
    /// runs its oldest task, and cannot withdraw chunks.
    func progress(of worker: Int) -> WorkerProgress?
    /// After `worker` ended, its progress words as they were then, when the backend learnt
    /// them other than through `progress(of:)` (a worker rank relays its local worker's);
    /// nil otherwise.
    func finalProgress(of worker: Int) -> (taken: UInt32, input: Int)?
    /// Whether the worker that ended in a slot was killed as wedged by whoever hosts it (an
    /// MPI worker rank watching the local workers it relays, `RankRelay`); false otherwise.
    func endedWedged(worker: Int) -> Bool
    /// The state and CPU time of the worker process in a slot, where the backend can read
    /// them; nil otherwise. The engine tells a wedged worker from a busy one with it
    /// (`PoolEngine.replaceWedgedWorkers`).
    func activity(of worker: Int) -> ProcessActivity?
    /// Whether each slot is a scheduler of several processes rather than one process (an MPI
    /// worker rank hosting local workers, `NodeScheduler`): the engine then sends a slot
    /// `bundle`s of many inputs, which the slot hands out a chunk at a time to its processes;
    /// the slot answers input by input (`outcomes`), applies the call's time limit to each input
    /// itself, replaces its own processes (`maxTasksPerChild` too) and cancels on `cancel`.
    var schedulesInputs: Bool { get }
    /// How many processes run a slot's inputs at once (1 unless `schedulesInputs`).
    func lanes(of worker: Int) -> Int
    /// Asks a scheduling slot to drop what it holds of task `task` (a cancelled call): inputs
    /// not started fail as cancelled, a process running one is killed; the slot still answers
    /// the task.
    func cancel(task: UInt64, on worker: Int)
    /// How many worker processes the pool has (`Pool.processes`): the slots, or the processes
    /// behind them.
    var processCount: Int { get }
    /// Which process is in each worker place (pid, rank, host).
    func placements() -> [WorkerPlacement]
    /// Sends shared segments' descriptors to `worker`, ahead of the messages that mention them.
    func sendAttachments(_ segments: [SegmentStorage], to worker: Int) throws
    /// The engine killed `worker` stuck before its first task: wedged, or past a time limit
    /// while its initializer ran. A backend that forked it from a copy of the program made
    /// earlier (a `.fork` pool's template) stops using that copy: it may hold a lock.
    func killedBeforeFirstTask(worker: Int)
    /// Ends every worker: delivers messages still queued (the `stop`s), waits up to
    /// `deadline` (monotonic ns) for the workers to exit, then kills what is left and reaps
    /// everything.
    func shutdown(deadline: UInt64)
}

extension PoolBackend {
    var schedulesInputs: Bool { false }
    func lanes(of worker: Int) -> Int { 1 }
    func cancel(task: UInt64, on worker: Int) {}
    var processCount: Int { workerCount }
    func placements() -> [WorkerPlacement] {
        (0..<workerCount).map { slot in
            let identity = self.identity(of: slot)
            return WorkerPlacement(slot: slot, pid: identity.pid, rank: identity.rank, host: identity.host)
        }
    }
    func flush() {}
    func activity(of worker: Int) -> ProcessActivity? { nil }
    func endedWedged(worker: Int) -> Bool { false }
    func killedBeforeFirstTask(worker: Int) {}
    /// A local worker answers within this: the rings wake it at once.
    var pipelineNanoseconds: Int64 { 200_000 }
    /// A local pool has nothing to do between calls: a worker's end is handled at the next.
    var idleCheckNanoseconds: Int64 { 50_000_000 }
}

/// What `PoolBackend.replace` did.
enum ReplacementStart {
    /// The new worker runs.
    case started
    /// The start was asked of the process that hosts the slot (an MPI worker rank, `RankRelay`):
    /// whether it started comes later, as `BackendEvent.started` or `.notStarted`. The engine
    /// sends the slot nothing meanwhile (see `PoolEngine`, "vacant slots").
    case requested
}

enum BackendEvent {
    /// A decoded message from a worker.
    case reply(worker: Int, WorkerReply)
    /// A worker sent bytes the codec cannot read: the engine ends it like a crashed one.
    case malformed(worker: Int, any Error)
    /// A worker ended (all its earlier messages were reported first).
    case ended(worker: Int, ChildExit)
    /// The transport failed (an MPI call returned an error): the pool is broken.
    case failed(PoolError)
    /// A worker whose start was `requested` runs.
    case started(worker: Int)
    /// A worker whose start was `requested` could not start: why (`PoolEngine.mayPass` tells
    /// whether it may start later).
    case notStarted(worker: Int, any Error)
}

extension BackendEvent {
    /// The event for a message (without headroom) from `worker`.
    static func decoding(_ bytes: UnsafeRawBufferPointer, from worker: Int) -> BackendEvent {
        do {
            return .reply(worker: worker, try WorkerReply.decode(bytes))
        } catch {
            return .malformed(worker: worker, error)
        }
    }
}

/// A worker's start that failed in another process (an MPI worker rank, `RankRelay`): the
/// `errno` it failed with there (0: not a system call's failure) and what that process said.
struct RemoteStartFailure: Error, CustomStringConvertible {
    var errno: Int32
    var description: String
}

/// A backend without shared memory refuses shared segments with this error.
func refusingAttachments(_ segments: [SegmentStorage], summary: String) throws {
    guard segments.isEmpty else {
        throw PoolError(
            .backendUnavailable,
            """
            shared memory objects (locks, shared values, queues) cannot be sent to this \
            backend's workers (\(summary)); pass plain values instead
            """)
    }
}
