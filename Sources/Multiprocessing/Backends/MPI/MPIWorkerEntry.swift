/// The start-up hook's entry for ranks ≥ 1 of an mpirun job.
enum MPIWorkerEntry {
    /// Runs the worker serve loop for this rank and returns its exit status, or -1 to let
    /// the rank run `main` (SPMD, as without the library).
    static func run() -> Int32 {
        -1
    }
}
