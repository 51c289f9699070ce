#if canImport(Glibc)
import Glibc
#endif

/// Threads that the MPI library started in `MPI_Init` (Open MPI 4.1: its async progress
/// thread and PMIx's), and a wait until they have nothing left to run (Linux: read from
/// `/proc/self/task`; elsewhere there is nothing to wait for).
///
/// Why `MPIEnvironment.finalize` waits for them: Open MPI 4.1's `MPI_Finalize` closes, and
/// unloads, its PMIx component (`mca_pmix_ext3x.so`) before it stops its async progress
/// thread. `MPI_Init` ends by declaring the programming model, a PMIx event that the PMIx
/// thread hands to that progress thread, whose handler is in the PMIx component. On a loaded
/// machine a rank that finalises right after `MPI_Init` (a program that never makes a pool
/// starts MPI at exit and finalises at once, and so do its worker ranks) can reach
/// `MPI_Finalize` before that thread ran the handler: the thread then calls into the unloaded
/// component while `MPI_Finalize` joins it (SIGSEGV, "address not mapped").
struct LibraryThreads: Sendable {
    /// The threads' ids (Linux thread ids).
    let ids: Set<pid_t>

    /// The threads of this process now; empty without `/proc`.
    static func current() -> Set<pid_t> {
        guard let directory = opendir("/proc/self/task") else { return [] }
        defer { closedir(directory) }
        var ids: Set<pid_t> = []
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            if let id = pid_t(name) { ids.insert(id) }
        }
        return ids
    }

    /// Runs `body` and returns its result with the threads that were alive after it and not
    /// before (those it started and left running).
    static func started<T, E: Error>(by body: () throws(E) -> T) throws(E) -> (T, LibraryThreads) {
        let before = current()
        let result = try body()
        return (result, LibraryThreads(ids: current().subtracting(before)))
    }

    /// One thread's state, from `/proc`.
    struct Sample: Equatable {
        /// Whether it is blocked waiting for an event (in `poll`, `select` or `epoll_wait`).
        let waits: Bool
        /// The CPU time it has used so far (ns).
        let runtime: UInt64
    }

    /// Thread `id` of this process now; nil if it has ended.
    static func sample(_ id: pid_t) -> Sample? {
        // "<ns on CPU> <ns waiting for a CPU> <time slices>"
        guard let schedstat = read("/proc/self/task/\(id)/schedstat"),
            let runtime = schedstat.split(separator: " ").first.flatMap({ UInt64($0) }),
            let syscall = read("/proc/self/task/\(id)/syscall")
        else { return nil }
        // "<number> <arguments…>" while blocked in a system call, "running" otherwise.
        let number = syscall.split(separator: " ").first.flatMap { Int($0) }
        return Sample(waits: number.map(eventWaits.contains) ?? false, runtime: runtime)
    }

    /// The system calls in which an event loop waits.
    static let eventWaits: Set<Int> = {
        #if arch(x86_64)
        // poll, select, epoll_wait, pselect6, ppoll, epoll_pwait, epoll_pwait2
        return [7, 23, 232, 270, 271, 281, 441]
        #elseif arch(arm64)
        // epoll_pwait, pselect6, ppoll, epoll_pwait2
        return [22, 72, 73, 441]
        #else
        return []
        #endif
    }()

    /// Waits until every thread has ended or waits for an event, twice in a row 1 ms apart
    /// without having run in between: what was queued for them has been run. Returns false
    /// if that did not happen within `timeoutNanoseconds` (a thread that keeps working).
    func waitUntilQuiet(timeoutNanoseconds: UInt64) -> Bool {
        let deadline = Self.now() &+ timeoutNanoseconds
        var previous: [pid_t: Sample]?
        while true {
            var samples: [pid_t: Sample] = [:]
            var quiet = true
            for id in ids {
                guard let sample = Self.sample(id) else { continue }
                samples[id] = sample
                if !sample.waits { quiet = false }
            }
            if samples.isEmpty { return true } // all ended (or none)
            if quiet, let previous, samples == previous.filter({ samples[$0.key] != nil }) { return true }
            previous = quiet ? samples : nil
            if Self.now() >= deadline { return false }
            var pause = timespec(tv_sec: 0, tv_nsec: 1_000_000)
            _ = nanosleep(&pause, nil) // an early wake-up only samples sooner
        }
    }

    private static func now() -> UInt64 {
        var time = timespec()
        precondition(clock_gettime(CLOCK_MONOTONIC, &time) == 0, "CLOCK_MONOTONIC is always there on Linux")
        return UInt64(time.tv_sec) &* 1_000_000_000 &+ UInt64(time.tv_nsec)
    }

    /// A small `/proc` file's text; nil if it cannot be read (the thread ended).
    private static func read(_ path: String) -> String? {
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { return nil }
        defer { close(descriptor) }
        var buffer = [UInt8](repeating: 0, count: 256)
        let count = buffer.withUnsafeMutableBytes { Glibc.read(descriptor, $0.baseAddress, $0.count) }
        guard count > 0 else { return nil }
        return String(decoding: buffer.prefix(count), as: UTF8.self)
    }
}
