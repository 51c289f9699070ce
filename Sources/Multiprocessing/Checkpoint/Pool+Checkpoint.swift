extension Pool {
    /// Submits a batch whose finished results go to the journal at `path`; inputs the journal
    /// already has are not run again (`map(…, checkpoint:)`).
    func submitCheckpointed<F: ParallelFunction, Value>(
        _ function: F, _ inputs: [F.Input], path: String, chunkSize: Int?, timeout: Double?, retry: RetryPolicy?,
        progress: ProgressReport?, completion: Completion<Value>, _ transform: @escaping ([F.Output]) -> Value
    ) throws -> AsyncResult<Value> {
        let definition = try FunctionDefinition.make(function)
        // The inputs' hash (their encoding hashed: a millisecond or so for millions of numbers,
        // more for inputs that must be encoded first) is computed by the journal's writer
        // thread while the map runs when the journal is new.
        let (journal, records) = try CheckpointJournal.open(
            path: path, typeName: definition.typeName, functionHash: stripeHash(definition.bytes), count: inputs.count,
            directWrites: true
        ) {
            if let hash = try rawInputsHash(F.self, inputs) { return hash }
            // Sized for the encoding of fixed-size inputs at once: growing it by doubling to
            // (say) 16 MB copies and faults in twice that.
            var encodedInputs = WireWriter(capacity: 64 + min(inputs.count * MemoryLayout<F.Input>.stride, 1 << 28))
            try inputs.withUnsafeBufferPointer { try F._encodeInputs($0, into: &encodedInputs) }
            return stripeHash(encodedInputs.bytes)
        }
        // A fresh journal (the common case) skips the bookkeeping of what is known: this
        // function is generic and runs unspecialised, at tens of ns per element and pass.
        let fresh = records.isEmpty
        var known: [F.Output?] = fresh ? [] : Array(repeating: nil, count: inputs.count)
        for record in records {
            let outputs = try record.outputs.withUnsafeBytes { raw -> [F.Output] in
                var reader = WireReader(raw)
                do {
                    return try F._decodeOutputs(from: &reader)
                } catch {
                    throw CheckpointError(.corrupt, "the checkpoint \(path) holds results that are not \(F.Output.self): \(error)")
                }
            }
            guard outputs.count == record.indices.count else {
                throw CheckpointError(
                    .corrupt,
                    "the checkpoint \(path) holds a record of \(outputs.count) results for "
                        + "\(record.indices.count) inputs; delete it to start again")
            }
            for (index, output) in zip(record.indices, outputs) { known[index] = output }
        }
        let remaining = fresh ? [] : known.indices.filter { known[$0] == nil }
        if fresh ? inputs.isEmpty : remaining.isEmpty {
            if let failure = journal.close() {
                completion.complete(.failure(failure))
                return AsyncResult(completion, engine: engine)
            }
            // Nothing runs, but the call's progress still ends: every input settled, from the
            // journal (a `.callback` gets its final update; a bar or lines, as for any call that
            // ends before its first report, print nothing).
            if let progress {
                let meter = ProgressMeter(progress, total: 0)
                meter.resume(inputs.count)
                meter.finish()
            }
            completion.complete(.success(transform(known.map { $0! })))
            return AsyncResult(completion, engine: engine)
        }
        let finish: (Result<[F.Output], any Error>) -> Void = { result in
            // A journal that could not be written (its header, computed while the map ran, or
            // the last records) fails the call: the results are not safe on disk.
            let failure = journal.close()
            // The job holds only the inputs the journal lacked: its input i is the call's
            // input remaining[i], which is what a failure names.
            let result = fresh ? result : result.mapError { renumbered($0) { $0 >= 0 && $0 < remaining.count ? remaining[$0] : $0 } }
            completion.complete(
                result.flatMap { computed in
                    if let failure { return .failure(failure) }
                    if fresh { return .success(transform(computed)) }
                    var all = known
                    for (position, index) in remaining.enumerated() { all[index] = computed[position] }
                    return .success(transform(all.map { $0! }))
                })
        }
        let job = try batch(
            function, fresh ? inputs : remaining.map { inputs[$0] }, chunkSize: chunkSize, timeout: timeout,
            retry: retry, progress: progress, definition: definition,
            prepare: { job in
                // The call's progress counts what the journal gave as done (of all the inputs).
                if !fresh { job.progress?.resume(inputs.count - remaining.count) }
                journal.expect(inputs: fresh ? inputs.count : remaining.count)
                // The engine runs `everyRound` after each round's deliveries: records are
                // handed off on time there, and `append` reads no clock.
                job.onDeliver = { span, outputs in
                    try journal.append(
                        indices: fresh ? .range(span.first..<span.end) : .list(Array(remaining[span.first..<span.end])),
                        outputs: outputs, checkingTime: false)
                }
                job.everyRound = { job in
                    do {
                        try journal.flushIfDue()
                    } catch {
                        job.failAll(error)
                    }
                }
            }, finish: finish)
        return AsyncResult(completion, engine: engine, cancel: { [weak engine] in engine?.cancel(job) })
    }
}

/// `error` with the input it names read through `position` (a resumed run's job index → the
/// call's input index).
func renumbered(_ error: any Error, _ position: (Int) -> Int) -> any Error {
    switch error {
    case var remote as RemoteError:
        remote.inputIndex = position(remote.inputIndex)
        return remote
    case var died as WorkerDied:
        died.inputIndex = died.inputIndex.map(position)
        return died
    case var late as TaskTimedOut:
        late.inputIndex = position(late.inputIndex)
        return late
    case var exhausted as RetriesExhausted:
        exhausted.renumber(position)
        return exhausted
    default:
        return error
    }
}

/// The inputs' hash (`stripeHash` of `F._encodeInputs(inputs)`) without encoding them, when they
/// are numbers whose encoding is their count (a varint) and their bytes — checked on the
/// first few: nil otherwise. Millions of numbers are hashed in place instead of copied first.
func rawInputsHash<F: ParallelFunction>(_: F.Type, _ inputs: [F.Input]) throws -> UInt64? {
    #if _endian(little)
    guard F.Input.self is any WireRawElement.Type, MemoryLayout<F.Input>.size == MemoryLayout<F.Input>.stride else {
        return nil
    }
    return try inputs.withUnsafeBufferPointer { buffer -> UInt64? in
        let raw = UnsafeRawBufferPointer(buffer)
        let sample = min(buffer.count, 4)
        var encoded = WireWriter(capacity: 64)
        try F._encodeInputs(UnsafeBufferPointer(rebasing: buffer[0..<sample]), into: &encoded)
        var expected = WireWriter(capacity: 64)
        expected.writeVarint(UInt64(sample))
        expected.writeRaw(UnsafeRawBufferPointer(rebasing: raw[0..<(sample * MemoryLayout<F.Input>.stride)]))
        guard encoded.deferredBlocks.isEmpty, encoded.bytes == expected.bytes else { return nil }
        var count = WireWriter(capacity: 16)
        count.writeVarint(UInt64(buffer.count))
        var hasher = StripeHasher()
        count.bytes.withUnsafeBytes { hasher.add($0) }
        hasher.add(raw)
        return hasher.finish()
    }
    #else
    return nil
    #endif
}
