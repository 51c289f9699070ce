#if MPI
import Foundation
import TestSupport

extension Launcher {
    /// `mpi-pool-check`, built next to the test bundle because the test target depends on it.
    static func poolCheck() throws -> URL { try executable("mpi-pool-check") }
}
#endif
