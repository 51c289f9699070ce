/// The engine's view of each worker slot: what it was sent and in which order, how fast it
/// answers, and what it was killed for. Engine thread only.
struct WorkerTable {
    struct Slot {
        /// Tasks sent and not yet answered, in the order sent (= the order it takes them).
        var tasks: [UInt64] = []
        /// Chunk messages sent to the worker now in this slot (numbering its chunks from 1).
        var sent: UInt32 = 0
        var initialized = false
        /// The chunk number of the initializer's chunk, while it may still be unanswered.
        var initializerChunk: UInt32?
        var tasksAssigned = 0
        var retiring = false
        /// Runs an exclusive job's task (see `Job.exclusive`).
        var exclusive = false
        var completedSinceStart = 0
        var lastReply: UInt64 = 0
        var serviceNanoseconds: Double = 0
        /// The last time between two replies (or from dispatch to the first).
        var lastServiceNanoseconds: Double = 0
        /// For a scheduling slot: how many chunks per process its next bundle carries.
        var bundleChunksPerLane = 1
        /// The length of the worker's last result (see `PoolBackend.lateReplyBytes`).
        var lastReplyBytes = 0
        var sentSegments: Set<SegmentID> = []
        /// Which input the worker was last seen running and since when (for time limits).
        var observed: (task: UInt64, input: Int, since: UInt64)?
        /// Why the engine killed this worker, if it did: decides what its running input fails with.
        var killedFor: KillReason?
        /// Whether the worker holds a chunk it does not take (see `PoolEngine`, "wedged workers").
        var wedgeWatch = WedgeWatch()
        /// Set while the slot has no worker: its replacement failed for a reason that may pass
        /// (see `PoolEngine`, "vacant slots"), or was asked of the process hosting the slot and
        /// not confirmed yet (`Vacancy.awaitingStart`).
        var vacancy: Vacancy?

        /// Whether the slot is sent nothing: vacant, and no start asked for. A slot whose start
        /// was asked for is sent work at once, as a slot whose worker runs (the hosting rank
        /// queues it behind the start; if the start fails there, the rank drops it and the
        /// engine runs it elsewhere, `PoolEngine.startFailed`).
        var isVacant: Bool { vacancy.map { !$0.awaitingStart } ?? false }
    }

    /// A slot whose replacement worker could not be started yet.
    struct Vacancy: Equatable {
        /// When the first start failed.
        var since: UInt64
        /// When the engine tries again.
        var retryAt: UInt64
        var failures: Int
        /// What the last start threw.
        var reason: String
        /// A start was asked for and the backend has not said yet whether it ran
        /// (`ReplacementStart.requested`): `retryAt` does not apply, and the slot is sent work.
        var awaitingStart = false

        /// The pause after `failures` failed starts in a row: 10 ms, doubling, at most 1 s.
        static func pause(afterFailures failures: Int) -> UInt64 {
            min(10_000_000 << UInt64(min(failures - 1, 7)), 1_000_000_000)
        }
    }

    enum KillReason: Equatable {
        case timedOut(task: UInt64, input: Int, limit: UInt64)
        case cancelled
        /// It did not take the chunk it was handed for the engine's `wedgeNanoseconds`, using
        /// next to no CPU meanwhile: nothing of its was running, so no input is charged.
        case wedged
        /// Its initializer ran past the time limit of the first task waiting for it: nothing
        /// of the tasks was running, so no input is charged (they run elsewhere).
        case stuckInInitializer(limit: UInt64)
    }

    private(set) var slots: [Slot]

    init(count: Int) {
        slots = Array(repeating: Slot(), count: count)
    }

    var indices: Range<Int> { slots.indices }

    /// Read and modified in place (a `get` would copy the slot — and retain its collections —
    /// at every field read in the dispatch loop).
    subscript(worker: Int) -> Slot {
        _read { yield slots[worker] }
        _modify { yield &slots[worker] }
    }

    /// A new worker in this slot.
    mutating func reset(_ worker: Int) {
        slots[worker] = Slot()
    }

    /// Records a reply from `worker` now: its service-time estimate.
    mutating func noteReply(from worker: Int, now: UInt64) {
        let elapsed = Double(now &- slots[worker].lastReply)
        slots[worker].lastReply = now
        let old = slots[worker].serviceNanoseconds
        slots[worker].serviceNanoseconds = old == 0 ? elapsed : old * 0.8 + elapsed * 0.2
        slots[worker].lastServiceNanoseconds = elapsed
        slots[worker].completedSinceStart += 1
    }

    /// How many chunks a worker should hold: enough to hide a round trip for tiny tasks (the
    /// backend's `pipelineNanoseconds` of them), one
    /// when tasks are long or their length unknown (so that no input waits behind a long task
    /// while another worker is free; what waits can also be withdrawn, see `PoolEngine`). One
    /// more while its results are long enough to arrive late (`PoolBackend.lateReplyBytes`):
    /// the engine then learns that a task is done only when the worker has finished the next
    /// one.
    func depth(for worker: Int, lateReplyBytes: Int?, pipelineNanoseconds: Int64 = 200_000) -> Int {
        let service = slots[worker].serviceNanoseconds
        let last = slots[worker].lastServiceNanoseconds
        let late = lateReplyBytes.map { slots[worker].lastReplyBytes > $0 } ?? false
        // Long only if the average and the last interval both say so: one slow reply (the
        // engine's own thread descheduled on a full machine) must not starve a worker of
        // short tasks until the average recovers.
        let recent = last > 0 ? min(service, last) : service
        let base: Int
        if service <= 0 || recent > 2_000_000 {
            base = 1
        } else {
            base = max(2, min(64, Int(Double(pipelineNanoseconds) / service) + 1))
        }
        return late ? base + 1 : base
    }

    /// How soon a reply can be expected: over the workers with tasks in flight, the shortest
    /// recent time between replies (the smaller of the moving average and the last interval,
    /// so one quick reply after long tasks counts at once) — or, when a worker has been
    /// silent longer than that (or has no history yet), how long it has been silent.
    /// `smoothed` (slots that schedule inputs, answering bundles): the moving average alone —
    /// two bundles answered back to back say nothing of how soon the next answer comes.
    func replyInterval(now: UInt64, smoothed: Bool = false) -> Int64 {
        var shortest = Double.infinity
        for slot in slots where !slot.tasks.isEmpty {
            let average = slot.serviceNanoseconds
            let recent = average > 0 ? (smoothed ? average : min(average, slot.lastServiceNanoseconds)) : 0
            let silent = Double(now &- slot.lastReply)
            shortest = min(shortest, max(recent, silent))
        }
        return shortest.isFinite ? Int64(shortest) : 0
    }
}
