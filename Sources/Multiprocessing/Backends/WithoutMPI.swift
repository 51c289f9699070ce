#if !MPI
#if canImport(Glibc)
import Glibc
#endif

/// A build with the package's `MPI` trait off (`swift build --disable-default-traits`, or a
/// dependent package that leaves the trait out): no Open MPI is linked, so there is no MPI
/// backend (`Backend.mpi` — also `.automatic` under mpirun — throws
/// `PoolError(.backendUnavailable)` with `message`), every shared object lives in local shared
/// memory, and ranks ≥ 1 of an mpirun job exit quietly at start-up (nothing to serve), so that
/// rank 0's error is printed once.
enum WithoutMPI {
    static let message =
        "this program was built without Open MPI: the swift-multiprocessing package's MPI trait is off, "
        + "so there is no MPI backend. Enable the trait to use it (swift build without --disable-default-traits; "
        + "in a dependent package, .package(url: …, from: …) with the default traits or traits: [\"MPI\"]), "
        + "or use backend: .local"

    /// The start-up hook's entry for a rank ≥ 1: its exit status.
    static func workerRankEntry() -> Int32 { 0 }
}

/// Without MPI no object is served: everything lives in local shared memory.
enum MPIObjects {
    static var isServing: Bool { false }

    static func refuseIfServing(_ primitive: String, use alternative: String) throws(MPIObjectError) {}
}

#endif
