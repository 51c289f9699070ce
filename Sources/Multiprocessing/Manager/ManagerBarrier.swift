/// A manager's barrier, as its server holds it: Python's `Manager().Barrier(parties)`, with
/// the same rules as `Barrier`. The server never blocks, so a party arrives (`arrive`: its pass
/// and arrival index) and then asks (`look`) until its pass opened or broke. The last party of
/// a barrier with an action is told to run it and reports how it went (`actionEnded`); the
/// pass opens only then. A party whose wait times out breaks the pass (`giveUp`).
struct ManagerBarrier {
    let parties: Int
    let hasAction: Bool
    /// The pass number: incremented when a pass opens or breaks.
    private(set) var pass: UInt64 = 0
    /// Parties arrived in the current pass.
    private(set) var arrived = 0
    private(set) var broken = false
    /// The last party of the current pass runs the action: no one arrives meanwhile.
    private(set) var acting = false
    /// Bit `pass % 64` is set when that pass ended broken (a party looks at its own pass).
    private var brokenPasses: UInt64 = 0

    init(parties: Int, hasAction: Bool) {
        self.parties = parties
        self.hasAction = hasAction
    }

    enum Arrival: Equatable {
        /// Arrived: wait for `pass` to end (unless `last`: it ended with this arrival, or it
        /// ends when this party, which runs the action, reports).
        case arrived(pass: UInt64, index: Int, last: Bool)
        case broken
        /// The action of the pass before is running: arrive again.
        case busy
    }

    enum PassState: UInt8, Equatable {
        case waiting = 0, opened = 1, broke = 2
    }

    mutating func arrive() -> Arrival {
        if broken { return .broken }
        if acting { return .busy }
        let index = arrived
        if index + 1 == parties {
            if hasAction {
                acting = true
                arrived += 1
            } else {
                open()
            }
            return .arrived(pass: pass, index: index, last: true)
        }
        arrived += 1
        return .arrived(pass: pass, index: index, last: false)
    }

    func look(_ pass: UInt64) -> PassState {
        if pass == self.pass { return .waiting }
        return brokenPasses & (1 << (pass % 64)) != 0 ? .broke : .opened
    }

    /// The last party ran the action of `pass`: it opens the pass, or breaks it if it threw.
    mutating func actionEnded(_ pass: UInt64, succeeded: Bool) -> PassState {
        if pass == self.pass && acting {
            acting = false
            if succeeded { open() } else { breakPass() }
        }
        return look(pass)
    }

    /// A party of `pass` ran out of time: the pass breaks if it is still open.
    mutating func giveUp(_ pass: UInt64) -> PassState {
        if pass == self.pass { breakPass() }
        return look(pass)
    }

    /// Python's `abort()`.
    mutating func abort() { breakPass() }

    /// Python's `reset()`: parties waiting now see the pass broken; the barrier is whole.
    mutating func reset() {
        if arrived > 0 { breakPass() }
        broken = false
    }

    /// Parties waiting in the current pass (0 while broken). Python's `n_waiting`.
    var waiting: Int { broken ? 0 : arrived }

    private mutating func open() {
        brokenPasses &= ~(1 << (pass % 64))
        arrived = 0
        pass &+= 1
    }

    private mutating func breakPass() {
        brokenPasses |= 1 << (pass % 64)
        broken = true
        acting = false
        arrived = 0
        pass &+= 1
    }
}
