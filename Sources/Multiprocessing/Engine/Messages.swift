/// The messages between the master and its workers, on every backend.
///
/// Master → worker: `define` (function id, type name, encoded function value — once per
/// function, not per chunk), `undefine`, `chunk` (task id, function id, encoded inputs),
/// `stop`. Worker → master: `result` (task id, encoded outputs), `failure` (task id, position
/// in the chunk, whether the function itself threw, type name, description), `stopped`.
enum MasterMessage: UInt8 {
    case define = 1
    case undefine = 2
    case chunk = 3
    case stop = 4
}

enum WorkerMessage: UInt8 {
    case result = 1
    case failure = 2
    case stopped = 3
}

/// Why a chunk failed in a worker.
enum FailureKind: UInt8 {
    /// The function threw: the caller gets `RemoteError`.
    case threw = 0
    /// The function could not be resolved or decoded, or inputs/outputs could not be
    /// decoded/encoded: the caller gets `PoolError`.
    case machinery = 1
    /// The pool's initializer threw in this worker: the caller gets `PoolError.startFailed`.
    case initializer = 2
}
