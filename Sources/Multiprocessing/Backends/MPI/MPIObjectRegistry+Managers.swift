import Wire

/// One `Manager` rank 0 serves in process: the same table of dicts, lists and namespaces a
/// manager server process holds, changed by the same code (`ManagerServer.handle`). Guarded
/// by the registry's lock.
final class ManagerStore {
    var objects: [UInt64: ManagerServer.Object] = [:]
    var nextID: UInt64 = 1
}

/// Rank 0's served managers: rank 0's proxies run their requests here directly (under the
/// registry's lock), worker ranks' proxies send the same request bytes as a `managerRequest`.
/// Requests never wait, so nothing is parked.
extension MPIObjectRegistry {
    func makeManager() -> UInt64 {
        lock.withLock { () -> UInt64 in
            let id = newID()
            managers[id] = ManagerStore()
            return id
        }
    }

    /// Drops the manager's objects; its proxies' requests fail with `ManagerError(.unavailable)`.
    func shutdownManager(_ id: UInt64) {
        lock.withLock {
            if managers.removeValue(forKey: id) != nil { closedManagers.insert(id) }
        }
    }

    /// Rank 0's request: the reply ([status][result]) a manager server would send.
    func managerRequest(_ id: UInt64, _ request: [UInt8]) throws(ManagerError) -> [UInt8] {
        lock.lock()
        defer { lock.unlock() }
        return try runManager(id, request).get()
    }

    /// Under `lock`: a worker's request.
    func attemptManager(_ entry: Parked) -> [UInt8] {
        switch runManager(entry.id, entry.payload) {
        case .success(let reply): MPIObjectProtocol.reply(.ok, reply)
        case .failure(let error): MPIObjectProtocol.failure(.refused, error.message)
        }
    }

    /// Under `lock`.
    private func runManager(_ id: UInt64, _ request: [UInt8]) -> Result<[UInt8], ManagerError> {
        guard let store = managers[id] else {
            return .failure(ManagerError(.unavailable, closedManagers.contains(id)
                ? "the manager has shut down (rank 0 of the mpirun job served it; shutdown() or dropping the Manager ends it)"
                : "rank 0 serves no manager with id \(id) (it was not created by rank 0 of this mpirun job)"))
        }
        var writer = WireWriter(capacity: 64)
        if ManagerServer.handle(request, objects: &store.objects, nextID: &store.nextID, into: &writer) {
            managers.removeValue(forKey: id)
            closedManagers.insert(id)
        }
        return .success(writer.bytes)
    }
}
