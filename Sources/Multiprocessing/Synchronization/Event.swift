/// A flag shared between processes that waiters sleep on: Python's `multiprocessing.Event`.
///
/// `set()` raises the flag and wakes every waiter; `clear()` lowers it; `wait(timeout:)`
/// returns at once while the flag is up, else sleeps until a `set()` or the timeout. A waiter
/// woken by a `set()` returns true even if another process clears the flag before it runs.
///
/// Underneath: one 32-bit futex word in a shared segment holding the flag (bit 0) and a count
/// of `set()` calls (the other bits), and a sleeper count so that `set()` makes a system call
/// only when someone sleeps.
///
/// **Under mpirun** (rank 0 of a job with worker ranks, unless `SWIFTMP_MPI_OBJECTS=local`)
/// the event is served by rank 0 over MPI messages: tasks on worker ranks that store it wait
/// in rank 0 (answered while an MPI pool is live), without polling.
public struct Event: Codable, Sendable {
    /// The shared memory holding the flag; nil for an event served by rank 0 under mpirun.
    public let segment: SharedSegment?
    private let served: MPIServedEvent?
    private var state: UnsafeMutablePointer<UInt32> { segment!.word(0) }
    private var sleepers: UnsafeMutablePointer<UInt32> { segment!.word(1) }

    /// A new event, not set.
    public init() throws {
        if MPIObjects.isServing {
            self.init(segment: nil, served: MPIServedEvent())
            return
        }
        self.init(segment: try SharedSegment(size: 8), served: nil)
    }

    private init(segment: SharedSegment?, served: MPIServedEvent?) {
        self.segment = segment
        self.served = served
    }

    public init(from decoder: any Decoder) throws {
        switch try ServedOrLocalCoding.decode(kind: "Event", from: decoder) {
        case .served(let id): self.init(segment: nil, served: MPIServedEvent(id: id))
        case .local(let segment): self.init(segment: segment, served: nil)
        }
    }

    public func encode(to encoder: any Encoder) throws {
        try ServedOrLocalCoding.encode(servedID: served?.object.id, segment: segment, kind: "Event", to: encoder)
    }

    /// Whether the flag is up now. Python's `is_set()`.
    public var isSet: Bool {
        if let served { return served.isSet }
        return SharedAtomic.load(state) & 1 != 0
    }

    /// Raises the flag and wakes every waiter, in every process.
    /// The corresponding system call is `futex(FUTEX_WAKE)`.
    public func set() {
        if let served { return served.set(true) }
        var current = SharedAtomic.load(state)
        while current & 1 == 0 {
            // A new generation with the flag up.
            if SharedAtomic.compareExchange(state, expected: current, desired: (current &+ 2) | 1) {
                if SharedAtomic.load(sleepers) > 0 { Futex.wake(state) }
                return
            }
            current = SharedAtomic.load(state)
        }
    }

    /// The processes and threads inside `wait` now (for tests that must know a waiter is
    /// asleep before they wake it). Under mpirun, counted by rank 0: nil on a worker rank.
    package var waiterCount: Int? {
        if let served { return served.waiterCount }
        return Int(SharedAtomic.load(sleepers))
    }

    /// Lowers the flag.
    public func clear() {
        if let served { return served.set(false) }
        var current = SharedAtomic.load(state)
        while current & 1 != 0 {
            if SharedAtomic.compareExchange(state, expected: current, desired: current & ~1) { return }
            current = SharedAtomic.load(state)
        }
    }

    /// Waits until the flag is up or `timeout` seconds pass (nil: for ever). Returns true if
    /// the flag was up or a `set()` happened while waiting, false on timeout.
    /// The corresponding system call is `futex(FUTEX_WAIT)`.
    @discardableResult
    public func wait(timeout: Double? = nil) -> Bool {
        if let served { return served.wait(timeout: timeout) }
        let seen = SharedAtomic.load(state)
        if seen & 1 != 0 { return true }
        let deadline = Deadline(seconds: timeout)
        SharedAtomic.add(sleepers, 1)
        defer { SharedAtomic.subtract(sleepers, 1) }
        while true {
            let current = SharedAtomic.load(state)
            // Set now, or set (and perhaps cleared) since we looked: a new generation.
            if current & 1 != 0 || current & ~1 != seen & ~1 { return true }
            if !Futex.wait(state, while: current, until: deadline) {
                let last = SharedAtomic.load(state)
                return last & 1 != 0 || last & ~1 != seen & ~1
            }
        }
    }
}
