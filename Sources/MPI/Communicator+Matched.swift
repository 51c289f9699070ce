import CMPI

extension Communicator {
    /// Receives a whole message of any length into `buffer` if one has arrived, or returns nil
    /// at once. `buffer` is resized to the message's length and its storage is reused from call
    /// to call, so a polling loop does not allocate per message.
    ///
    /// It probes and receives the *same* message (a matched probe), so another receive cannot
    /// take it in between.
    ///
    /// The corresponding MPI functions are `MPI_Improbe`, `MPI_Get_count` and `MPI_Mrecv`.
    public func receiveIfAvailable(
        from source: Source = .any, tag: Tag = .any,
        into buffer: inout [UInt8]
    ) throws(MPIError) -> Status? {
        guard let probed = try probeMatched(source, tag) else { return nil }
        var message = probed.message
        return try receiveMatched(&message, count: try probed.status.count(datatype: cmpi_byte()), into: &buffer)
    }

    /// `MPI_Improbe`: the message that has arrived (now matched: no other receive can take
    /// it) and its status, or nil.
    private func probeMatched(_ source: Source, _ tag: Tag) throws(MPIError) -> (message: MPI_Message?, status: Status)? {
        var message: MPI_Message? = nil
        var flag: Int32 = 0
        var probed = MPI_Status()
        try check("MPI_Improbe", MPI_Improbe(source.rawValue, tag.rawValue, handle, &flag, &message, &probed))
        return flag != 0 ? (message, Status(probed)) : nil
    }

    /// `MPI_Mrecv` of the matched `message` (`count` bytes) into `buffer`, resized to
    /// `count` with its storage reused.
    private func receiveMatched(_ message: inout MPI_Message?, count: Int, into buffer: inout [UInt8]) throws(MPIError) -> Status {
        if buffer.count > count {
            buffer.removeLast(buffer.count - count)
        } else if buffer.count < count {
            buffer.append(contentsOf: repeatElement(0, count: count - buffer.count))
        }
        var status = MPI_Status()
        let code = buffer.withUnsafeMutableBytes { bytes in
            MPI_Mrecv(bytes.baseAddress, Int32(count), cmpi_byte(), &message, &status)
        }
        try check("MPI_Mrecv", code)
        return Status(status)
    }
}

/// A whole message being received by `Communicator.receiveIfAvailable(from:tag:into:waitingAtMost:)`: who sent it,
/// its tag and length, and the request that completes when its bytes are here.
public struct MatchedReceive: Sendable {
    /// The receive in progress; it owns the message's buffer.
    public let request: Request
    /// The sender's rank.
    public let source: Int
    /// The message's tag.
    public let tag: Int
    /// The message's length in bytes.
    public let count: Int

    /// Calls `body` with the message's bytes. Only after `request` has completed.
    public func withBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        precondition(request.isComplete, "MatchedReceive.withBytes before the receive completed")
        return try body(UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(request.storage)[0..<count]))
    }
}

/// What `Communicator.receiveIfAvailable(from:tag:into:waitingAtMost:)` found.
public enum Arrival: Sendable {
    /// A short message, received into the caller's buffer.
    case received(Status)
    /// A longer one, being received.
    case started(MatchedReceive)
}

extension Communicator {
    /// Receives a whole message of any length if one has arrived, or returns nil at once;
    /// never waits for a long message's data. A message of at most `shortLength` bytes is
    /// received into `buffer` (resized, storage reused) as by `receiveIfAvailable(from:tag:into:)`
    /// — choose a length within the transport's eager limit, whose data is all here once the
    /// message is; a longer one is started (`MPI_Imrecv`) and its bytes are readable with
    /// `withBytes` once its request has completed. (`MPI_Mrecv` blocks until every byte is
    /// here: past the eager limit the rest of a message moves only when the *sender* next
    /// calls MPI, which for a busy sender may be much later.)
    ///
    /// The corresponding MPI functions are `MPI_Improbe`, `MPI_Get_count`, and `MPI_Mrecv` or
    /// `MPI_Imrecv`.
    public func receiveIfAvailable(
        from source: Source = .any, tag: Tag = .any, into buffer: inout [UInt8],
        waitingAtMost shortLength: Int
    ) throws(MPIError) -> Arrival? {
        try receiveIfAvailable(from: source, tag: tag, into: &buffer, waitingAtMost: { _ in shortLength })
    }

    /// `receiveIfAvailable(from:tag:into:waitingAtMost:)` with the short length chosen per
    /// message by its tag: one probe for messages of several tags, each received as its tag
    /// needs (`Int.max`: always whole, as `receiveIfAvailable(from:tag:into:)` does).
    public func receiveIfAvailable(
        from source: Source = .any, tag: Tag = .any, into buffer: inout [UInt8],
        waitingAtMost shortLength: (_ tag: Int) -> Int
    ) throws(MPIError) -> Arrival? {
        guard let probed = try probeMatched(source, tag) else { return nil }
        var message = probed.message
        let status = probed.status
        let count = try status.count(datatype: cmpi_byte())
        if count <= shortLength(status.tag) {
            return .received(try receiveMatched(&message, count: count, into: &buffer))
        }
        let storage = UnsafeMutableRawBufferPointer.allocate(byteCount: max(1, count), alignment: 16)
        var request: MPI_Request? = nil
        let code = MPI_Imrecv(storage.baseAddress, Int32(count), cmpi_byte(), &message, &request)
        guard code == MPI_SUCCESS else {
            storage.deallocate()
            throw MPIError(code: code, function: "MPI_Imrecv")
        }
        return .started(
            MatchedReceive(
                request: Request(handle: request, storage: storage),
                source: status.source, tag: status.tag, count: count))
    }
}
