import CSystemShims

#if canImport(Glibc)
import Glibc
#endif

/// A `.fork` child of a `Process` starts on the CPU of the thread that forks it: that thread
/// is restricted to its current CPU around `fork` (the child inherits the restriction and
/// lifts it as its first step), then gets its own affinity back.
///
/// Left to itself the kernel queues a new child on the idlest CPU. On a VM whose idle vCPUs
/// halt, that CPU must be woken first (and, once the parent sleeps in `join`, the parent's
/// too when the child ends), and on a busy machine the child waits there behind other work:
/// start + join of an empty target took 0.5–0.9 ms there, 0.39–0.45 ms with the child queued
/// behind its parent (`Benchmarks/reports/process-start.md`). The child is only *queued* there:
/// once it runs it has the thread's affinity again and the scheduler moves it as usual.
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
        return SystemError("sched_setaffinity (giving the thread that started a process its CPUs back)", errno: errno)
    }

    /// In the new child: the parent thread's affinity, or the child ends (status 70) saying
    /// why — it must not run its target held to one CPU.
    static func restoreInChild(_ saved: CSystemShims_affinity) {
        guard let failure = restore(saved) else { return }
        printError("swiftmp child \(getpid()): \(failure)")
        _exit(70)
    }
}
