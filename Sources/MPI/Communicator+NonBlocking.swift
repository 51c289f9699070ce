import CMPI

extension Communicator {
    /// Starts sending a copy of `values` to `destination` and returns at once.
    ///
    /// The corresponding MPI function is `MPI_Isend`.
    public func isend<T: MPIDatatypeRepresentable>(_ values: [T], to destination: Int, tag: Int = 0) throws(MPIError) -> Request {
        let storage = UnsafeMutableRawBufferPointer.allocate(
            byteCount: max(1, values.count * MemoryLayout<T>.stride), alignment: MemoryLayout<T>.alignment)
        values.withUnsafeBytes { storage.copyMemory(from: $0) }
        return try isend(storage: storage, count: values.count, datatype: T.mpiDatatype, to: destination, tag: tag)
    }

    /// Starts sending a copy of `value` to `destination` and returns at once.
    ///
    /// The corresponding MPI function is `MPI_Isend`.
    public func isend<T: MPIDatatypeRepresentable>(_ value: T, to destination: Int, tag: Int = 0) throws(MPIError) -> Request {
        try isend([value], to: destination, tag: tag)
    }

    /// Starts sending a copy of `bytes` (`MPI_BYTE`) to `destination` and returns at once.
    ///
    /// The corresponding MPI function is `MPI_Isend`.
    public func isend(_ bytes: UnsafeRawBufferPointer, to destination: Int, tag: Int = 0) throws(MPIError) -> Request {
        let storage = UnsafeMutableRawBufferPointer.allocate(byteCount: max(1, bytes.count), alignment: 16)
        if !bytes.isEmpty { storage.copyMemory(from: bytes) }
        return try isend(storage: storage, count: bytes.count, datatype: cmpi_byte(), to: destination, tag: tag)
    }

    /// Starts sending a copy of `header` followed by `body` (`MPI_BYTE`) as one message and
    /// returns at once: one copy, no intermediate buffer.
    ///
    /// The corresponding MPI function is `MPI_Isend`.
    public func isend(
        _ header: UnsafeRawBufferPointer, _ body: UnsafeRawBufferPointer, to destination: Int,
        tag: Int = 0
    ) throws(MPIError) -> Request {
        let count = header.count + body.count
        let storage = UnsafeMutableRawBufferPointer.allocate(byteCount: max(1, count), alignment: 16)
        if !header.isEmpty { storage.copyMemory(from: header) }
        if !body.isEmpty { UnsafeMutableRawBufferPointer(rebasing: storage[header.count...]).copyMemory(from: body) }
        return try isend(storage: storage, count: count, datatype: cmpi_byte(), to: destination, tag: tag)
    }

    private func isend(storage: UnsafeMutableRawBufferPointer, count: Int, datatype: MPI_Datatype, to destination: Int, tag: Int) throws(MPIError) -> Request {
        var handle: MPI_Request? = nil
        let code: Int32
        do {
            code = MPI_Isend(
                storage.baseAddress, try mpiInt32(count, "MPI_Isend", what: "count"), datatype,
                try mpiInt32(destination, "MPI_Isend", what: "destination rank"),
                try mpiInt32(tag, "MPI_Isend", what: "tag"), self.handle, &handle)
        } catch {
            storage.deallocate()
            throw error
        }
        if code != MPI_SUCCESS {
            storage.deallocate()
            throw MPIError(code: code, function: "MPI_Isend")
        }
        return Request(handle: handle, storage: storage)
    }

    /// Starts receiving at most `capacity` values of `type`; `wait()` on the result returns
    /// them.
    ///
    /// The corresponding MPI function is `MPI_Irecv`.
    public func irecv<T: MPIDatatypeRepresentable>(_ type: T.Type, capacity: Int, from source: Source = .any, tag: Tag = .any) throws(MPIError)
        -> ReceiveRequest<T>
    {
        let count = try mpiInt32(capacity, "MPI_Irecv", what: "count")
        let storage = UnsafeMutableRawBufferPointer.allocate(
            byteCount: max(1, capacity * MemoryLayout<T>.stride), alignment: MemoryLayout<T>.alignment)
        var handle: MPI_Request? = nil
        let code = MPI_Irecv(storage.baseAddress, count, T.mpiDatatype, source.rawValue, tag.rawValue, self.handle, &handle)
        if code != MPI_SUCCESS {
            storage.deallocate()
            throw MPIError(code: code, function: "MPI_Irecv")
        }
        return ReceiveRequest(request: Request(handle: handle, storage: storage), capacity: capacity)
    }
}
