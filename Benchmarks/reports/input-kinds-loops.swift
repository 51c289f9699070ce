// The loops that read a `lazy.map` and a `Set` into memory, alone (input-kinds.md, session 13).
//
//   swiftc -O Benchmarks/reports/input-kinds-loops.swift -o input-kinds-loops
//   nice -n -10 ./input-kinds-loops 200000
//
// Prints the median and the least of 300 runs of each loop, in µs, for N inputs (argument).
// The loops are `_InputProducer.produce`'s shapes, given `publish` as a closure argument as it is.

import Glibc

func now() -> Double {
    var t = timespec()
    clock_gettime(CLOCK_MONOTONIC, &t)
    return Double(t.tv_sec) * 1e6 + Double(t.tv_nsec) / 1e3
}

let n = Int(CommandLine.arguments.dropFirst().first ?? "200000") ?? 200_000
let buffer = UnsafeMutablePointer<Int>.allocate(capacity: n)
buffer.initialize(repeating: 0, count: n)
let set = Set(0..<n)
nonisolated(unsafe) var sink = 0

@inline(never) func publish(_ k: Int) { sink &+= k }
@inline(never) func opaqueCount(_ s: Any) -> Int { (s as! any Collection).count }
@inline(never) func countChanged() -> Never { fatalError("invalid Collection: count changed") }

/// main's loop: the step tested after every element, `precondition` inside.
@inline(__always) func stepTested<S: Sequence<Int>>(
    _ s: S, into base: UnsafeMutablePointer<Int>, count: Int, step: Int, publish: (Int) -> Void
) {
    var written = 0
    var next = min(step, count)
    for x in s {
        precondition(written < count, "more")
        (base + written).initialize(to: x)
        written += 1
        if written == next {
            publish(written)
            next = min(next + step, count)
        }
    }
    precondition(written == count, "less")
}

/// One counted loop per step, the trap a call out of line (this branch).
@inline(__always) func perStep<S: Sequence<Int>>(
    _ s: S, into base: UnsafeMutablePointer<Int>, count: Int, step: Int, publish: (Int) -> Void
) {
    var iterator = s.makeIterator()
    var written = 0
    while written < count {
        let end = min(written + step, count)
        for position in written..<end {
            guard let x = iterator.next() else { countChanged() }
            (base + position).initialize(to: x)
        }
        written = end
        publish(written)
    }
    if iterator.next() != nil { countChanged() }
}

/// The same with `preconditionFailure` in the loop.
@inline(__always) func perStepPrecondition<S: Sequence<Int>>(
    _ s: S, into base: UnsafeMutablePointer<Int>, count: Int, step: Int, publish: (Int) -> Void
) {
    var iterator = s.makeIterator()
    var written = 0
    while written < count {
        let end = min(written + step, count)
        for position in written..<end {
            guard let x = iterator.next() else { preconditionFailure("less") }
            (base + position).initialize(to: x)
        }
        written = end
        publish(written)
    }
    if iterator.next() != nil { countChanged() }
}

@inline(never) func lazyMap(_ variant: Int) {
    let inputs = (0..<n).lazy.map { $0 }
    let count = opaqueCount(inputs)
    switch variant {
    case 0: stepTested(inputs, into: buffer, count: count, step: 25_000, publish: publish)
    case 1: perStep(inputs, into: buffer, count: count, step: 25_000, publish: publish)
    default: perStepPrecondition(inputs, into: buffer, count: count, step: 25_000, publish: publish)
    }
}

/// The library's `Set` loop (`_CollectionInputs`): its iterator, raw stores.
@inline(never) func readSet(_ s: Set<Int>) {
    let raw = UnsafeMutableRawPointer(buffer)
    var iterator = s.makeIterator()
    for k in 0..<s.count {
        guard let x = iterator.next() else { countChanged() }
        raw.storeBytes(of: x, toByteOffset: k &* 8, as: Int.self)
    }
}

/// The `Set`'s iteration alone: no stores.
@inline(never) func sumSet(_ s: Set<Int>) {
    var total = 0
    for x in s { total &+= x }
    sink &+= total
}

/// `_copyContents` (`initialize(from:)`).
@inline(never) func copySet(_ s: Set<Int>) {
    let (_, k) = UnsafeMutableBufferPointer(start: buffer, count: n).initialize(from: s)
    sink &+= k
}

let runs: [(String, () -> Void)] = [
    ("lazy.map, step tested per element (main)", { lazyMap(0) }),
    ("lazy.map, a counted loop per step, trap out of line (this branch)", { lazyMap(1) }),
    ("lazy.map, a counted loop per step, preconditionFailure inside", { lazyMap(2) }),
    ("Set, iterator into memory (the library's loop)", { readSet(set) }),
    ("Set, iterator summed, no stores", { sumSet(set) }),
    ("Set, initialize(from:)", { copySet(set) }),
]
for (name, run) in runs {
    var times: [Double] = []
    for _ in 0..<300 {
        let start = now()
        run()
        times.append(now() - start)
    }
    times.sort()
    print("\(name): median \(Int(times[150].rounded())) µs, least \(Int(times[0].rounded())) µs (\(n) inputs)")
}
if sink == 42 { print(sink) }
