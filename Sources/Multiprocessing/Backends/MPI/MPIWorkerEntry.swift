#if MPI
import CSystemShims
import MPI
#if canImport(Glibc)
import Glibc
#endif

/// The start-up hook's entry for ranks ≥ 1 of an mpirun job (before `main`).
enum MPIWorkerEntry {
    /// Runs the rank's relay (`RankRelay`) and returns its exit status: 0 after rank 0's
    /// `terminate`, 70 if MPI fails (which ends the job).
    static func run() -> Int32 {
        _ = CSystemShims_set_name("swiftmp-rank")
        let build = BuildID.current // while rank 0 may still be starting
        let communicator: Communicator
        do {
            communicator = try MPIProtocol.start()
        } catch {
            printError("swiftmp: worker rank \(MPILaunch.rank ?? -1): cannot start MPI: \(error)")
            return 70
        }
        MPIObjectClient.install(communicator)
        MPILaunch.hostRank = communicator.rank
        WorkerRuntime.servesThisProcess = true
        // `main` never runs on a worker rank; its local workers forward swift-log records to
        // rank 0 through it (`RankRelay`).
        WorkerLogging.bootstrapInFreshWorker()
        var worker = RankRelay(communicator: communicator, build: build)
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
#endif
