#if MPI
import CSystemShims
import MPI
#if canImport(Glibc)
import Glibc
#endif

/// The start-up hook's entry for ranks ≥ 1 of an mpirun job (before `main`).
enum MPIWorkerEntry {
    /// Runs the worker serve loop for this rank and returns its exit status: 0 after rank 0's
    /// `terminate`, 70 if MPI fails (which ends the job).
    static func run() -> Int32 {
        _ = CSystemShims_set_name("swiftmp-rank")
        let build = BuildID.current  // while rank 0 may still be starting
        let communicator: Communicator
        do {
            communicator = try MPIProtocol.start()
        } catch {
            printError("swiftmp: worker rank \(MPILaunch.rank ?? -1): cannot start MPI: \(error)")
            return 70
        }
        MPIObjectClient.install(communicator)
        WorkerRuntime.servesThisProcess = true
        // `main` never runs on a worker rank: forward swift-log records to rank 0. A record
        // is a blocking send on the pool tag (rank 0 always receives), from the serve thread.
        WorkerLogging.bootstrapInFreshWorker()
        WorkerLogSink.current = WorkerLogSink { record in
            _ = try? MessageBuffer.withPayload(record) { try communicator.send($0, to: 0, tag: MPIProtocol.poolTag) }
        }
        var worker = MPIWorker(communicator: communicator, build: build)
        do {
            try worker.serve()
        } catch {
            let host = (try? MPIEnvironment.processorName) ?? "?"
            printError("swiftmp: worker rank \(communicator.rank) on \(host): \(error); ending the job")
            return 70
        }
        do {
            try MPIEnvironment.finalize()
        } catch {
            printError("swiftmp: worker rank \(communicator.rank): \(error)")
            return 70
        }
        return 0
    }
}

/// A worker rank's serve loop: pool messages go to a `WorkerRuntime` (a fresh one per
/// pool), control messages answer rank 0's handshake and `terminate`. Idles with
/// `IdleBackoff` (no busy core while rank 0's program runs).
struct MPIWorker {
    let communicator: Communicator
    let build: BuildID
    private var runtime = WorkerRuntime()
    private var buffer: [UInt8] = []
    private var backoff = IdleBackoff()
    private var sameBuild = false
    /// Results on their way to rank 0. Sent without waiting: a large result goes by
    /// rendezvous, which completes only when rank 0 next polls — the worker computes the
    /// next task meanwhile instead of idling.
    private var sending: [Request] = []
    /// While a result is on its way, idle sleeps stay short: past the eager limit its data
    /// moves only when this rank calls MPI after rank 0 has answered, and rank 0 (or the
    /// caller of `map`, after the last result) waits for it.
    static let sendingSleep: Int64 = 50_000

    init(communicator: Communicator, build: BuildID) {
        self.communicator = communicator
        self.build = build
    }

    /// Returns after `terminate`.
    mutating func serve() throws {
        while true {
            if !sending.isEmpty { try completeSends() }
            guard let status = try communicator.receiveIfAvailable(from: .rank(0), tag: .any, into: &buffer) else {
                backoff.pause(longest: sending.isEmpty ? IdleBackoff.longestSleep : Self.sendingSleep)
                continue
            }
            backoff.noteActivity()
            if status.tag == MPIProtocol.poolTag {
                guard sameBuild else { continue }  // rank 0 refuses pools then; never happens
                try pushEarlierReplies()
                let action = buffer.withUnsafeBytes { runtime.handle($0) }
                switch action {
                case .none:
                    continue
                case .reply:
                    try startReply(runtime.reply)
                case .stop:
                    let stopped = runtime.reply
                    // Drop the pool's functions first: what they hold (a served Connection)
                    // is given back to rank 0 while it still serves objects.
                    runtime = WorkerRuntime()
                    try startReply(stopped)
                }
            } else if status.tag == MPIProtocol.controlTag {
                switch buffer.first.flatMap(MPIProtocol.Control.init(rawValue:)) {
                case .hello:
                    try answerHello()
                case .terminate:
                    for request in sending { _ = try request.wait() }
                    sending.removeAll()
                    try reply(MPIProtocol.controlMessage(.terminated), tag: MPIProtocol.controlTag)
                    return
                default:
                    continue
                }
            }
        }
    }

    private mutating func answerHello() throws {
        let theirs = try buffer.withUnsafeBytes { raw throws -> BuildID in
            var reader = WireReader(raw)
            _ = try reader.read(UInt8.self)
            return BuildID(hash: try reader.read(UInt64.self), size: try reader.read(UInt64.self))
        }
        sameBuild = theirs == build
        let host = (try? MPIEnvironment.processorName) ?? "?"
        let answer = MPIProtocol.controlMessage(.helloReply) { [build, sameBuild] in
            $0.write(UInt8(sameBuild ? 1 : 0))
            $0.write(host)
            $0.write(build.hash)
            $0.write(build.size)
        }
        try reply(answer, tag: MPIProtocol.controlTag)
    }

    /// Starts sending a pool reply (a copy of the message after its headroom); messages on
    /// one tag arrive in order.
    private mutating func startReply(_ message: WireWriter) throws {
        let request = try MessageBuffer.withPayload(message) { try communicator.isend($0, to: 0, tag: MPIProtocol.poolTag) }
        sending.append(request)
    }

    /// Before a task runs (MPI is not called until it ends): moves the data of earlier
    /// replies that rank 0 is ready for. A reply past the eager limit needs several progress
    /// steps after rank 0's answer (take the answer, schedule, send); with a single `test`
    /// between tasks, two thirds of Mandelbrot's 32 KiB results reached rank 0 two tasks
    /// late (a third still do: rank 0 had not answered yet), and rank 0 ran the worker out of
    /// work. The newest reply is left alone (rank 0 cannot have answered it yet); a few tries
    /// at most: with `mpi_yield_when_idle` every futile
    /// try yields the CPU, which under load cost ~50 ms per run at 16 tries.
    private mutating func pushEarlierReplies() throws {
        var tries = 0
        while sending.count > 1 && tries < 4 {
            try completeSends()
            tries += 1
        }
    }

    /// Forgets the sends that completed.
    private mutating func completeSends() throws {
        var index = 0
        while index < sending.count {
            if try sending[index].test() != nil { sending.remove(at: index) } else { index += 1 }
        }
    }

    /// A blocking send: rank 0 never blocks on a worker, it always receives.
    private func reply(_ bytes: [UInt8], tag: Int) throws {
        try bytes.withUnsafeBytes { try communicator.send($0, to: 0, tag: tag) }
    }
}
#endif
