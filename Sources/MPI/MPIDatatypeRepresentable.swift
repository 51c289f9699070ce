import CMPI

/// A Swift type that travels as an MPI datatype: the one place where Swift types are mapped to
/// MPI's. Conformances are a closed list of fixed-size integers and floating-point numbers
/// (`BitwiseCopyable`, with an MPI datatype of the same size and meaning), so reductions such
/// as `.sum` and `.max` work on them.
///
/// Raw bytes of any other `BitwiseCopyable` type go through the `UnsafeRawBufferPointer`
/// overloads, as `MPI_BYTE`.
public protocol MPIDatatypeRepresentable: BitwiseCopyable, Sendable {
    /// The MPI datatype describing one value of this type.
    static var mpiDatatype: MPI_Datatype { get }
}

extension Int8: MPIDatatypeRepresentable {
    @inlinable public static var mpiDatatype: MPI_Datatype { cmpi_int8() }
}
extension Int16: MPIDatatypeRepresentable {
    @inlinable public static var mpiDatatype: MPI_Datatype { cmpi_int16() }
}
extension Int32: MPIDatatypeRepresentable {
    @inlinable public static var mpiDatatype: MPI_Datatype { cmpi_int32() }
}
extension Int64: MPIDatatypeRepresentable {
    @inlinable public static var mpiDatatype: MPI_Datatype { cmpi_int64() }
}
extension UInt8: MPIDatatypeRepresentable {
    @inlinable public static var mpiDatatype: MPI_Datatype { cmpi_uint8() }
}
extension UInt16: MPIDatatypeRepresentable {
    @inlinable public static var mpiDatatype: MPI_Datatype { cmpi_uint16() }
}
extension UInt32: MPIDatatypeRepresentable {
    @inlinable public static var mpiDatatype: MPI_Datatype { cmpi_uint32() }
}
extension UInt64: MPIDatatypeRepresentable {
    @inlinable public static var mpiDatatype: MPI_Datatype { cmpi_uint64() }
}
extension Float: MPIDatatypeRepresentable {
    @inlinable public static var mpiDatatype: MPI_Datatype { cmpi_float() }
}
extension Double: MPIDatatypeRepresentable {
    @inlinable public static var mpiDatatype: MPI_Datatype { cmpi_double() }
}

#if arch(x86_64) || arch(arm64) || arch(powerpc64) || arch(powerpc64le) || arch(s390x) || arch(riscv64)
extension Int: MPIDatatypeRepresentable {
    @inlinable public static var mpiDatatype: MPI_Datatype { cmpi_int64() }
}
extension UInt: MPIDatatypeRepresentable {
    @inlinable public static var mpiDatatype: MPI_Datatype { cmpi_uint64() }
}
#else
extension Int: MPIDatatypeRepresentable {
    @inlinable public static var mpiDatatype: MPI_Datatype { cmpi_int32() }
}
extension UInt: MPIDatatypeRepresentable {
    @inlinable public static var mpiDatatype: MPI_Datatype { cmpi_uint32() }
}
#endif
