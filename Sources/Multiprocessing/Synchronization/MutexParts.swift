/// What `Lock` and `RLock` are made of: a robust mutex in its own shared segment, or —
/// created on rank 0 of an mpirun job with worker ranks — a lock rank 0 serves by messages.
enum MutexParts {
    typealias Parts = (segment: SharedSegment?, mutex: SharedMutex?, served: MPIServedLock?)

    /// A new, unlocked mutex of `kind` (`name` for error messages: "a Lock", "an RLock").
    static func make(kind: SharedMutex.Kind, name: String) throws -> Parts {
        if MPIObjects.isServing {
            return (nil, nil, MPIServedLock(recursive: kind == .recursive))
        }
        let segment = try SharedSegment(size: SharedMutex.byteCount)
        do {
            return (segment, try SharedMutex.initialize(at: segment.base, kind: kind), nil)
        } catch {
            throw SynchronizationError(error, "cannot initialise \(name)")
        }
    }

    static func decode(kind: String, from decoder: any Decoder) throws -> Parts {
        switch try ServedOrLocalCoding.decode(kind: kind, from: decoder) {
        case .served(let id): return (nil, nil, MPIServedLock(id: id, kind: kind))
        case .local(let segment): return (segment, SharedMutex(at: segment.base), nil)
        }
    }
}
