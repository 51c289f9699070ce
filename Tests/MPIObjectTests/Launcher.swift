#if MPI
import Foundation
import TestSupport

extension Launcher {
    /// `mpi-object-check`, built next to the test bundle because the test target depends on it.
    static func objectCheck() throws -> URL { try executable("mpi-object-check") }
}
#endif
