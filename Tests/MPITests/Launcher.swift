#if MPI
import Foundation
import TestSupport

extension Launcher {
    /// `mpi-selftest`, built next to the test bundle because the test target depends on it.
    static func selfTest() throws -> URL { try executable("mpi-selftest") }

    /// `Scripts/mpirun.sh --timeout <timeout> -np <ranks> mpi-selftest <arguments>`.
    static func mpirun(ranks: Int, arguments: [String] = [], timeout: Int = 60) throws -> Outcome {
        try mpirun(["-np", String(ranks), try selfTest().path], arguments, timeout: timeout)
    }
}
#endif
