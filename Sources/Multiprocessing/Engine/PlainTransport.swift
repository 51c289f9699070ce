/// Which function types' inputs and outputs travel as plain numbers
/// (`ParallelFunction._plainTransport()`), decided once per type: a `map` of such a type has
/// its results decoded straight into the array it returns (`BatchJob`), and its chunks run
/// with no arrays in between in the worker (`ParallelFunction._runPlainChunk`, the worker
/// keeping its own verdict with each function value, `WorkerRuntime`).
enum PlainTransport {
    /// A process-wide lock, new and unlocked in a child forked while another thread held it.
    private static let lock = ConditionLock(resetInForkedChild: true)
    nonisolated(unsafe) private static var verdicts: [ObjectIdentifier: (inputs: Bool, outputs: Bool)] = [:]

    static func of<F: ParallelFunction>(_: F.Type) -> (inputs: Bool, outputs: Bool) {
        let key = ObjectIdentifier(F.self)
        if let known = lock.withLock({ verdicts[key] }) { return known }
        let verdict = F._plainTransport()
        lock.withLock { verdicts[key] = verdict }
        return verdict
    }
}
