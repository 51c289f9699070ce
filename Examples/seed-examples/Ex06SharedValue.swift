// 6. A shared Value: a child increments it 100 times; the parent prints 100.
import Multiprocessing

struct Increment: ParallelFunction {
    var counter: SharedValue<Int32>
    func callAsFunction(_: Void) {
        for _ in 0..<100 { counter.withLock { $0 += 1 } }
    }
}

func example06(_: ArraySlice<String>) throws {
    let counter = try SharedValue<Int32>(0)
    let p = Process(target: Increment(counter: counter))
    try p.start()
    try p.join()
    print(counter.value)
}
