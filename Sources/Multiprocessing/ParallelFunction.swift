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
    /// `_runChunk` for a type whose inputs and outputs travel as plain numbers
    /// (`_plainTransport()`, checked by the caller): each input read from the message (or, for
    /// a large chunk, a piece at a time into `buffers`) and each output written into the reply
    /// in place (or into a block of `buffers` the reply references). Returns false, having
    /// read nothing, for other types.
    func _runPlainChunk(
        _ reader: inout WireReader, into writer: inout WireWriter, buffers: _PlainChunkBuffers,
        progress: UnsafeMutablePointer<Int>, failed: (inout WireWriter, Int, any Error) -> Void
    ) throws -> Bool
    /// Whether the inputs and the outputs travel as the library writes arrays of plain numbers
    /// (`WireRawElement`, and `_encodeInputs` / `_encodeOutputs` are the library's). Costs two
    /// small encodings: callers ask once per type (`PlainTransport`).
    static func _plainTransport() -> (inputs: Bool, outputs: Bool)
}

extension ParallelFunction {
    @inlinable
    public func _runChunk(
        _ reader: inout WireReader, into writer: inout WireWriter, progress: UnsafeMutablePointer<Int>,
        failed: (inout WireWriter, Int, any Error) -> Void
    ) throws {
        // Decoding and encoding are between inputs (`WorkerProgress.betweenInputs`, -1): a
        // worker that dies there is not charged to an input (its chunk runs again in halves).
        progress.pointee = -1
        let inputs = try Self._decodeInputs(from: &reader)
        var outputs: [Output] = []
        outputs.reserveCapacity(inputs.count)
        let start = writer.mark
        for index in inputs.indices {
            progress.pointee = index
            do {
                outputs.append(try self(inputs[index]))
            } catch {
                failed(&writer, index, error)
                break
            }
        }
        progress.pointee = -1
        do {
            try outputs.withUnsafeBufferPointer { try Self._encodeOutputs($0, into: &writer) }
        } catch {
            // One result that cannot be encoded fails its own input, not its chunk: the
            // results before it go back, and the inputs after it run again elsewhere in the
            // chunk's place (as after an input that threw).
            writer.rewind(to: start)
            var scratch = WireWriter()
            let bad =
                outputs.indices.first { index in
                    scratch.removeAll()
                    return
                        (try? outputs.withUnsafeBufferPointer {
                            try Self._encodeOutputs(UnsafeBufferPointer(rebasing: $0[index...index]), into: &scratch)
                        }) == nil
                } ?? 0
            failed(
                &writer, bad,
                PoolError(.encoding, "its result of \(String(reflecting: Self.self)) cannot be encoded to go back to the caller: \(error)"))
            try outputs.withUnsafeBufferPointer {
                try Self._encodeOutputs(UnsafeBufferPointer(rebasing: $0[..<bad]), into: &writer)
            }
        }
    }

    /// `_runChunk` for plain numbers in and out: the same bytes as the general path's, with no
    /// array of inputs or outputs in between (two allocations per chunk, each faulting its
    /// pages in afresh once it crosses malloc's mmap threshold, and two copies: a default-chunk
    /// map of 200 000 `Int`s spent about half its time there). Under
    /// `WireDeferredBlock.minimumSize` bytes each way, each input is read from the message and
    /// each output written into the reply. Larger, the outputs are written into a block
    /// `buffers` keeps, which the reply references (`_PlainChunkBuffers`), and large inputs are
    /// read a piece at a time into `buffers` (from the pool's memory when they are a reference
    /// to it); small inputs are read in place. A piece that cannot be read (the pool's memory
    /// gone) ends the chunk with that error after the pieces before it ran (the general path
    /// read every input before running any).
    @inlinable
    public func _runPlainChunk(
        _ reader: inout WireReader, into writer: inout WireWriter, buffers: _PlainChunkBuffers,
        progress: UnsafeMutablePointer<Int>, failed: (inout WireWriter, Int, any Error) -> Void
    ) throws -> Bool {
        guard _wireTravelsRaw(Input.self), _wireTravelsRaw(Output.self) else { return false }
        let outputStride = MemoryLayout<Output>.stride, inputStride = MemoryLayout<Input>.stride
        let (count, inputs) = try reader._readRawRegion(Input.self)
        let outputBytes = count &* outputStride
        /// Runs the `n` inputs at `source` (positions `first`…) into `destination`; returns the
        /// one that threw, if one did.
        func run(
            _ first: Int, _ n: Int, from source: UnsafeRawPointer, into destination: UnsafeMutableRawPointer
        ) -> (index: Int, error: any Error)? {
            var index = 0
            while index < n {
                progress.pointee = first &+ index
                let input = source.loadUnaligned(fromByteOffset: index &* inputStride, as: Input.self)
                do {
                    destination.storeBytes(of: try self(input), toByteOffset: index &* outputStride, as: Output.self)
                } catch {
                    return (first &+ index, error)
                }
                index &+= 1
            }
            return nil
        }
        var failure: (index: Int, error: any Error)?
        if inputs.count < WireDeferredBlock.minimumSize && outputBytes < WireDeferredBlock.minimumSize {
            let start = writer.count
            writer._appendRawElements(Output.self, count: count) { outputs in
                guard count > 0 else { return }
                failure = run(0, count, from: inputs.baseAddress!, into: outputs.baseAddress!)
                if let failure {
                    // Every byte must be written; the reply is rewritten below.
                    UnsafeMutableRawBufferPointer(rebasing: outputs[(failure.index &* outputStride)...]).initializeMemory(
                        as: UInt8.self, repeating: 0)
                }
            }
            guard let failure else { return true }
            // The failure message comes first (`failed` starts it), then the outputs before it.
            let outputs = Array(writer.bytes[(writer.count - outputBytes)...].prefix(failure.index &* outputStride))
            writer.bytes.removeSubrange(start...)
            failed(&writer, failure.index, failure.error)
            writer.writeVarint(UInt64(failure.index))
            outputs.withUnsafeBytes { writer.writeRaw($0) }
            return true
        }
        let output = buffers.block(bytes: outputBytes)
        let perPiece = _PlainChunkBuffers.pieceBytes / inputStride
        var next = 0
        while next < count && failure == nil {
            let n = min(perPiece, count &- next)
            let piece = UnsafeRawBufferPointer(rebasing: inputs[(next &* inputStride)..<((next &+ n) &* inputStride)])
            let source: UnsafeRawPointer
            if inputs.count < WireDeferredBlock.minimumSize {
                source = piece.baseAddress! // in the message
            } else {
                let buffer = buffers.piece
                try _copyRawRegion(piece, of: inputs.count, to: buffer)
                source = UnsafeRawPointer(buffer)
            }
            failure = run(next, n, from: source, into: output.pointer + next &* outputStride)
            next &+= n
        }
        withExtendedLifetime(output) {
            let done = UnsafeRawBufferPointer(start: output.pointer, count: (failure?.index ?? count) &* outputStride)
            if let failure {
                // The failure message comes first (`failed` starts it), then the outputs before it.
                failed(&writer, failure.index, failure.error)
                writer.writeVarint(UInt64(failure.index))
                writer.writeRaw(done)
            } else {
                writer._appendRawElements(Output.self, count: count, block: done, owner: output)
            }
        }
        return true
    }

    @inlinable
    public static func _plainTransport() -> (inputs: Bool, outputs: Bool) {
        (
            _PlainProbe.agrees(Input.self) { try Self._encodeInputs($0, into: &$1) },
            _PlainProbe.agrees(Output.self) { try Self._encodeOutputs($0, into: &$1) }
        )
    }
}

/// Whether an encoding function writes what the library writes for an array of plain
/// numbers: checked on two values with distinct bytes (any bit pattern is a value of a
/// `WireRawElement` type).
@usableFromInline
enum _PlainProbe {
    @inlinable
    static func agrees<T>(_: T.Type, _ encode: (UnsafeBufferPointer<T>, inout WireWriter) throws -> Void) -> Bool {
        guard _wireTravelsRaw(T.self) else { return false }
        let probe = [T](unsafeUninitializedCapacity: 2) { buffer, initialized in
            let raw = UnsafeMutableRawBufferPointer(buffer)
            for i in raw.indices { raw[i] = UInt8(truncatingIfNeeded: i &+ 1) }
            initialized = 2
        }
        var theirs = WireWriter(capacity: 64)
        do {
            try probe.withUnsafeBufferPointer { try encode($0, &theirs) }
        } catch {
            return false
        }
        var ours = WireWriter(capacity: 64)
        probe.withUnsafeBytes { values in ours._appendRawElements(T.self, count: 2) { $0.copyMemory(from: values) } }
        return theirs.bytes == ours.bytes
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
