import CSystemShims
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// How a reader waits for a socket that has nothing to read yet: it spins (pausing) for
/// 50 µs, then yields the CPU until 1 ms, then sleeps in `poll`. A sleeping wake-up costs
/// 20–130 µs on each side of a round trip on small VMs (more on an idle machine, whose
/// cores drop into deep idle states), so a peer that answers within microseconds must find
/// its reader awake. Used by `Connection` and by the manager's client and server.
///
/// Only while the machine has a CPU free for the peer (`SpinGate`): on a machine with more
/// runnable threads than CPUs, a reader that stays awake takes the CPU its peer needs to
/// answer (an 8-byte ping-pong took 2 ms instead of 10 µs on a 2-CPU machine with ~10
/// runnable threads), so it sleeps in `poll` at once.
struct ReadinessWait {
    static let spinNanoseconds: UInt64 = 50_000
    static let yieldNanoseconds: UInt64 = 1_000_000

    private var started: UInt64 = 0
    private var awake = true

    /// Something arrived: the next wait spins again.
    mutating func reset() { started = 0 }

    /// Waits once: a pause, a yield, or (after the spin and yield phases) `poll` on `fd`
    /// for `events` until something happens or `sleepNanoseconds` pass (-1: no limit).
    /// Returns true when the caller should try its non-blocking read again.
    @discardableResult
    mutating func pause(_ fd: Int32, events: Int16 = Int16(POLLIN), sleepNanoseconds: Int64 = -1) -> Bool {
        let now = monotonicNanoseconds()
        if started == 0 {
            started = now
            awake = SpinGate.spinningPays(now: now)
        }
        guard awake else { return pollOnce(fd, events: events, timeoutNanoseconds: sleepNanoseconds) }
        let waited = now &- started
        if waited < Self.spinNanoseconds {
            CSystemShims_cpu_relax()
            return true
        }
        if waited < Self.spinNanoseconds &+ Self.yieldNanoseconds {
            sched_yield()
            return true
        }
        return pollOnce(fd, events: events, timeoutNanoseconds: sleepNanoseconds)
    }
}

/// Whether a waiter should stay awake (spin, yield) for a peer that answers within
/// microseconds: only while no more threads are runnable than the machine has CPUs (the
/// running count of `/proc/loadavg`, which counts the asking thread itself), so that the
/// peer has a CPU to answer on. Read at most every 2 ms per process; without
/// `/proc/loadavg`, waiters stay awake as they always did. (Not the coarse clock, though a
/// reader asks before each message: its 4 ms tick would keep a "no" from a passing thread
/// twice as long.)
enum SpinGate {
    /// The last answer: (when it was read, in ns, with its lowest bit replaced by the
    /// answer); 0 before the first.
    private static let last = Atomic<UInt64>(0)
    static let refreshNanoseconds: UInt64 = 2_000_000
    private static let onlineCPUs = max(1, sysconf(Int32(_SC_NPROCESSORS_ONLN)))

    static func spinningPays(now: UInt64 = monotonicNanoseconds()) -> Bool {
        let cached = last.load(ordering: .relaxed)
        if cached != 0 && isFresh(stamp: cached & ~1, now: now) { return cached & 1 == 1 }
        let pays = pays(runnable: runnableThreads(), cpus: onlineCPUs)
        last.store((now & ~1) | (pays ? 1 : 0), ordering: .relaxed)
        return pays
    }

    /// Whether an answer read at `stamp` still holds at `now` (another thread may have stored
    /// a stamp read after this thread's `now`: fresh then).
    static func isFresh(stamp: UInt64, now: UInt64) -> Bool {
        now <= stamp || now - stamp < refreshNanoseconds
    }

    /// Staying awake pays while the runnable threads (the asking one among them) fit on the
    /// CPUs; unknown: yes, as before the gate.
    static func pays(runnable: Int?, cpus: Int) -> Bool {
        guard let runnable else { return true }
        return runnable <= cpus
    }

    /// The number of runnable threads on the machine now (the 4th field of /proc/loadavg,
    /// "running/total"), or nil if it cannot be read.
    static func runnableThreads() -> Int? {
        let fd = Glibc.open("/proc/loadavg", O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { systemClose(fd) }
        // On the stack: "0.52 0.58 0.59 3/1024 12345\n" is far shorter.
        var bytes: (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0, 0, 0, 0, 0)
        return withUnsafeMutableBytes(of: &bytes) { buffer -> Int? in
            var count = -1
            while count < 0 {
                count = Glibc.read(fd, buffer.baseAddress, buffer.count)
                if count < 0 && errno != EINTR { return nil }
            }
            return parseRunnable(UnsafeRawBufferPointer(rebasing: buffer[0..<count]))
        }
    }

    /// The running count in the text of /proc/loadavg: "0.52 0.58 0.59 3/1024 12345" → 3.
    static func parseRunnable(_ text: some Sequence<UInt8>) -> Int? {
        var spaces = 0, value = 0, digits = 0
        for byte in text {
            if spaces < 3 {
                if byte == UInt8(ascii: " ") { spaces += 1 }
                continue
            }
            guard byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") else { break }
            value = value * 10 + Int(byte - UInt8(ascii: "0"))
            digits += 1
            if digits > 9 { return nil }
        }
        return spaces == 3 && digits > 0 ? value : nil
    }
}

/// `poll(2)` of many descriptors that still works when they outnumber `RLIMIT_NOFILE` (a
/// process that lowered its descriptor limit below what it has open): poll refuses such a set
/// with `EINVAL`, and a loop that took that for `EINTR` spun for ever without reaping a child.
/// Then each descriptor is polled on its own, and if none is ready the call sleeps up to
/// 10 ms (or `timeoutMilliseconds`, if shorter and not -1) and returns 0. Returns what `poll`
/// returns otherwise (-1 with `errno`).
func pollDescriptors(_ descriptors: inout [pollfd], timeoutMilliseconds: Int32) -> Int32 {
    let ready = poll(&descriptors, nfds_t(descriptors.count), timeoutMilliseconds)
    guard ready < 0, errno == EINVAL, descriptors.count > 1 else { return ready }
    var count: Int32 = 0
    for index in descriptors.indices {
        var one = descriptors[index]
        one.revents = 0
        if poll(&one, 1, 0) > 0 { count += 1 }
        descriptors[index].revents = one.revents
    }
    if count == 0 && timeoutMilliseconds != 0 {
        let pause = timeoutMilliseconds < 0 ? 10 : min(timeoutMilliseconds, 10)
        var time = timespec(tv_sec: 0, tv_nsec: Int(pause) * 1_000_000)
        _ = nanosleep(&time, nil)
    }
    return count
}
