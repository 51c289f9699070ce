/// A `Queue` that counts unfinished tasks: every `put` adds one, every `taskDone()` removes
/// one, and `join()` waits until none is left. Python's `multiprocessing.JoinableQueue`.
///
/// ```swift
/// // consumer (in a child): let job = try jobs.get(); work(job); try jobs.taskDone()
/// try jobs.join()   // in the parent: every job was processed
/// ```
public final class JoinableQueue<Element: Codable & Sendable>: Queue<Element>, @unchecked Sendable {
    /// Marks one item got earlier as processed. Throws `QueueError(.taskDoneTooOften)` if
    /// called more times than items were put.
    public func taskDone() throws {
        if let served { return try served.taskDone() }
        try core.taskDone()
    }

    /// Waits until every item put has been marked done, at most `timeout` seconds (nil:
    /// without limit). Returns false on time-out.
    @discardableResult
    public func join(timeout: Double? = nil) throws -> Bool {
        if let served { return try served.join(timeout: timeout) }
        return try core.join(deadline: deadline(after: timeout))
    }

    /// Items put and not yet marked done.
    public var unfinishedTasks: Int { served?.unfinished ?? core.unfinishedTasks }
}
