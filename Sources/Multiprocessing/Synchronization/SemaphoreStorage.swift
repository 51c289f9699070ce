/// What `Semaphore` and `BoundedSemaphore` share: a counter in a shared segment with a futex,
/// or — created on rank 0 of an mpirun job with worker ranks — a semaphore rank 0 serves
/// over MPI messages. The two public types differ only in `bounded`.
struct SemaphoreStorage: Codable, Sendable {
    private let local: SemaphoreCore?
    private let served: MPIServedSemaphore?
    /// "Semaphore" or "BoundedSemaphore", for messages.
    private let kind: String

    var core: SemaphoreCore { local! }
    var segment: SharedSegment? { local?.segment }

    init(value: Int, bounded: Bool, kind: String) throws {
        self.kind = kind
        if MPIObjects.isServing {
            guard value >= 0 else {
                throw SynchronizationError(.invalidArgument, "a \(kind) needs a value of 0 or more, not \(value)")
            }
            local = nil
            served = MPIServedSemaphore(value: value, bounded: bounded)
            return
        }
        local = try SemaphoreCore(value: value, bounded: bounded, kind: kind)
        served = nil
    }

    init(from decoder: any Decoder, kind: String) throws {
        self.kind = kind
        switch try ServedOrLocalCoding.decode(kind: kind, from: decoder) {
        case .served(let id):
            local = nil
            served = MPIServedSemaphore(id: id)
        case .local(let segment):
            local = SemaphoreCore(segment: segment)
            served = nil
        }
    }

    init(from decoder: any Decoder) throws {
        try self.init(from: decoder, kind: "Semaphore")
    }

    func encode(to encoder: any Encoder) throws {
        try ServedOrLocalCoding.encode(servedID: served?.object.id, segment: local?.segment, kind: kind, to: encoder)
    }

    func acquire(blocking: Bool, timeout: Double?) -> Bool {
        if let served { return served.acquire(timeout: blocking ? timeout : 0) }
        return core.acquire(blocking: blocking, timeout: timeout)
    }

    func release(_ count: Int) throws(SynchronizationError) {
        // Checked here for a served semaphore too: rank 0 would take a negative count off its
        // value, and overflow on a huge one (ending the job).
        try SemaphoreCore.checkReleaseCount(count, kind: kind)
        if let served { return try served.release(count) }
        try core.release(count, kind: kind)
    }

    var value: Int { served?.value ?? core.currentValue }
}
