import XCTest

#if canImport(Glibc)
import Glibc
#endif

/// How low a test sets this process's soft descriptor limit.
enum DescriptorLimit {
    /// The lowest free descriptor number: the next descriptor opened fails with EMFILE (one
    /// closed meanwhile makes room again).
    case noneFree
    /// No new descriptor at all (3: the standard streams), whatever is closed meanwhile.
    case standardStreamsOnly
    /// The lowest free number plus `room`.
    case room(Int)
}

/// The lowest descriptor number free in this process.
func lowestFreeDescriptor() -> Int32 {
    let free = dup(0)
    if free >= 0 { close(free) }
    return free
}

/// Runs `body` with this process's soft `RLIMIT_NOFILE` lowered, then restores it (also when
/// `body` throws). XCTest runs tests one at a time, so the library's own threads are the only
/// others the lower limit meets.
func withDescriptorLimit<T>(_ limit: DescriptorLimit, _ body: () throws -> T) throws -> T {
    var saved = rlimit()
    guard getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &saved) == 0 else { throw XCTSkip("getrlimit: errno \(errno)") }
    var lowered = saved
    switch limit {
    case .noneFree: lowered.rlim_cur = rlim_t(lowestFreeDescriptor())
    case .standardStreamsOnly: lowered.rlim_cur = 3
    case .room(let room): lowered.rlim_cur = rlim_t(Int(lowestFreeDescriptor()) + room)
    }
    guard setrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &lowered) == 0 else { throw XCTSkip("setrlimit: errno \(errno)") }
    defer { _ = setrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &saved) }
    return try body()
}
