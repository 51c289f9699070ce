import CMPI

// Collective operations: every rank of the communicator calls the same one, in the same order,
// with the same root; counts that must agree are stated per method.
extension Communicator {
    // MARK: Barrier-free helpers

    private func rootRank(_ root: Int, _ function: String) throws(MPIError) -> Int32 {
        guard root >= 0, root < size else {
            throw MPIError(function: function, message: "root \(root) is not a rank of a communicator of size \(size)")
        }
        return Int32(root)
    }

    // MARK: Broadcast

    /// Copies root's `values` into `values` on every other rank. Every rank passes an array of
    /// the same length.
    ///
    /// The corresponding MPI function is `MPI_Bcast`.
    public func broadcast<T: MPIDatatypeRepresentable>(_ values: inout [T], root: Int = 0) throws(MPIError) {
        let root = try rootRank(root, "MPI_Bcast")
        let count = try mpiInt32(values.count, "MPI_Bcast", what: "count")
        let code = values.withUnsafeMutableBufferPointer { buffer in
            MPI_Bcast(buffer.baseAddress, count, T.mpiDatatype, root, handle)
        }
        try check("MPI_Bcast", code)
    }

    /// Copies root's `value` into `value` on every other rank.
    ///
    /// The corresponding MPI function is `MPI_Bcast`.
    public func broadcast<T: MPIDatatypeRepresentable>(_ value: inout T, root: Int = 0) throws(MPIError) {
        let root = try rootRank(root, "MPI_Bcast")
        let code = withUnsafeMutablePointer(to: &value) { pointer in
            MPI_Bcast(pointer, 1, T.mpiDatatype, root, handle)
        }
        try check("MPI_Bcast", code)
    }

    /// Copies root's bytes into `bytes` on every other rank. Every rank passes a buffer of the
    /// same size.
    ///
    /// The corresponding MPI function is `MPI_Bcast`.
    public func broadcast(_ bytes: UnsafeMutableRawBufferPointer, root: Int = 0) throws(MPIError) {
        let root = try rootRank(root, "MPI_Bcast")
        try check(
            "MPI_Bcast",
            MPI_Bcast(
                bytes.baseAddress, try mpiInt32(bytes.count, "MPI_Bcast", what: "count"), cmpi_byte(), root, handle))
    }

    // MARK: Reduce

    /// Combines `values` from every rank element by element with `operation`; root gets the
    /// result, the other ranks nil. Every rank passes an array of the same length.
    ///
    /// The corresponding MPI function is `MPI_Reduce`.
    public func reduce<T: MPIDatatypeRepresentable>(_ values: [T], _ operation: ReductionOperation, root: Int = 0) throws(MPIError) -> [T]? {
        let rootRank = try rootRank(root, "MPI_Reduce")
        let count = try mpiInt32(values.count, "MPI_Reduce", what: "count")
        let isRoot = rank == root
        var code = MPI_SUCCESS
        let result = [T](unsafeUninitializedCapacity: isRoot ? values.count : 0) { output, initialized in
            code = values.withUnsafeBufferPointer { input in
                MPI_Reduce(input.baseAddress, output.baseAddress, count, T.mpiDatatype, operation.handle, rootRank, handle)
            }
            initialized = isRoot && code == MPI_SUCCESS ? values.count : 0
        }
        try check("MPI_Reduce", code)
        return isRoot ? result : nil
    }

    /// Combines one value from every rank with `operation`; root gets the result, the other
    /// ranks nil.
    ///
    /// The corresponding MPI function is `MPI_Reduce`.
    public func reduce<T: MPIDatatypeRepresentable>(_ value: T, _ operation: ReductionOperation, root: Int = 0) throws(MPIError) -> T? {
        try reduce([value], operation, root: root)?.first
    }

    /// Combines `values` from every rank element by element with `operation`; every rank gets
    /// the result. Every rank passes an array of the same length.
    ///
    /// The corresponding MPI function is `MPI_Allreduce`.
    public func allReduce<T: MPIDatatypeRepresentable>(_ values: [T], _ operation: ReductionOperation) throws(MPIError) -> [T] {
        let count = try mpiInt32(values.count, "MPI_Allreduce", what: "count")
        var code = MPI_SUCCESS
        let result = [T](unsafeUninitializedCapacity: values.count) { output, initialized in
            code = values.withUnsafeBufferPointer { input in
                MPI_Allreduce(input.baseAddress, output.baseAddress, count, T.mpiDatatype, operation.handle, handle)
            }
            initialized = code == MPI_SUCCESS ? values.count : 0
        }
        try check("MPI_Allreduce", code)
        return result
    }

    /// Combines one value from every rank with `operation`; every rank gets the result.
    ///
    /// The corresponding MPI function is `MPI_Allreduce`.
    public func allReduce<T: MPIDatatypeRepresentable>(_ value: T, _ operation: ReductionOperation) throws(MPIError) -> T {
        var input = value
        var output = value
        let code = withUnsafePointer(to: &input) { i in
            withUnsafeMutablePointer(to: &output) { o in
                MPI_Allreduce(i, o, 1, T.mpiDatatype, operation.handle, handle)
            }
        }
        try check("MPI_Allreduce", code)
        return output
    }

    // MARK: Gather

    /// Concatenates `values` from every rank in rank order; root gets the result, the other
    /// ranks nil. Every rank passes an array of the same length (see `gatherv` otherwise).
    ///
    /// The corresponding MPI function is `MPI_Gather`.
    public func gather<T: MPIDatatypeRepresentable>(_ values: [T], root: Int = 0) throws(MPIError) -> [T]? {
        let rootRank = try rootRank(root, "MPI_Gather")
        let count = try mpiInt32(values.count, "MPI_Gather", what: "count")
        let isRoot = rank == root
        let total = isRoot ? values.count * size : 0
        var code = MPI_SUCCESS
        let result = [T](unsafeUninitializedCapacity: total) { output, initialized in
            code = values.withUnsafeBufferPointer { input in
                MPI_Gather(input.baseAddress, count, T.mpiDatatype, output.baseAddress, count, T.mpiDatatype, rootRank, handle)
            }
            initialized = code == MPI_SUCCESS ? total : 0
        }
        try check("MPI_Gather", code)
        return isRoot ? result : nil
    }

    /// One value from every rank, in rank order, on root; nil on the other ranks.
    ///
    /// The corresponding MPI function is `MPI_Gather`.
    public func gather<T: MPIDatatypeRepresentable>(_ value: T, root: Int = 0) throws(MPIError) -> [T]? {
        try gather([value], root: root)
    }

    /// Concatenates `values` from every rank in rank order, on every rank. Every rank passes
    /// an array of the same length (see `allGatherv` otherwise).
    ///
    /// The corresponding MPI function is `MPI_Allgather`.
    public func allGather<T: MPIDatatypeRepresentable>(_ values: [T]) throws(MPIError) -> [T] {
        let count = try mpiInt32(values.count, "MPI_Allgather", what: "count")
        let total = values.count * size
        var code = MPI_SUCCESS
        let result = [T](unsafeUninitializedCapacity: total) { output, initialized in
            code = values.withUnsafeBufferPointer { input in
                MPI_Allgather(input.baseAddress, count, T.mpiDatatype, output.baseAddress, count, T.mpiDatatype, handle)
            }
            initialized = code == MPI_SUCCESS ? total : 0
        }
        try check("MPI_Allgather", code)
        return result
    }

    /// One value from every rank, in rank order, on every rank.
    ///
    /// The corresponding MPI function is `MPI_Allgather`.
    public func allGather<T: MPIDatatypeRepresentable>(_ value: T) throws(MPIError) -> [T] {
        try allGather([value])
    }

    /// Every rank's `values`, of any length, on root (element `r` is rank `r`'s array); nil on
    /// the other ranks. The lengths travel first, in a `gather`.
    ///
    /// The corresponding MPI function is `MPI_Gatherv`.
    public func gatherv<T: MPIDatatypeRepresentable>(_ values: [T], root: Int = 0) throws(MPIError) -> [[T]]? {
        let rootRank = try rootRank(root, "MPI_Gatherv")
        let count = try mpiInt32(values.count, "MPI_Gatherv", what: "count")
        let counts = try gather(count, root: root)
        let (displacements, total) = try Communicator.displacements(counts ?? [], "MPI_Gatherv")
        var code = MPI_SUCCESS
        let flat = [T](unsafeUninitializedCapacity: total) { output, initialized in
            code = values.withUnsafeBufferPointer { input in
                (counts ?? []).withUnsafeBufferPointer { c in
                    displacements.withUnsafeBufferPointer { d in
                        MPI_Gatherv(
                            input.baseAddress, count, T.mpiDatatype,
                            output.baseAddress, c.baseAddress, d.baseAddress, T.mpiDatatype, rootRank, handle)
                    }
                }
            }
            initialized = code == MPI_SUCCESS ? total : 0
        }
        try check("MPI_Gatherv", code)
        guard let counts else { return nil }
        return Communicator.split(flat, counts: counts, displacements: displacements)
    }

    /// Every rank's `values`, of any length, on every rank (element `r` is rank `r`'s array).
    /// The lengths travel first, in an `allGather`.
    ///
    /// The corresponding MPI function is `MPI_Allgatherv`.
    public func allGatherv<T: MPIDatatypeRepresentable>(_ values: [T]) throws(MPIError) -> [[T]] {
        let count = try mpiInt32(values.count, "MPI_Allgatherv", what: "count")
        let counts = try allGather(count)
        let (displacements, total) = try Communicator.displacements(counts, "MPI_Allgatherv")
        var code = MPI_SUCCESS
        let flat = [T](unsafeUninitializedCapacity: total) { output, initialized in
            code = values.withUnsafeBufferPointer { input in
                counts.withUnsafeBufferPointer { c in
                    displacements.withUnsafeBufferPointer { d in
                        MPI_Allgatherv(
                            input.baseAddress, count, T.mpiDatatype,
                            output.baseAddress, c.baseAddress, d.baseAddress, T.mpiDatatype, handle)
                    }
                }
            }
            initialized = code == MPI_SUCCESS ? total : 0
        }
        try check("MPI_Allgatherv", code)
        return Communicator.split(flat, counts: counts, displacements: displacements)
    }

    private static func displacements(_ counts: [Int32], _ function: String) throws(MPIError) -> ([Int32], Int) {
        var displacements: [Int32] = []
        displacements.reserveCapacity(counts.count)
        var total = 0
        for count in counts {
            displacements.append(try mpiInt32(total, function, what: "displacement"))
            total += Int(count)
        }
        return (displacements, total)
    }

    private static func split<T>(_ flat: [T], counts: [Int32], displacements: [Int32]) -> [[T]] {
        zip(counts, displacements).map { count, start in
            Array(flat[Int(start)..<Int(start) + Int(count)])
        }
    }
}
