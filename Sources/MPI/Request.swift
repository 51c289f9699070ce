import CMPI

/// A send or receive in progress, started by `isend` or `irecv`.
///
/// The request owns the memory the operation reads or writes, so the caller's values may
/// change or go away at once. A request is used from one thread at a time. Dropping one that
/// has not completed cancels it (a send may still be delivered) and leaks its buffer, which MPI
/// might still touch — wait for requests instead.
public final class Request: @unchecked Sendable {
    @usableFromInline var handle: MPI_Request?
    @usableFromInline let storage: UnsafeMutableRawBufferPointer
    @usableFromInline var completedStatus: Status?

    @usableFromInline
    init(handle: MPI_Request?, storage: UnsafeMutableRawBufferPointer) {
        self.handle = handle
        self.storage = storage
    }

    /// Whether the operation has completed (a `wait` or `test` saw it finish).
    public var isComplete: Bool { completedStatus != nil }

    /// Blocks until the operation completes and returns its status (for a send, the status
    /// carries no useful fields).
    ///
    /// The corresponding MPI function is `MPI_Wait`.
    @discardableResult
    public func wait() throws(MPIError) -> Status {
        if let completedStatus { return completedStatus }
        var status = MPI_Status()
        try check("MPI_Wait", MPI_Wait(&handle, &status))
        let result = Status(status)
        completedStatus = result
        return result
    }

    /// The status if the operation has completed, or nil at once if it has not.
    ///
    /// The corresponding MPI function is `MPI_Test`.
    public func test() throws(MPIError) -> Status? {
        if let completedStatus { return completedStatus }
        var status = MPI_Status()
        var flag: Int32 = 0
        try check("MPI_Test", MPI_Test(&handle, &flag, &status))
        guard flag != 0 else { return nil }
        let result = Status(status)
        completedStatus = result
        return result
    }

    /// Waits for every request in turn and returns their statuses in order.
    ///
    /// The corresponding MPI function is `MPI_Wait`.
    @discardableResult
    public static func waitAll(_ requests: [Request]) throws(MPIError) -> [Status] {
        var statuses: [Status] = []
        statuses.reserveCapacity(requests.count)
        for request in requests { statuses.append(try request.wait()) }
        return statuses
    }

    deinit {
        if completedStatus == nil, let pending = handle, pending != cmpi_request_null(),
            MPIEnvironment.isInitialized, !MPIEnvironment.isFinalized
        {
            var h: MPI_Request? = pending
            MPI_Cancel(&h)
            MPI_Request_free(&h)
            return // MPI may still write into `storage`: leak it rather than free it.
        }
        storage.deallocate()
    }
}

/// A receive in progress, started by `irecv`; its `wait` returns the values.
public final class ReceiveRequest<T: MPIDatatypeRepresentable>: @unchecked Sendable {
    /// The underlying request.
    public let request: Request
    private let capacity: Int

    init(request: Request, capacity: Int) {
        self.request = request
        self.capacity = capacity
    }

    /// Blocks until the message has arrived and returns its values and status.
    ///
    /// The corresponding MPI function is `MPI_Wait`.
    public func wait() throws(MPIError) -> (elements: [T], status: Status) {
        let status = try request.wait()
        return (try elements(status), status)
    }

    /// The values and status if the message has arrived, or nil at once.
    ///
    /// The corresponding MPI function is `MPI_Test`.
    public func test() throws(MPIError) -> (elements: [T], status: Status)? {
        guard let status = try request.test() else { return nil }
        return (try elements(status), status)
    }

    private func elements(_ status: Status) throws(MPIError) -> [T] {
        let count = min(try status.count(of: T.self), capacity)
        return Array(request.storage.bindMemory(to: T.self).prefix(count))
    }
}
