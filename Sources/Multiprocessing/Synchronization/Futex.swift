import CSystemShims

#if canImport(Glibc)
import Glibc
#endif

/// A point in time on the monotonic clock, for waits with a timeout.
struct Deadline: Sendable {
    /// Nanoseconds on `CLOCK_MONOTONIC`, or nil for no deadline.
    let nanoseconds: Int64?

    /// A deadline `seconds` from now (nil: none; negative, minus infinity and NaN count as
    /// 0 — now —, as in `deadline(after:)`; 10⁹ s or more, infinity included, as no limit).
    init(seconds: Double?) {
        guard let seconds else { nanoseconds = nil; return }
        let delta = !(seconds > 0) ? 0 : seconds >= 1e9 ? Int64.max / 4 : Int64(seconds * 1e9)
        nanoseconds = Deadline.now() + delta
    }

    static func now() -> Int64 {
        var time = timespec()
        clock_gettime(CLOCK_MONOTONIC, &time)
        return Int64(time.tv_sec) * 1_000_000_000 + Int64(time.tv_nsec)
    }

    /// Nanoseconds left (0 when passed), or -1 for no deadline (the futex shim's "for ever").
    var remaining: Int64 {
        guard let nanoseconds else { return -1 }
        return max(nanoseconds - Deadline.now(), 0)
    }

    var hasPassed: Bool {
        guard let nanoseconds else { return false }
        return Deadline.now() >= nanoseconds
    }
}

/// Waiting on a 32-bit word in shared memory: the kernel's futex, shared between processes
/// (not `FUTEX_PRIVATE_FLAG`).
enum Futex {
    /// Sleeps while `*word == expected`, until woken or the deadline passes. Spurious returns
    /// happen (signals, a changed word): callers re-check their condition in a loop.
    /// Returns false when the deadline has passed.
    /// The corresponding system call is `futex(FUTEX_WAIT)`.
    @discardableResult
    static func wait(_ word: UnsafeMutablePointer<UInt32>, while expected: UInt32, until deadline: Deadline) -> Bool {
        let remaining = deadline.remaining
        if remaining == 0 { return false }
        // EAGAIN (the word changed), EINTR and ETIMEDOUT all mean: look again.
        _ = CSystemShims_futex_wait(word, expected, remaining)
        return !deadline.hasPassed
    }

    /// Wakes up to `count` sleepers on `word`. The corresponding system call is
    /// `futex(FUTEX_WAKE)`.
    static func wake(_ word: UnsafeMutablePointer<UInt32>, count: Int32 = Int32.max) {
        _ = CSystemShims_futex_wake(word, count)
    }
}

/// Word-sized atomics on shared memory (sequentially consistent), through the C shims.
enum SharedAtomic {
    @inline(__always) static func load(_ p: UnsafeMutablePointer<UInt32>) -> UInt32 { CSystemShims_load_u32_seqcst(p) }
    @inline(__always) static func store(_ p: UnsafeMutablePointer<UInt32>, _ v: UInt32) { CSystemShims_store_u32_seqcst(p, v) }
    @inline(__always) @discardableResult
    static func add(_ p: UnsafeMutablePointer<UInt32>, _ v: UInt32) -> UInt32 { CSystemShims_fetch_add_u32(p, v) }
    @inline(__always) @discardableResult
    static func subtract(_ p: UnsafeMutablePointer<UInt32>, _ v: UInt32) -> UInt32 { CSystemShims_fetch_add_u32(p, 0 &- v) }
    @inline(__always) static func compareExchange(_ p: UnsafeMutablePointer<UInt32>, expected: UInt32, desired: UInt32) -> Bool {
        var expected = expected
        return CSystemShims_cas_u32(p, &expected, desired) != 0
    }
}

extension SharedSegment {
    /// The 32-bit word at `index` (4-byte slots from the start of the segment).
    func word(_ index: Int) -> UnsafeMutablePointer<UInt32> {
        (base + index * 4).assumingMemoryBound(to: UInt32.self)
    }
}
