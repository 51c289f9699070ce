import CMPI

/// A group of ranks that exchange messages: `MPI_COMM_WORLD`, or one made from it by `split`
/// or `duplicate`.
///
/// A communicator is a handle; copies refer to the same MPI communicator. Every communicator
/// this layer creates returns errors (`MPI_ERRORS_RETURN`), which its methods throw as
/// `MPIError`. Messages on one communicator never match receives on another, so a library can
/// `duplicate()` the world and talk undisturbed by the program's own messages.
public struct Communicator: @unchecked Sendable, Hashable {
    /// The C handle, for calls this layer does not wrap.
    public let handle: MPI_Comm

    /// Wraps a C handle (which must not be `MPI_COMM_NULL`) and installs `MPI_ERRORS_RETURN`
    /// on it.
    ///
    /// The corresponding MPI function is `MPI_Comm_set_errhandler`.
    public init(adopting handle: MPI_Comm) throws(MPIError) {
        try check("MPI_Comm_set_errhandler", MPI_Comm_set_errhandler(handle, cmpi_errors_return()))
        self.handle = handle
    }

    private init(unchecked handle: MPI_Comm) { self.handle = handle }

    /// Every rank of the job. Use after `MPIEnvironment.initialize()`.
    public static var world: Communicator { Communicator(unchecked: cmpi_comm_world()) }

    /// Only this rank.
    public static var `self`: Communicator { Communicator(unchecked: cmpi_comm_self()) }

    /// This process's rank in the communicator, from 0 to `size - 1`. Returns -1 if MPI is not
    /// initialised.
    ///
    /// The corresponding MPI function is `MPI_Comm_rank`.
    public var rank: Int {
        var rank: Int32 = -1
        guard MPI_Comm_rank(handle, &rank) == MPI_SUCCESS else { return -1 }
        return Int(rank)
    }

    /// The number of ranks in the communicator. Returns 0 if MPI is not initialised.
    ///
    /// The corresponding MPI function is `MPI_Comm_size`.
    public var size: Int {
        var size: Int32 = 0
        guard MPI_Comm_size(handle, &size) == MPI_SUCCESS else { return 0 }
        return Int(size)
    }

    /// Waits until every rank of the communicator has called `barrier()`.
    ///
    /// The corresponding MPI function is `MPI_Barrier`.
    public func barrier() throws(MPIError) {
        try check("MPI_Barrier", MPI_Barrier(handle))
    }

    /// Splits the communicator into one new communicator per `color`; within each, ranks are
    /// ordered by `key`, then by their rank here. A rank that passes a nil color joins none and
    /// gets nil. Collective: every rank must call it.
    ///
    /// Free the result with `free()` when done.
    ///
    /// The corresponding MPI function is `MPI_Comm_split`.
    public func split(color: Int?, key: Int = 0) throws(MPIError) -> Communicator? {
        let mpiColor = try color.map { c throws(MPIError) in try mpiInt32(c, "MPI_Comm_split", what: "color") } ?? MPI_UNDEFINED
        var newHandle: MPI_Comm? = nil
        try check("MPI_Comm_split", MPI_Comm_split(handle, mpiColor, try mpiInt32(key, "MPI_Comm_split", what: "key"), &newHandle))
        guard let newHandle, newHandle != cmpi_comm_null() else { return nil }
        return try Communicator(adopting: newHandle)
    }

    /// A new communicator with the same ranks whose messages never mix with this one's.
    /// Collective. Free the result with `free()` when done.
    ///
    /// The corresponding MPI function is `MPI_Comm_dup`.
    public func duplicate() throws(MPIError) -> Communicator {
        var newHandle: MPI_Comm? = nil
        try check("MPI_Comm_dup", MPI_Comm_dup(handle, &newHandle))
        guard let newHandle else {
            throw MPIError(function: "MPI_Comm_dup", message: "returned a null communicator")
        }
        return try Communicator(adopting: newHandle)
    }

    /// Releases a communicator made by `split` or `duplicate`. Collective. Freeing the world
    /// or `self` communicator does nothing.
    ///
    /// The corresponding MPI function is `MPI_Comm_free`.
    public func free() throws(MPIError) {
        guard handle != cmpi_comm_world(), handle != cmpi_comm_self(), handle != cmpi_comm_null() else { return }
        var h: MPI_Comm? = handle
        try check("MPI_Comm_free", MPI_Comm_free(&h))
    }

    /// Ends the job: see `MPIEnvironment.abort`.
    ///
    /// The corresponding MPI function is `MPI_Abort`.
    public func abort(_ code: Int32 = 1) -> Never {
        MPIEnvironment.abort(code, communicator: self)
    }
}

/// An `Int` as the `Int32` MPI takes for counts, ranks and tags, or a thrown `MPIError`.
@inline(__always)
func mpiInt32(_ value: Int, _ function: @autoclosure () -> String, what: @autoclosure () -> String) throws(MPIError) -> Int32 {
    guard let result = Int32(exactly: value) else {
        throw MPIError(function: function(), message: "\(what()) \(value) does not fit in a C int")
    }
    return result
}
