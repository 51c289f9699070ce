import CSystemShims

#if canImport(Glibc)
import Glibc
#endif

/// A `.fork` child of a `Process` is queued on the CPU of the thread that forks it: that
/// thread is restricted to its current CPU around `fork` (the child inherits the
/// restriction), then gives itself and the child their affinity back; the child's first step
/// does too (should the parent's call for it have failed).
///
/// Left to itself the kernel queues a new child on the idlest CPU. On a VM whose idle vCPUs
/// halt, that CPU must be woken first (and, once the parent sleeps in `join`, the parent's
/// too when the child ends), and on a busy machine the child waits there behind other work.
/// Queued behind its parent, a short child runs as soon as the parent waits for it, on a CPU
/// that is awake (`Benchmarks/reports/process-start.md`). It is only queued there: it has
/// the thread's affinity from the start, so the scheduler moves it as usual when the parent
/// keeps its CPU busy.
///
/// `SWIFTMP_PROCESS_SAME_CPU=0` leaves the placement to the kernel.
enum SameCPUStart {
    static let enabled: Bool = {
        guard let value = getenv("SWIFTMP_PROCESS_SAME_CPU") else { return true }
        return String(cString: value) != "0"
    }()

    /// Saves the calling thread's affinity in `saved` and restricts the thread to its current
    /// CPU. False (nothing changed) when disabled or when the system cannot (a machine with
    /// more than 1024 CPUs): the child then starts wherever the kernel puts it.
    static func pin(saving saved: inout CSystemShims_affinity) -> Bool {
        enabled && CSystemShims_pin_to_current_cpu(&saved) == 0
    }

    /// Gives the calling thread its saved affinity back; the failure, if any.
    static func restore(_ saved: CSystemShims_affinity) -> SystemError? {
        var saved = saved
        if CSystemShims_restore_affinity(&saved) == 0 { return nil }
        return SystemError(
            "sched_setaffinity (giving the thread that started a process its CPUs back; SWIFTMP_PROCESS_SAME_CPU=0 avoids the call)",
            errno: errno)
    }

    /// In the parent, right after the fork: gives the calling thread its saved affinity back,
    /// and the new child too, so that a child that has not run yet may be moved to another
    /// CPU while this thread keeps its own busy (it is only queued here). The child's own
    /// first step does the same, so a failure for the child changes nothing but that (a
    /// sandbox may refuse `sched_setaffinity` on another process): only the thread's is
    /// returned.
    static func restore(_ saved: CSystemShims_affinity, child: pid_t) -> SystemError? {
        var copy = saved
        _ = CSystemShims_set_affinity_of(child, &copy)
        return restore(saved)
    }
}
