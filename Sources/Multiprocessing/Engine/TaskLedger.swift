/// Every task the engine has sent and not yet settled: which job's inputs it carries, which
/// worker holds it, and its number among that worker's chunks. Engine thread only.
///
/// Ids are consecutive and tasks mostly settle in about the order they were sent, so the
/// recent ones sit in a window of slots indexed by `id - windowStart` (a map of tiny tasks
/// records and settles one per chunk: hashing each id into a dictionary cost the pool's
/// thread about a twelfth of its time per chunk). A task still held once `windowLimit` newer
/// ones were recorded (a long task among many short ones) moves to `older`, a dictionary, so
/// that memory follows the tasks held, not the ids sent since the oldest of them.
struct TaskLedger {
    struct Task {
        let id: UInt64
        /// nil for a worker's initializer.
        let job: Job?
        let span: InputSpan
        let worker: Int
        /// Its number among the chunks sent to this worker (`WorkerProgress`).
        let chunk: UInt32
    }

    static let windowLimit = 1024

    /// `window[i]` is the task with id `windowStart + i`, nil once settled (or moved to `older`).
    private var window: [Task?] = []
    private var windowStart: UInt64 = 1
    /// Slots before it are all nil.
    private var windowHead = 0
    private var older: [UInt64: Task] = [:]
    private(set) var count = 0
    private var nextID: UInt64 = 1

    var isEmpty: Bool { count == 0 }

    /// The id the next task gets (ids start at 1; 0 is every worker's initializer).
    var upcomingID: UInt64 { nextID }

    mutating func record(job: Job?, span: InputSpan, worker: Int, chunk: UInt32) -> Task {
        let id = job == nil ? 0 : nextID
        let task = Task(id: id, job: job, span: span, worker: worker, chunk: chunk)
        guard job != nil else { return task }
        nextID += 1
        window.append(task)
        count += 1
        advance()
        return task
    }

    /// The window slot of `id`, if it falls in the window.
    private func slot(of id: UInt64) -> Int? {
        guard id >= windowStart, id - windowStart < UInt64(window.count) else { return nil }
        return Int(id - windowStart)
    }

    /// (A task moved to `older` leaves its slot nil, in the window until the front is dropped.)
    subscript(id: UInt64) -> Task? {
        if let slot = slot(of: id), let task = window[slot] { return task }
        return older[id]
    }

    /// Removes the task `id` if `worker` holds it.
    mutating func settle(_ id: UInt64, from worker: Int) -> Task? {
        if let slot = slot(of: id), let task = window[slot] {
            guard task.worker == worker else { return nil }
            window[slot] = nil
            count -= 1
            advance()
            return task
        }
        guard let task = older[id], task.worker == worker else { return nil }
        older.removeValue(forKey: id)
        count -= 1
        return task
    }

    /// Moves the window's head past settled slots (and past a task held too long, into
    /// `older`), and drops the settled front once it is half the window (amortised: each slot
    /// is moved at most once per halving).
    private mutating func advance() {
        while windowHead < window.count {
            if window[windowHead] == nil {
                windowHead += 1
            } else if window.count - windowHead > Self.windowLimit {
                older[windowStart + UInt64(windowHead)] = window[windowHead]
                window[windowHead] = nil
                windowHead += 1
            } else {
                break
            }
        }
        if windowHead >= 64 && 2 * windowHead >= window.count {
            window.removeFirst(windowHead)
            windowStart += UInt64(windowHead)
            windowHead = 0
        }
    }

    mutating func removeAll() {
        windowStart += UInt64(window.count)
        window.removeAll()
        windowHead = 0
        older.removeAll()
        count = 0
    }

    /// Whether any task of `job` is held by a worker.
    func holds(_ job: Job) -> Bool {
        window[windowHead...].contains { $0?.job === job } || older.values.contains { $0.job === job }
    }

    /// Slots in the window and tasks in `older` (tests: memory follows the tasks held).
    var storage: (window: Int, older: Int) { (window.count, older.count) }
}
