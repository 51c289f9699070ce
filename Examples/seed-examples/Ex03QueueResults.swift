// 3. Results through a Queue: two processes compute, the parent adds up.
import Multiprocessing

/// sum(i + i**2 + i**3 for i in range(1000)), put on the queue.
struct SumOfPowers: ParallelFunction {
    var queue: Queue<Int>
    func callAsFunction(_: Void) throws {
        var result = 0
        for i in 0..<1000 { result += i + i * i + i * i * i }
        try queue.put(result)
    }
}

func example03(_: ArraySlice<String>) throws {
    let queue = try Queue<Int>()
    let p1 = Process(target: SumOfPowers(queue: queue))
    let p2 = Process(target: SumOfPowers(queue: queue))
    try p1.start()
    try p2.start()
    try p1.join()
    try p2.join()
    let first = try queue.get()
    let second = try queue.get()
    print(first + second)
}
