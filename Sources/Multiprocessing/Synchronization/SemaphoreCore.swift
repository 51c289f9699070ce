/// The shared state of `Semaphore` and `BoundedSemaphore`: three 32-bit words in a segment —
/// the value (also the futex word sleepers wait on), the number of sleepers (so a release
/// makes a system call only when someone sleeps), and the bound (0: none).
struct SemaphoreCore: @unchecked Sendable {
    let segment: SharedSegment
    let value: UnsafeMutablePointer<UInt32>
    let sleepers: UnsafeMutablePointer<UInt32>
    let bound: UnsafeMutablePointer<UInt32>

    init(value initial: Int, bounded: Bool, kind: String) throws {
        guard initial >= 0, initial < Int(UInt32.max) else {
            throw SynchronizationError(.invalidArgument, "a \(kind) starts at a value from 0 to \(UInt32.max - 1), not \(initial)")
        }
        if bounded, initial == 0 {
            throw SynchronizationError(.invalidArgument, "a BoundedSemaphore with value 0 could never be released; give it a value ≥ 1")
        }
        try self.init(segment: SharedSegment(size: 12))
        SharedAtomic.store(value, UInt32(initial))
        SharedAtomic.store(bound, bounded ? UInt32(initial) : 0)
    }

    init(segment: SharedSegment) {
        self.segment = segment
        value = segment.word(0)
        sleepers = segment.word(1)
        bound = segment.word(2)
    }

    func acquire(blocking: Bool, timeout: Double?) -> Bool {
        let deadline = Deadline(seconds: blocking ? timeout : 0)
        while true {
            var current = SharedAtomic.load(value)
            while current > 0 {
                if SharedAtomic.compareExchange(value, expected: current, desired: current - 1) { return true }
                current = SharedAtomic.load(value)
            }
            if deadline.hasPassed { return false }
            SharedAtomic.add(sleepers, 1)
            Futex.wait(value, while: 0, until: deadline)
            SharedAtomic.subtract(sleepers, 1)
        }
    }

    /// A `release` count is 1 to 2³² − 2 (what one futex word holds), local or served.
    static func checkReleaseCount(_ count: Int, kind: String) throws(SynchronizationError) {
        guard count >= 1, count < Int(UInt32.max) else {
            throw SynchronizationError(.invalidArgument, "release(\(count)) of a \(kind): release from 1 to \(UInt32.max - 1) at a time")
        }
    }

    func release(_ count: Int, kind: String) throws(SynchronizationError) {
        try Self.checkReleaseCount(count, kind: kind)
        let limit = SharedAtomic.load(bound)
        let ceiling = limit == 0 ? UInt64(UInt32.max - 1) : UInt64(limit)
        var current = SharedAtomic.load(value)
        while true {
            guard UInt64(current) + UInt64(count) <= ceiling else {
                if limit != 0 {
                    throw SynchronizationError(
                        .releasedTooManyTimes,
                        """
                        BoundedSemaphore released too many times: its value \(current) + \(count) \
                        would exceed its initial value \(limit); release only what you acquired
                        """)
                }
                throw SynchronizationError(.invalidArgument, "a Semaphore's value cannot exceed \(ceiling)")
            }
            if SharedAtomic.compareExchange(value, expected: current, desired: current + UInt32(count)) { break }
            current = SharedAtomic.load(value)
        }
        if SharedAtomic.load(sleepers) > 0 {
            Futex.wake(value, count: Int32(clamping: count))
        }
    }

    var currentValue: Int { Int(SharedAtomic.load(value)) }
}
