import CMPI

extension Communicator {
    // MARK: Sending

    /// Sends `count` values of `datatype` starting at `address`; the one path every typed
    /// overload takes.
    @usableFromInline
    func send(address: UnsafeRawPointer?, count: Int, datatype: MPI_Datatype, to destination: Int, tag: Int) throws(MPIError) {
        try check(
            "MPI_Send",
            MPI_Send(
                address,
                try mpiInt32(count, "MPI_Send", what: "count"),
                datatype,
                try mpiInt32(destination, "MPI_Send", what: "destination rank"),
                try mpiInt32(tag, "MPI_Send", what: "tag"),
                handle))
    }

    /// Sends the values in `buffer` to `destination`; returns when the buffer may be reused.
    ///
    /// The corresponding MPI function is `MPI_Send`.
    @inlinable
    public func send<T: MPIDatatypeRepresentable>(_ buffer: UnsafeBufferPointer<T>, to destination: Int, tag: Int = 0) throws(MPIError) {
        try send(address: UnsafeRawPointer(buffer.baseAddress), count: buffer.count, datatype: T.mpiDatatype, to: destination, tag: tag)
    }

    /// Sends an array of values to `destination`.
    ///
    /// The corresponding MPI function is `MPI_Send`.
    @inlinable
    public func send<T: MPIDatatypeRepresentable>(_ values: [T], to destination: Int, tag: Int = 0) throws(MPIError) {
        let result = values.withUnsafeBufferPointer { buffer in
            Result { () throws(MPIError) in try send(buffer, to: destination, tag: tag) }
        }
        try result.get()
    }

    /// Sends one value to `destination`.
    ///
    /// The corresponding MPI function is `MPI_Send`.
    @inlinable
    public func send<T: MPIDatatypeRepresentable>(_ value: T, to destination: Int, tag: Int = 0) throws(MPIError) {
        var value = value
        try withUnsafePointer(to: &value) { pointer throws(MPIError) in
            try send(address: UnsafeRawPointer(pointer), count: 1, datatype: T.mpiDatatype, to: destination, tag: tag)
        }
    }

    /// Sends raw bytes (`MPI_BYTE`) to `destination`: the way to send any other
    /// `BitwiseCopyable` value, with `withUnsafeBytes(of:)`.
    ///
    /// The corresponding MPI function is `MPI_Send`.
    public func send(_ bytes: UnsafeRawBufferPointer, to destination: Int, tag: Int = 0) throws(MPIError) {
        try send(address: bytes.baseAddress, count: bytes.count, datatype: cmpi_byte(), to: destination, tag: tag)
    }

    // MARK: Receiving into a buffer

    @usableFromInline
    func receive(address: UnsafeMutableRawPointer?, count: Int, datatype: MPI_Datatype, from source: Source, tag: Tag) throws(MPIError) -> Status {
        var status = MPI_Status()
        try check(
            "MPI_Recv",
            MPI_Recv(
                address, try mpiInt32(count, "MPI_Recv", what: "count"), datatype,
                source.rawValue, tag.rawValue, handle, &status))
        return Status(status)
    }

    /// Receives at most `buffer.count` values into `buffer`; the status tells the sender, the
    /// tag and how many arrived (`status.count(of: T.self)`).
    ///
    /// - Throws: `MPIError` (`MPI_ERR_TRUNCATE`) if the message is longer than the buffer.
    ///
    /// The corresponding MPI function is `MPI_Recv`.
    @inlinable
    @discardableResult
    public func receive<T: MPIDatatypeRepresentable>(into buffer: UnsafeMutableBufferPointer<T>, from source: Source = .any, tag: Tag = .any) throws(MPIError)
        -> Status
    {
        try receive(address: UnsafeMutableRawPointer(buffer.baseAddress), count: buffer.count, datatype: T.mpiDatatype, from: source, tag: tag)
    }

    /// Receives at most `values.count` values into `values` (whose size does not change).
    ///
    /// The corresponding MPI function is `MPI_Recv`.
    @inlinable
    @discardableResult
    public func receive<T: MPIDatatypeRepresentable>(into values: inout [T], from source: Source = .any, tag: Tag = .any) throws(MPIError) -> Status {
        let result = values.withUnsafeMutableBufferPointer { buffer in
            Result { () throws(MPIError) in try receive(into: buffer, from: source, tag: tag) }
        }
        return try result.get()
    }

    /// Receives raw bytes (`MPI_BYTE`), at most `bytes.count` of them.
    ///
    /// The corresponding MPI function is `MPI_Recv`.
    @discardableResult
    public func receive(into bytes: UnsafeMutableRawBufferPointer, from source: Source = .any, tag: Tag = .any) throws(MPIError) -> Status {
        try receive(address: bytes.baseAddress, count: bytes.count, datatype: cmpi_byte(), from: source, tag: tag)
    }

    /// Receives exactly one value of `type`.
    ///
    /// The corresponding MPI function is `MPI_Recv`.
    @inlinable
    public func receive<T: MPIDatatypeRepresentable>(_ type: T.Type, from source: Source = .any, tag: Tag = .any) throws(MPIError) -> T {
        try withUnsafeTemporaryAllocation(of: T.self, capacity: 1) { buffer throws(MPIError) -> T in
            let status = try receive(address: UnsafeMutableRawPointer(buffer.baseAddress), count: 1, datatype: T.mpiDatatype, from: source, tag: tag)
            guard try status.count(of: T.self) == 1 else {
                throw MPIError(function: "MPI_Recv", message: "expected one \(T.self), received an empty message")
            }
            return buffer[0]
        }
    }

    // MARK: Messages of unknown size

    /// Waits for a matching message without receiving it and returns its status: sender, tag
    /// and size (`status.count(of:)`).
    ///
    /// The corresponding MPI function is `MPI_Probe`.
    public func probe(from source: Source = .any, tag: Tag = .any) throws(MPIError) -> Status {
        var status = MPI_Status()
        try check("MPI_Probe", MPI_Probe(source.rawValue, tag.rawValue, handle, &status))
        return Status(status)
    }

    /// The status of a matching message if one has arrived, or nil at once if none has.
    ///
    /// The corresponding MPI function is `MPI_Iprobe`.
    public func iprobe(from source: Source = .any, tag: Tag = .any) throws(MPIError) -> Status? {
        var status = MPI_Status()
        var flag: Int32 = 0
        try check("MPI_Iprobe", MPI_Iprobe(source.rawValue, tag.rawValue, handle, &flag, &status))
        return flag != 0 ? Status(status) : nil
    }

    /// Receives a whole message of any length as an array of `type`.
    ///
    /// It probes and receives the *same* message (a matched probe), so another thread's
    /// receive cannot take it in between.
    ///
    /// The corresponding MPI functions are `MPI_Mprobe`, `MPI_Get_count` and `MPI_Mrecv`.
    public func receiveArray<T: MPIDatatypeRepresentable>(of type: T.Type, from source: Source = .any, tag: Tag = .any) throws(MPIError) -> (
        elements: [T], status: Status
    ) {
        try receiveMatched(datatype: T.mpiDatatype, elementType: T.self, from: source, tag: tag)
    }

    /// Receives a whole message of any length as bytes (`MPI_BYTE`).
    ///
    /// The corresponding MPI functions are `MPI_Mprobe`, `MPI_Get_count` and `MPI_Mrecv`.
    public func receiveBytes(from source: Source = .any, tag: Tag = .any) throws(MPIError) -> (bytes: [UInt8], status: Status) {
        let (elements, status) = try receiveMatched(datatype: cmpi_byte(), elementType: UInt8.self, from: source, tag: tag)
        return (elements, status)
    }

    private func receiveMatched<T: BitwiseCopyable>(datatype: MPI_Datatype, elementType: T.Type, from source: Source, tag: Tag) throws(MPIError) -> (
        [T], Status
    ) {
        var message: MPI_Message? = nil
        var probed = MPI_Status()
        try check("MPI_Mprobe", MPI_Mprobe(source.rawValue, tag.rawValue, handle, &message, &probed))
        let count = try Status(probed).count(datatype: datatype)
        var status = MPI_Status()
        var code = MPI_SUCCESS
        let elements = [T](unsafeUninitializedCapacity: count) { buffer, initialized in
            code = MPI_Mrecv(buffer.baseAddress, Int32(count), datatype, &message, &status)
            initialized = code == MPI_SUCCESS ? count : 0
        }
        try check("MPI_Mrecv", code)
        return (elements, Status(status))
    }
}
