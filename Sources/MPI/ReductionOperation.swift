import CMPI

/// A predefined operation that `reduce` and `allReduce` combine values with, element by
/// element.
public struct ReductionOperation: Sendable, Hashable, CustomStringConvertible {
    private enum Kind: Sendable, Hashable {
        case sum, product, min, max, bitwiseAnd, bitwiseOr, logicalAnd, logicalOr
    }
    private let kind: Kind

    /// Addition. (`MPI_SUM`)
    public static let sum = ReductionOperation(kind: .sum)
    /// Multiplication. (`MPI_PROD`)
    public static let product = ReductionOperation(kind: .product)
    /// The smallest value. (`MPI_MIN`)
    public static let min = ReductionOperation(kind: .min)
    /// The largest value. (`MPI_MAX`)
    public static let max = ReductionOperation(kind: .max)
    /// Bitwise and, for integers. (`MPI_BAND`)
    public static let bitwiseAnd = ReductionOperation(kind: .bitwiseAnd)
    /// Bitwise or, for integers. (`MPI_BOR`)
    public static let bitwiseOr = ReductionOperation(kind: .bitwiseOr)
    /// Logical and of integers (non-zero is true). (`MPI_LAND`)
    public static let logicalAnd = ReductionOperation(kind: .logicalAnd)
    /// Logical or of integers (non-zero is true). (`MPI_LOR`)
    public static let logicalOr = ReductionOperation(kind: .logicalOr)

    /// The MPI handle for this operation.
    public var handle: MPI_Op {
        switch kind {
        case .sum: cmpi_op_sum()
        case .product: cmpi_op_prod()
        case .min: cmpi_op_min()
        case .max: cmpi_op_max()
        case .bitwiseAnd: cmpi_op_band()
        case .bitwiseOr: cmpi_op_bor()
        case .logicalAnd: cmpi_op_land()
        case .logicalOr: cmpi_op_lor()
        }
    }

    public var description: String {
        switch kind {
        case .sum: "sum"
        case .product: "product"
        case .min: "min"
        case .max: "max"
        case .bitwiseAnd: "bitwiseAnd"
        case .bitwiseOr: "bitwiseOr"
        case .logicalAnd: "logicalAnd"
        case .logicalOr: "logicalOr"
        }
    }
}
