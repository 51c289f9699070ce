#if MPI
// SPMD self-test of the MPI layer: every rank runs this file.
//
//   mpirun -np N mpi-selftest                  every check; rank 0 prints "<check> ok" lines,
//                                              then "ALL OK size=N"; exit 1 on any mismatch
//   mpirun -np 2 mpi-selftest --pingpong       8-byte latency and 4 MiB bandwidth, JSON lines
//   mpirun -np N mpi-selftest --fail-on-rank R rank R exits with status 3 right after init
import MPI
#if canImport(Glibc)
import Glibc
#endif

let arguments = Array(CommandLine.arguments.dropFirst())

func optionValue(_ name: String) -> String? {
    guard let index = arguments.firstIndex(of: name), index + 1 < arguments.count else { return nil }
    return arguments[index + 1]
}

func fail(_ message: String, status: Int32) -> Never {
    fflush(nil)
    printError("mpi-selftest: \(message)")
    exit(status)
}

do {
    try MPIEnvironment.initialize(threadLevel: .funneled)
} catch {
    fail("\(error)", status: 2)
}

let world = Communicator.world

if let failRank = optionValue("--fail-on-rank").flatMap(Int.init), failRank == world.rank {
    fail("rank \(world.rank) failing on purpose (--fail-on-rank)", status: 3)
}

let status: Int32
do {
    if arguments.contains("--pingpong") {
        try PingPongReport(communicator: world).run()
        status = 0
    } else {
        let checks = SelfTest(communicator: world)
        try checks.runAll()
        status = checks.failures == 0 ? 0 : 1
    }
    fflush(nil)
    try MPIEnvironment.finalize()
} catch {
    fail("rank \(world.rank): \(error)", status: 1)
}
exit(status)
#else
// Built without the package's MPI trait: there is no MPI layer to test.
#if canImport(Glibc)
import Glibc
#endif
print("mpi-selftest: built without the MPI trait (swift build --disable-default-traits): there is no MPI to test")
exit(1)
#endif
