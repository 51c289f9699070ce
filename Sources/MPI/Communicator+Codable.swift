import CMPI
import Wire

// `Codable` values travel as Wire-encoded bytes (`MPI_BYTE`), received whole with a matched
// probe — mpi4py's lower-case `send`/`recv`/`bcast`, with Wire in place of pickle.
extension Communicator {
    /// Encodes `value` with Wire and sends the bytes to `destination`.
    ///
    /// - Throws: the encoder's error, or `MPIError`.
    ///
    /// The corresponding MPI function is `MPI_Send`.
    public func sendObject<T: Encodable>(_ value: T, to destination: Int, tag: Int = 0) throws {
        let bytes = try Wire.encode(value)
        try bytes.withUnsafeBytes { raw in try send(raw, to: destination, tag: tag) }
    }

    /// Receives one message sent by `sendObject` and decodes it as `type`.
    ///
    /// - Throws: `MPIError`, or the decoder's error if the bytes are not a `type`.
    ///
    /// The corresponding MPI functions are `MPI_Mprobe`, `MPI_Get_count` and `MPI_Mrecv`.
    public func receiveObject<T: Decodable>(_ type: T.Type, from source: Source = .any, tag: Tag = .any) throws -> (value: T, status: Status) {
        let (bytes, status) = try receiveBytes(from: source, tag: tag)
        return (try Wire.decode(T.self, from: bytes), status)
    }

    /// Root's `value` on every rank: root encodes it with Wire, the length and then the bytes
    /// are broadcast. The other ranks pass nil (or anything: it is ignored).
    ///
    /// - Throws: `MPIError`; the encoder's or decoder's error; an `MPIError` on root if
    ///   root's value is nil.
    ///
    /// The corresponding MPI function is `MPI_Bcast`.
    public func broadcastObject<T: Codable>(_ value: T?, root: Int = 0) throws -> T {
        var bytes: [UInt8] = []
        var length: Int64 = -1
        if rank == root, let value {
            bytes = try Wire.encode(value)
            length = Int64(bytes.count)
        }
        try broadcast(&length, root: root)
        guard length >= 0 else {
            throw MPIError(function: "MPI_Bcast", message: "broadcastObject: root \(root) passed nil")
        }
        if rank != root { bytes = [UInt8](repeating: 0, count: Int(length)) }
        try bytes.withUnsafeMutableBytes { raw in try broadcast(raw, root: root) }
        return try Wire.decode(T.self, from: bytes)
    }
}
