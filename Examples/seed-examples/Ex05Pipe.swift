// 5. A pipe between a sender process and a receiver process.
import Multiprocessing

struct Sender: ParallelFunction {
    var connection: Connection
    func callAsFunction(_: Void) throws {
        try connection.send("Hello from sender")
        connection.close()
    }
}

struct Receiver: ParallelFunction {
    var connection: Connection
    func callAsFunction(_: Void) throws {
        print(try connection.recv(String.self))
    }
}

func example05(_: ArraySlice<String>) throws {
    let (parentEnd, childEnd) = try Pipe()
    let sender = Process(target: Sender(connection: childEnd))
    let receiver = Process(target: Receiver(connection: parentEnd))
    try sender.start()
    try receiver.start()
    try sender.join()
    try receiver.join()
}
