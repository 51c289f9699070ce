import ArgumentParser
import Kernels

/// The order in which the input-kind benchmarks (`PoolBenchmarks`' map figures,
/// `InputKindsBenchmark`) call the kinds in each repetition, and which kinds they call.
///
/// Each kind's figure is its time ÷ the ready `Array`'s in the same repetition, so that both
/// see the same machine load; but a call also pays for what the call before it left behind
/// (memory it freed, caches it filled), so no kind may always follow the same one. `shuffled`
/// (the default) draws a new order for every repetition from a seeded generator (the same
/// orders on every run with the same seed); `rotated` is the old fixed cyclic order, each
/// repetition starting one kind later — in it every kind but the first follows the same
/// neighbour almost every time (kept to show what that did: input-kinds.md, session 10).
struct InputOrder {
    enum Mode: String, CaseIterable, ExpressibleByArgument {
        case shuffled, rotated
    }

    var mode: Mode = .shuffled
    var seed: UInt64 = 0x5EED
    /// The kinds to call (nil: all); the ready `Array`, the baseline, is always called.
    var kinds: [String]?
    /// Also emit every single timing (`<prefix>.sample.<kind>.after_<kind called before it>`,
    /// seconds, with its repetition), to see what each kind pays after each other one.
    var samples = false

    /// The kinds of `all` to call: the baseline (`all[0]`) and those asked for, in `all`'s order.
    func selected(_ all: [String]) -> [String] {
        guard let kinds else { return all }
        return all.enumerated().filter { $0.offset == 0 || kinds.contains($0.element) }.map(\.element)
    }

    /// The order of the kinds' indices (0..<count) in each of `repetitions` repetitions.
    func orders(count: Int, repetitions: Int) -> [[Int]] {
        var generator = SeededGenerator(seed: seed)
        return (0..<repetitions).map { rep in
            switch mode {
            case .rotated: return (0..<count).map { (rep + $0) % count }
            case .shuffled: return Array(0..<count).shuffled(using: &generator)
            }
        }
    }
}

/// A small seeded generator (Kernels' SplitMix64 stepped in order), so that a shuffled order
/// is the same on every run.
struct SeededGenerator: RandomNumberGenerator {
    var state: UInt64

    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= SplitMix64.gamma
        return SplitMix64.mix(state)
    }
}

/// Runs `call(kind)` for every kind in every repetition in `order`'s order, timing each (the
/// call only: `check` then verifies what it returned, untimed), and returns each kind's rates
/// (tasks/s) in repetition order; emits the samples if asked.
func timeKinds<Result>(
    _ kinds: [String], tasks: Int, repetitions: Int, order: InputOrder, prefix: String,
    emit: (Figure) -> Void, call: (String) throws -> Result, check: (String, Result) throws -> Void
) rethrows -> [[Double]] {
    var rates = [[Double]](repeating: [], count: kinds.count)
    var previous = -1
    for (rep, sequence) in order.orders(count: kinds.count, repetitions: repetitions).enumerated() {
        for k in sequence {
            let start = Measure.now()
            let result = try call(kinds[k])
            let seconds = Measure.now() - start
            try check(kinds[k], result)
            rates[k].append(Double(tasks) / seconds)
            if order.samples {
                emit(
                    Figure(
                        name: "\(prefix).sample.\(kinds[k]).after_\(previous < 0 ? "none" : kinds[previous])",
                        value: seconds, unit: "s", extra: ["repetition": Double(rep)]))
            }
            previous = k
        }
    }
    return rates
}
