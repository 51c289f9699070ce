#if canImport(Glibc)
import Glibc
#endif

/// A process started by Slurm as one of several tasks of an `srun` step, but not by an MPI
/// launch this Open MPI can use: `srun -n 4 prog` with `--mpi=none` (the usual default) or
/// `--mpi=pmi2`. Nothing then tells the task it is a rank — `Backend.automatic` is local, and
/// an `MPI_Init` would make a world of one (Open MPI's singleton fallback) — so every task
/// would run the whole program by itself.
///
/// Read from the environment by the start-up hook, before `main`: an srun step
/// (`SLURM_STEP_ID`; the batch script itself has none) of more than one task
/// (`SLURM_STEP_NUM_TASKS`), without `OMPI_COMM_WORLD_SIZE` (mpirun) or `PMIX_RANK`
/// (`srun --mpi=pmix`). `SWIFTMP_INDEPENDENT_TASKS=1` says the copies are meant.
struct SlurmMisLaunch: Sendable, Equatable {
    /// The step's number of tasks (> 1).
    var tasks: Int
    /// This task's index in the step (`SLURM_PROCID`).
    var task: Int

    /// The current environment's verdict.
    static var current: SlurmMisLaunch? {
        detect { name in getenv(name).map { String(cString: $0) } }
    }

    static func detect(_ variable: (String) -> String?) -> SlurmMisLaunch? {
        if variable("SWIFTMP_INDEPENDENT_TASKS") == "1" { return nil }
        guard variable("SLURM_STEP_ID") != nil || variable("SLURM_STEPID") != nil else { return nil }
        guard let tasks = (variable("SLURM_STEP_NUM_TASKS") ?? variable("SLURM_NTASKS")).flatMap({ Int($0) }), tasks > 1 else {
            return nil
        }
        if variable("OMPI_COMM_WORLD_SIZE") != nil || variable("PMIX_RANK") != nil { return nil }
        return SlurmMisLaunch(tasks: tasks, task: variable("SLURM_PROCID").flatMap { Int($0) } ?? 0)
    }

    /// What to tell the user; `program` is the executable's name.
    func message(program: String) -> String {
        "\(program): started as \(tasks) Slurm tasks, but not by MPI: every task would be an MPI world of one and run the "
            + "whole program by itself. Launch it with `srun --mpi=pmix \(program) …` (`srun --mpi=list` shows what the "
            + "cluster offers; --mpi=none and --mpi=pmi2 do not start Open MPI ranks), or with `mpirun \(program) …` "
            + "inside the allocation (sbatch or salloc); set SWIFTMP_INDEPENDENT_TASKS=1 to run independent copies on purpose"
    }

    /// This executable's file name (for messages), or "program".
    static var programName: String {
        var buffer = [CChar](repeating: 0, count: 4096)
        let count = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        guard count > 0 else { return "program" }
        let path = String(decoding: buffer.prefix(count).map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return path.split(separator: "/").last.map(String.init) ?? "program"
    }
}

/// The start-up hook's first check (before `main`): a program started as several Slurm tasks
/// that MPI did not launch (`SlurmMisLaunch`) exits with status 1 instead of running once per
/// task. Task 0 says how to launch it; the others exit quietly, so that the job's log has the
/// message once.
@_cdecl("swiftmp_launch_check")
func swiftmpLaunchCheck() -> Int32 {
    guard let misLaunch = SlurmMisLaunch.current else { return 0 }
    if misLaunch.task == 0 { printError(misLaunch.message(program: SlurmMisLaunch.programName)) }
    return 1
}
