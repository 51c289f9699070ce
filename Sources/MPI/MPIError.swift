import CMPI

/// An MPI call that returned something other than `MPI_SUCCESS`.
///
/// The library installs `MPI_ERRORS_RETURN` on every communicator it uses, so failures come
/// back as codes; each becomes this error with `MPI_Error_string`'s text.
public struct MPIError: Error, CustomStringConvertible, Sendable {
    /// The MPI error code (`MPI_ERR_*`).
    public var code: Int32
    /// The MPI function that failed.
    public var function: String
    /// `MPI_Error_string`'s text for `code`.
    public var message: String

    public init(code: Int32, function: String) {
        self.code = code
        self.function = function
        self.message = MPIError.string(for: code)
    }

    public init(function: String, message: String) {
        self.code = -1
        self.function = function
        self.message = message
    }

    public var description: String { "\(function) failed: \(message) (MPI error \(code))" }

    static func string(for code: Int32) -> String {
        var buffer = [CChar](repeating: 0, count: Int(MPI_MAX_ERROR_STRING) + 1)
        var length: Int32 = 0
        guard MPI_Error_string(code, &buffer, &length) == MPI_SUCCESS else {
            return "unknown MPI error"
        }
        return String(decoding: buffer.prefix(Int(length)).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}

/// Calls an MPI function and throws `MPIError` unless it returns `MPI_SUCCESS`.
@inline(__always)
func check(_ function: @autoclosure () -> String, _ result: Int32) throws(MPIError) {
    if result != MPI_SUCCESS { throw MPIError(code: result, function: function()) }
}
