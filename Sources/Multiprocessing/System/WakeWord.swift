import CSystemShims

/// A futex word that lets one thread sleep until another calls `wake()` or a timeout passes.
///
/// The sleeper calls `arm()`, re-checks its condition, then `sleep(nanoseconds:)`; a `wake()`
/// after `arm()` makes that sleep return at once, so no wake-up is lost.
final class WakeWord: @unchecked Sendable {
    private let word = UnsafeMutablePointer<UInt32>.allocate(capacity: 1)

    init() { word.initialize(to: 0) }

    deinit { word.deallocate() }

    func arm() { CSystemShims_store_u32_seqcst(word, 0) }

    func sleep(nanoseconds: Int64) {
        guard nanoseconds > 0 else { return }
        ForkGuard.whileBlocked { _ = CSystemShims_futex_wait(word, 0, nanoseconds) }
    }

    func wake() {
        if CSystemShims_exchange_u32(word, 1) == 0 { _ = CSystemShims_futex_wake(word, 1) }
    }
}
