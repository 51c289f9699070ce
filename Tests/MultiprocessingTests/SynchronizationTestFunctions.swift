import Multiprocessing

#if canImport(Glibc)
import Glibc
#endif

/// Adds 1 to a shared counter `n` times, each under its lock; returns the seconds it took.
struct IncrementCounter: ParallelFunction {
    var counter: SharedValue<Int>
    func callAsFunction(_ n: Int) throws -> Double {
        let start = monotonicSeconds()
        for _ in 0..<n { counter.withLock { $0 += 1 } }
        return monotonicSeconds() - start
    }
}

/// Acquires the lock, writes a half-done marker, and SIGKILLs its own process.
struct DieHoldingLock: ParallelFunction {
    var value: SharedValue<Int>
    func callAsFunction(_ marker: Int) throws -> Int {
        try value.lock.acquire()
        value.value = marker
        kill(getpid(), SIGKILL)
        return marker
    }
}

/// Holds a semaphore unit for a while, recording how many holders there were at once.
struct UseLimitedResource: ParallelFunction {
    var semaphore: Multiprocessing.Semaphore
    var current: SharedValue<Int>
    var peak: SharedValue<Int>
    func callAsFunction(_ x: Int) throws -> Int {
        guard semaphore.acquire(timeout: 10) else { return -1 }
        let now = current.withLock { value -> Int in
            value += 1; return value
        }
        peak.withLock { $0 = max($0, now) }
        usleep(30_000)
        current.withLock { $0 -= 1 }
        try semaphore.release()
        return x
    }
}

/// Waits for an event; returns whether it was set in time.
struct WaitForEvent: ParallelFunction {
    var event: Event
    func callAsFunction(_ timeout: Double) -> Bool { event.wait(timeout: timeout) }
}

/// Waits on a condition until a flag is up; returns what the predicate said.
struct WaitForFlag: ParallelFunction {
    var condition: Condition
    var flag: RawSharedValue<Int32>
    func callAsFunction(_ timeout: Double) throws -> Bool {
        try condition.withLock {
            try condition.wait(for: { flag.value != 0 }, timeout: timeout)
        }
    }
}

/// Meets the other parties at a barrier twice; returns its first arrival index.
struct MeetAtBarrier: ParallelFunction {
    var barrier: Barrier
    func callAsFunction(_ x: Int) throws -> Int {
        let index = try barrier.wait()
        _ = try barrier.wait()
        return index
    }
}

/// A barrier action: counts the passes in a shared counter.
struct CountPasses: BarrierAction {
    var passes: SharedValue<Int>
    func callAsFunction() throws { passes.withLock { $0 += 1 } }
}

/// Writes i² into element i of a locked and a raw shared array.
struct FillSquares: ParallelFunction {
    var locked: SharedArray<Int64>
    var raw: RawSharedArray<Double>
    func callAsFunction(_ i: Int) -> Int {
        locked[i] = Int64(i * i)
        raw[i] = Double(i) * 0.5
        return i
    }
}

/// Reads an Int at `offset` of a named shared memory block and writes its double after it.
struct DoubleInNamedBlock: ParallelFunction {
    var block: SharedMemory
    func callAsFunction(_ offset: Int) -> Int {
        let value = block.bytes.load(fromByteOffset: offset, as: Int.self)
        block.bytes.storeBytes(of: value * 2, toByteOffset: offset + 8, as: Int.self)
        return value
    }
}

/// Creates a tracked named block and SIGKILLs its own process without closing it.
struct CreateBlockAndDie: ParallelFunction {
    func callAsFunction(_ name: String) throws -> Int {
        let block = try SharedMemory(name: name, create: true, size: 4096)
        block.bytes.storeBytes(of: 7, as: Int.self)
        kill(getpid(), SIGKILL)
        return block.size
    }
}

func monotonicSeconds() -> Double {
    var time = timespec()
    clock_gettime(CLOCK_MONOTONIC, &time)
    return Double(time.tv_sec) + Double(time.tv_nsec) * 1e-9
}

/// Waits once on a condition (counting itself in `ready` first, holding the lock) and counts
/// itself in `proceeded` when the wait returns.
struct WaitOnceOnCondition: ParallelFunction {
    var condition: Condition
    var ready: SharedValue<Int32>
    var proceeded: SharedValue<Int32>
    func callAsFunction(_: Void) throws {
        try condition.withLock {
            ready.withLock { $0 += 1 }
            _ = try condition.wait(timeout: 30)
        }
        proceeded.withLock { $0 += 1 }
    }
}
