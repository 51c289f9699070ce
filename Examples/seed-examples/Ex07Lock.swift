// 7. A lock around a shared counter: two processes × 100 increments = 200.
import Multiprocessing

struct LockedIncrement: ParallelFunction {
    var counter: SharedValue<Int32>
    var lock: Lock
    func callAsFunction(_: Void) throws {
        for _ in 0..<100 {
            try lock.withLock { counter.value += 1 }
        }
    }
}

func example07(_: ArraySlice<String>) throws {
    let counter = try SharedValue<Int32>(0)
    let lock = try Lock()
    let processes = (0..<2).map { _ in Process(target: LockedIncrement(counter: counter, lock: lock)) }
    for p in processes { try p.start() }
    for p in processes { try p.join() }
    print(counter.value)
}
