import CMPI

/// A rank to receive from: a specific one or any.
public struct Source: Sendable, Hashable, ExpressibleByIntegerLiteral, CustomStringConvertible {
    /// The rank, or `MPI_ANY_SOURCE`.
    public let rawValue: Int32

    /// Matches a message from any rank. (`MPI_ANY_SOURCE`)
    public static let any = Source(rawValue: MPI_ANY_SOURCE)

    /// Matches only messages from `rank`.
    public static func rank(_ rank: Int) -> Source { Source(rawValue: Int32(truncatingIfNeeded: rank)) }

    public init(integerLiteral rank: Int) { self.init(rawValue: Int32(truncatingIfNeeded: rank)) }

    private init(rawValue: Int32) { self.rawValue = rawValue }

    public var description: String { self == .any ? "any" : String(rawValue) }
}

/// A message tag to receive: a specific one or any.
public struct Tag: Sendable, Hashable, ExpressibleByIntegerLiteral, CustomStringConvertible {
    /// The tag, or `MPI_ANY_TAG`.
    public let rawValue: Int32

    /// Matches a message with any tag. (`MPI_ANY_TAG`)
    public static let any = Tag(rawValue: MPI_ANY_TAG)

    /// Matches only messages tagged `value`.
    public static func value(_ value: Int) -> Tag { Tag(rawValue: Int32(truncatingIfNeeded: value)) }

    public init(integerLiteral value: Int) { self.init(rawValue: Int32(truncatingIfNeeded: value)) }

    private init(rawValue: Int32) { self.rawValue = rawValue }

    public var description: String { self == .any ? "any" : String(rawValue) }
}

/// What arrived (or is waiting): its sender, tag and size.
public struct Status: @unchecked Sendable, CustomStringConvertible {
    /// The C status, for calls this layer does not wrap.
    public var raw: MPI_Status

    init(_ raw: MPI_Status) { self.raw = raw }

    /// The rank that sent the message.
    public var source: Int { Int(raw.MPI_SOURCE) }

    /// The message's tag.
    public var tag: Int { Int(raw.MPI_TAG) }

    /// The message's length in values of `type`.
    ///
    /// - Throws: `MPIError` if the length is not a whole number of `type`s.
    ///
    /// The corresponding MPI function is `MPI_Get_count`.
    public func count<T: MPIDatatypeRepresentable>(of type: T.Type) throws(MPIError) -> Int {
        try count(datatype: T.mpiDatatype)
    }

    /// The message's length in bytes.
    ///
    /// The corresponding MPI function is `MPI_Get_count`.
    public var byteCount: Int {
        get throws(MPIError) { try count(datatype: cmpi_byte()) }
    }

    func count(datatype: MPI_Datatype) throws(MPIError) -> Int {
        var status = raw
        var count: Int32 = 0
        try check("MPI_Get_count", MPI_Get_count(&status, datatype, &count))
        if count == MPI_UNDEFINED {
            throw MPIError(function: "MPI_Get_count", message: "the message is not a whole number of elements of the requested type")
        }
        return Int(count)
    }

    public var description: String { "Status(source: \(source), tag: \(tag))" }
}
