import Multiprocessing

#if MPI
import MPI
#endif

/// `swiftmp bench pingpong`: Communicator ping-pong between ranks 0 and 1 (8-byte latency,
/// 4 MiB bandwidth). Every rank must run it, so it needs the SPMD opt-out:
/// `SWIFTMP_MPI_MODE=spmd Scripts/mpirun.sh -np 2 swiftmp bench pingpong`.
enum PingPongBenchmark {
    static func run(_ emit: (Figure) -> Void) throws {
        #if !MPI
        throw BenchmarkError.setup(
            "the pingpong suite needs MPI: swiftmp was built without the MPI trait (swift build "
                + "without --disable-default-traits)")
        #else
        guard MPILaunchInfo.isUnderMPIRun else {
            throw BenchmarkError.setup("the pingpong suite needs two MPI ranks: SWIFTMP_MPI_MODE=spmd Scripts/mpirun.sh -np 2 swiftmp bench pingpong")
        }
        guard MPILaunchInfo.isSPMD else {
            throw BenchmarkError.setup("the pingpong suite runs on every rank: set SWIFTMP_MPI_MODE=spmd (ranks ≥ 1 otherwise serve pools)")
        }
        let level = try MPIEnvironment.initialize(threadLevel: .funneled)
        defer { try? MPIEnvironment.finalize() }
        let pingPong = PingPong(communicator: .world)
        let latency = try pingPong.oneWaySeconds(bytes: 8, warmup: 1000, repetitions: 10_000)
        let bandwidth = try pingPong.oneWaySeconds(bytes: 4 << 20, warmup: 5, repetitions: 50)
        if let latency, let bandwidth {
            emit(
                Figure(
                    name: "mpi.pingpong.latency_8B", value: latency * 1e6, unit: "us",
                    extra: ["thread_level": Double(level.rawValue)]))
            emit(Figure(name: "mpi.pingpong.bandwidth_4MiB", value: Double(4 << 20) / bandwidth / 1e6, unit: "MB/s"))
        }
        try Communicator.world.barrier()
        #endif
    }
}
