/// `Lock`'s (and `RLock`'s) operations on a lock served by rank 0. A lock acquired by a worker rank's task
/// is owned by that rank; one acquired on rank 0 by the acquiring thread.
struct MPIServedLock: Sendable {
    let object: MPIServedObject

    /// `recursive`: an `RLock`'s.
    init(recursive: Bool = false) {
        object = MPIServedObject(id: MPIObjectRegistry.shared.makeLock(recursive: recursive))
    }

    init(id: UInt64) {
        object = MPIServedObject(id: id)
    }

    func acquire(timeout: Double?) throws(SynchronizationError) -> Lock.Acquisition {
        do {
            if object.isLocal {
                switch try MPIObjectRegistry.shared.lockAcquire(object.id, by: .currentThread, deadline: deadline(after: timeout)) {
                case .acquired: return .acquired
                case .timedOut: return .timedOut
                case .alreadyHeld:
                    throw SynchronizationError(.wouldDeadlock, "this thread already holds the Lock: acquiring it again would "
                        + "wait for ever; release it first")
                }
            }
            let reply = try object.call(.lockAcquire, timeout: timeout)
            switch reply.status {
            case .ok: return .acquired
            case .timedOut: return .timedOut
            default: throw SynchronizationError(.wouldDeadlock, MPIObjectClient.message(reply))
            }
        } catch let error as SynchronizationError {
            throw error
        } catch {
            throw SynchronizationError(.systemCall, "cannot acquire a Lock served by rank 0: \(error)")
        }
    }

    func release() throws(SynchronizationError) {
        do {
            if object.isLocal {
                guard try MPIObjectRegistry.shared.lockRelease(object.id, by: .currentThread) else {
                    throw SynchronizationError(.notHeld, "release() of a Lock this thread does not hold: only the thread that "
                        + "acquired it may release it")
                }
                return
            }
            let reply = try object.call(.lockRelease)
            if reply.status != .ok { throw SynchronizationError(.notHeld, MPIObjectClient.message(reply)) }
        } catch let error as SynchronizationError {
            throw error
        } catch {
            throw SynchronizationError(.systemCall, "cannot release a Lock served by rank 0: \(error)")
        }
    }

    /// (locked by anyone, held by the caller); a worker that cannot reach rank 0 ends the job.
    var state: (locked: Bool, mine: Bool) {
        object.orAbort(reading: "lock state") {
            if object.isLocal { return try MPIObjectRegistry.shared.lockState(object.id, for: .currentThread) }
            let reply = try object.call(.lockState)
            return (reply.payload.first == 1, reply.payload.dropFirst().first == 1)
        }
    }
}
