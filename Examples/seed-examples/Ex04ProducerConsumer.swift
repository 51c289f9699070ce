// 4. Producer and consumer processes around one queue.
import Multiprocessing

struct Producer: ParallelFunction {
    var queue: Queue<String>
    func callAsFunction(_: Void) throws {
        try queue.put("Hello from child")
    }
}

struct Consumer: ParallelFunction {
    var queue: Queue<String>
    func callAsFunction(_: Void) throws {
        print(try queue.get())
    }
}

func example04(_: ArraySlice<String>) throws {
    let queue = try Queue<String>()
    let producer = Process(target: Producer(queue: queue))
    let consumer = Process(target: Consumer(queue: queue))
    try producer.start()
    try consumer.start()
    try producer.join()
    try consumer.join()
}
