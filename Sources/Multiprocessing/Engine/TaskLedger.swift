/// Every task the engine has sent and not yet settled: which job's inputs it carries, which
/// worker holds it, and its number among that worker's chunks. Engine thread only.
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

    private var tasks: [UInt64: Task] = [:]
    private var nextID: UInt64 = 1

    var isEmpty: Bool { tasks.isEmpty }
    var count: Int { tasks.count }

    /// The id the next task gets (ids start at 1; 0 is every worker's initializer).
    var upcomingID: UInt64 { nextID }

    mutating func record(job: Job?, span: InputSpan, worker: Int, chunk: UInt32) -> Task {
        let id = job == nil ? 0 : nextID
        if job != nil { nextID += 1 }
        let task = Task(id: id, job: job, span: span, worker: worker, chunk: chunk)
        if job != nil { tasks[id] = task }
        return task
    }

    subscript(id: UInt64) -> Task? { tasks[id] }

    /// Removes the task `id` if `worker` holds it.
    mutating func settle(_ id: UInt64, from worker: Int) -> Task? {
        guard let task = tasks[id], task.worker == worker else { return nil }
        tasks.removeValue(forKey: id)
        return task
    }

    mutating func removeAll() { tasks.removeAll() }

    /// Whether any task of `job` is held by a worker.
    func holds(_ job: Job) -> Bool { tasks.values.contains { $0.job === job } }
}
