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
    public func receiveIfAvailable(from source: Source = .any, tag: Tag = .any,
                                   into buffer: inout [UInt8]) throws(MPIError) -> Status? {
        var message: MPI_Message? = nil
        var flag: Int32 = 0
        var probed = MPI_Status()
        try check("MPI_Improbe", MPI_Improbe(source.rawValue, tag.rawValue, handle, &flag, &message, &probed))
        guard flag != 0 else { return nil }
        let count = try Status(probed).count(datatype: cmpi_byte())
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
