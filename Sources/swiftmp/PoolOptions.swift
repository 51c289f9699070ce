import ArgumentParser
import Multiprocessing

/// Options every parallel subcommand shares.
struct PoolOptions: ParsableArguments {
    @Option(name: [.short, .long], help: "Worker processes (default: the CPUs this process may use). Under mpirun the workers are the other ranks.")
    var processes: Int?

    @Option(help: "Where workers run: auto (mpi when launched by mpirun, else local), local or mpi.")
    var backend: BackendChoice = .auto

    @Option(help: "How local workers start: automatic, fork, forkserver or spawn.")
    var startMethod: StartMethodChoice = .automatic

    @Option(help: "Inputs per task (default: as Python's Pool.map, ceil(n / (4 × workers))).")
    var chunkSize: Int?

    @Flag(help: "Print one JSON object instead of text.")
    var json = false

    func validate() throws {
        if let processes, processes < 1 {
            throw ValidationError("--processes must be at least 1 (got \(processes)).")
        }
        if let chunkSize, chunkSize < 1 {
            throw ValidationError("--chunk-size must be at least 1 (got \(chunkSize)).")
        }
    }

    /// A pool configured by these options.
    func makePool(defaultProcesses: Int? = nil) throws -> Pool {
        try Pool(processes: processes ?? defaultProcesses, startMethod: startMethod.method, backend: backend.backend)
    }
}

enum BackendChoice: String, ExpressibleByArgument, CaseIterable {
    case auto, local, mpi

    var backend: Backend {
        switch self {
        case .auto: return .automatic
        case .local: return .local
        case .mpi: return .mpi
        }
    }
}

enum StartMethodChoice: String, ExpressibleByArgument, CaseIterable {
    case automatic, fork, forkserver, spawn

    var method: StartMethod {
        switch self {
        case .automatic: return .automatic
        case .fork: return .fork
        case .forkserver: return .forkserver
        case .spawn: return .spawn
        }
    }
}
