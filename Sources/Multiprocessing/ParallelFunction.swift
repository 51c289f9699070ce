/// A unit of work that can run in another process: a value whose stored properties are its
/// parameters (what a Python closure would capture), called with one input at a time.
///
/// ```swift
/// struct Square: ParallelFunction {
///     func callAsFunction(_ x: Int) -> Int { x * x }
/// }
/// let squares = try pool.map(Square(), 0..<10)
/// ```
///
/// Workers find the type by its mangled name (every process runs the same binary), so no
/// registration is needed — but the type must be `internal` or `public`: `private`,
/// `fileprivate` and function-local types cannot be found by name and are rejected when
/// submitted (see `FunctionRegistry` for a fallback with the `.fork` start method).
///
/// `Input` and `Output` are `Codable` types, or `Void`: a function with no result
/// (`func callAsFunction(_ x: Int) { … }`) or no argument (`callAsFunction(_: Void)`, as a
/// `Process` target) works although `Void` is not `Codable`. Keep the type non-generic
/// where speed matters: a generic type resolved in a worker runs unspecialised.
public protocol ParallelFunction<Input, Output>: Codable, Sendable {
    associatedtype Input: Sendable
    associatedtype Output: Sendable

    /// Computes the result for one input, in a worker process.
    func callAsFunction(_ input: Input) throws -> Output

    // Transport, provided by the library for Codable and Void inputs and outputs.
    static func _encodeInputs(_ inputs: UnsafeBufferPointer<Input>, into writer: inout WireWriter) throws
    static func _decodeInputs(from reader: inout WireReader) throws -> [Input]
    static func _encodeOutputs(_ outputs: UnsafeBufferPointer<Output>, into writer: inout WireWriter) throws
    static func _decodeOutputs(from reader: inout WireReader) throws -> [Output]
    /// Decodes a chunk of inputs, runs them, encodes the outputs. Before each input it stores
    /// the input's position in `progress` (the engine reads it if the worker dies). On the
    /// first throwing input it calls `failed` (which starts a failure message in the writer)
    /// and then encodes the outputs of the inputs before it.
    func _runChunk(
        _ reader: inout WireReader, into writer: inout WireWriter, progress: UnsafeMutablePointer<Int>,
        failed: (inout WireWriter, Int, any Error) -> Void) throws
}

extension ParallelFunction {
    @inlinable
    public func _runChunk(
        _ reader: inout WireReader, into writer: inout WireWriter, progress: UnsafeMutablePointer<Int>,
        failed: (inout WireWriter, Int, any Error) -> Void
    ) throws {
        let inputs = try Self._decodeInputs(from: &reader)
        var outputs: [Output] = []
        outputs.reserveCapacity(inputs.count)
        for index in inputs.indices {
            progress.pointee = index
            do {
                outputs.append(try self(inputs[index]))
            } catch {
                failed(&writer, index, error)
                break
            }
        }
        try outputs.withUnsafeBufferPointer { try Self._encodeOutputs($0, into: &writer) }
    }
}

extension ParallelFunction where Input: Codable {
    @inlinable
    public static func _encodeInputs(_ inputs: UnsafeBufferPointer<Input>, into writer: inout WireWriter) throws {
        try writer.encodeArray(inputs)
    }

    @inlinable
    public static func _decodeInputs(from reader: inout WireReader) throws -> [Input] {
        try reader.decodeArray(Input.self)
    }
}

extension ParallelFunction where Input == Void {
    @inlinable
    public static func _encodeInputs(_ inputs: UnsafeBufferPointer<Input>, into writer: inout WireWriter) throws {
        _VoidTransport.encode(count: inputs.count, into: &writer)
    }

    @inlinable
    public static func _decodeInputs(from reader: inout WireReader) throws -> [Input] {
        try _VoidTransport.decode(from: &reader)
    }
}

extension ParallelFunction where Output: Codable {
    @inlinable
    public static func _encodeOutputs(_ outputs: UnsafeBufferPointer<Output>, into writer: inout WireWriter) throws {
        try writer.encodeArray(outputs)
    }

    @inlinable
    public static func _decodeOutputs(from reader: inout WireReader) throws -> [Output] {
        try reader.decodeArray(Output.self)
    }
}

extension ParallelFunction where Output == Void {
    @inlinable
    public static func _encodeOutputs(_ outputs: UnsafeBufferPointer<Output>, into writer: inout WireWriter) throws {
        _VoidTransport.encode(count: outputs.count, into: &writer)
    }

    @inlinable
    public static func _decodeOutputs(from reader: inout WireReader) throws -> [Output] {
        try _VoidTransport.decode(from: &reader)
    }
}

/// `Void` values carry no bytes: an array of them travels as its count.
public enum _VoidTransport {
    @inlinable
    public static func encode(count: Int, into writer: inout WireWriter) {
        writer.write(UInt64(count))
    }

    @inlinable
    public static func decode(from reader: inout WireReader) throws -> [Void] {
        let count = try reader.read(UInt64.self)
        guard count <= UInt64(Int32.max) else { throw WireError.corrupt("\(count) Void values") }
        return Array(repeating: (), count: Int(count))
    }
}
