import CSystemShims

#if canImport(Glibc)
import Glibc
#endif

/// The child side of a `Process`: decode the target, run it once, report failure as exit
/// status 1 with the error on standard error (Python prints the traceback and exits 1).
enum ProcessEntry {
    /// Runs the target described by the payload at `payloadDescriptor`; returns the exit status.
    static func run(payloadDescriptor: Int32, control: Int32) -> Int32 {
        let payload: ProcessPayload
        do {
            let region = try SharedRegion(adopting: payloadDescriptor)
            payload = try ProcessPayload(reading: region)
        } catch {
            printError("swiftmp process: cannot read what the parent sent: \(error)")
            return 71
        }
        guard let type = FunctionIdentity.resolve(payload.typeName) else {
            CurrentProcess.becomeChild(named: payload.name, daemon: payload.daemon, ordinal: payload.ordinal)
            printError(
                "Process \(payload.name): the target type \(FunctionIdentity.readableName(payload.typeName)) cannot be "
                    + "found by name; declare it internal or public at file scope")
            return 71
        }
        return run(payload: payload, control: control) { reader in try decode(type, &reader) }
    }

    /// Runs the target in `payload`, decoded by `decode` (a forked child is handed the
    /// payload and the decoder directly: nothing to read or look up by name). `control` is
    /// the socket the target's descriptors arrive on, or -1 when it mentions none.
    static func run(
        payload: ProcessPayload, control: Int32,
        decode: (inout WireReader) throws -> any ParallelFunction
    ) -> Int32 {
        CurrentProcess.becomeChild(named: payload.name, daemon: payload.daemon, ordinal: payload.ordinal)
        let function: any ParallelFunction
        do {
            let inbox = control >= 0 ? DescriptorInbox(socket: control) : nil
            let fetch = { (id: SegmentID) in try inbox?.descriptor(for: id) }
            function = try AttachmentContext.receiving(fetch) {
                try payload.target.withUnsafeBytes { raw in
                    var reader = WireReader(raw)
                    return try decode(&reader)
                }
            }
        } catch {
            printError("Process \(payload.name): cannot decode the target \(FunctionIdentity.readableName(payload.typeName)): \(error)")
            return 71
        }
        if control >= 0 { systemClose(control) }
        return finish(name: payload.name) { try runOnce(function) }
    }

    /// Runs a forked child's target as it is in memory: the child has a copy of the parent's
    /// memory, so a target that mentions no shared objects or connections needs no decoding
    /// (what Python's fork start method does: the child calls the parent's target object).
    /// Its identity (`name`, `daemon`) was recorded by the parent before the fork
    /// (`CurrentProcess.prepareForkedChild`). Inlined with `finish` into the child's code, so
    /// that `call` is not copied (retained) on the way.
    @inline(__always)
    static func run(inMemory call: () throws -> Void, name: String) -> Int32 {
        finish(name: name, call)
    }

    /// Calls `body`; a throw is exit status 1 with the error on standard error. Then, as
    /// Python's exit function does in a child, terminates the daemon children the target
    /// left running and waits for the others (the child ends with `_exit`, so the `atexit`
    /// handler that does this in the main process does not run here).
    @inline(__always)
    private static func finish(name: String, _ body: () throws -> Void) -> Int32 {
        if CSystemShims_die_of_sent_crash_signals() != 0 {
            printError("Process \(name) (pid \(getpid())): a crash signal it sends itself may not end it: \(SystemError("sigaction", errno: errno))")
        }
        var status: Int32 = 0
        do {
            try body()
        } catch {
            fflush(nil)
            printError("Process \(name) (pid \(getpid())): the target threw \(String(reflecting: Swift.type(of: error))): \(error)")
            status = 1
        }
        ProcessRegistry.endChildren()
        CSystemShims_flush_all()
        return status
    }

    private static func decode<F: ParallelFunction>(_: F.Type, _ reader: inout WireReader) throws -> any ParallelFunction {
        try reader.decode(F.self)
    }

    /// Calls a `ParallelFunction<Void, Void>` once, through its chunk entry point (one Void input).
    private static func runOnce<F: ParallelFunction>(_ function: F) throws {
        var input = WireWriter(capacity: 16)
        input.write(UInt64(1))
        var output = WireWriter(capacity: 16)
        var failure: (any Error)?
        var position = 0
        try input.bytes.withUnsafeBytes { raw in
            var reader = WireReader(raw)
            try function._runChunk(&reader, into: &output, progress: &position) { _, _, error in failure = error }
        }
        if let failure { throw failure }
    }
}
