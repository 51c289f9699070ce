#if canImport(Glibc)
import Glibc
#endif

/// Runs `Process` targets on the worker ranks of an mpirun job (when `MPIObjects.isServing`).
///
/// The first `start()` opens an implicit MPI pool over every worker rank; each target runs
/// as an exclusive task (`Job.exclusive`): alone on one of the local worker processes the
/// ranks host, which runs nothing else meanwhile, so that running processes never wait behind
/// each other. At most one process per worker runs at a time (a start beyond that throws,
/// rather than queueing a target that others may be waiting for). The pool closes when a `join()` finds no process running, so
/// that the program can make its own `Pool` afterwards; while it lives, it holds every free
/// worker (a `Pool` made then finds none free, and a `Process` started while the program's own
/// MPI pool holds every worker is refused too — use `pool.apply` there).
final class MPIProcessHost: @unchecked Sendable {
    static let shared = MPIProcessHost()

    private let lock = ConditionLock()
    // Under `lock`.
    private var pool: Pool?
    private var running = 0

    /// The target's outcome: its exit code, 0 or 1 (it threw; the error was printed on its rank).
    ///
    /// The worker rank drops its copy of the target as soon as it has run (not when the
    /// implicit pool ends), as a local child's memory goes when it exits: a `Connection` it
    /// holds is closed then, so that the peer's `recv` sees end-of-file.
    struct Target<F: ParallelFunction>: ParallelFunction where F.Input == Void, F.Output == Void {
        /// Holds the target until it runs.
        final class Slot: @unchecked Sendable {
            var target: F?
            init(_ target: F) { self.target = target }
        }

        let slot: Slot
        var name: String

        init(target: F, name: String) {
            slot = Slot(target)
            self.name = name
        }

        private enum CodingKeys: String, CodingKey { case target, name }

        init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            slot = Slot(try container.decode(F.self, forKey: .target))
            name = try container.decode(String.self, forKey: .name)
        }

        func encode(to encoder: any Encoder) throws {
            guard let target = slot.target else {
                throw ProcessError(.alreadyStarted, "process \(name) already ran: a Process runs once — create a new one")
            }
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(target, forKey: .target)
            try container.encode(name, forKey: .name)
        }

        func callAsFunction(_: Void) -> Int32 {
            guard let target = slot.target else {
                printError("Process \(name) (MPI rank \(MPILaunch.rank ?? -1)) was asked to run twice; it runs once")
                return 1
            }
            slot.target = nil
            do {
                try target(())
                fflush(nil)
                return 0
            } catch {
                fflush(nil)
                printError("Process \(name) (MPI rank \(MPILaunch.rank ?? -1)): \(String(reflecting: type(of: error))): \(error)")
                return 1
            }
        }
    }

    func start<F: ParallelFunction>(_ target: F, name: String) throws -> AsyncResult<Int32>
    where F.Input == Void, F.Output == Void {
        lock.lock()
        defer { lock.unlock() }
        if pool == nil {
            do {
                pool = try Pool(
                    processes: nil, startMethod: .automatic, initializer: nil, maxTasksPerChild: nil, taskTimeout: nil,
                    retry: .none, processesPerRank: nil, backend: .mpi, tagOutput: nil, relayOnly: true)
            } catch {
                throw ProcessError(
                    .startFailed,
                    "cannot start process \(name) on an MPI worker rank: \(error) — while the "
                        + "program's own MPI Pool is live, run the target with pool.apply(target, ()) instead")
            }
        }
        let pool = pool!
        guard running < pool.processes else {
            throw ProcessError(
                .startFailed,
                "cannot start process \(name): each of the \(pool.processes) worker(s) the "
                    + "worker ranks of this mpirun job host runs a Process already; join() one first, or launch with more ranks")
        }
        let result: AsyncResult<Int32>
        do {
            result = try pool.applyExclusive(Target(target: target, name: name), ()) { [weak self] in self?.ended() }
        } catch {
            throw ProcessError(.startFailed, "cannot start process \(name) on an MPI worker rank: \(error)")
        }
        running += 1
        return result
    }

    private func ended() {
        lock.withLock { running -= 1 }
    }

    /// Closes the implicit pool if no process runs (called after a `join` saw its end).
    func releaseIfIdle() {
        let idle: Pool? = lock.withLock {
            guard running == 0, let pool else { return nil }
            self.pool = nil
            return pool
        }
        guard let idle else { return }
        idle.close()
        try? idle.join()
    }
}
