/// Ping-pong between ranks 0 and 1 of a communicator: one-way latency for small messages
/// and bandwidth for large ones, measured as half the median round trip. Other ranks take
/// no part. `Benchmarks/c/pingpong.c` measures the same way in C, for comparison.
public struct PingPong: Sendable {
    public let communicator: Communicator

    public init(communicator: Communicator = .world) {
        self.communicator = communicator
    }

    /// The median one-way time in seconds for `bytes`-byte messages, on rank 0 (nil on the
    /// other ranks). Throws with fewer than two ranks.
    public func oneWaySeconds(bytes: Int, warmup: Int, repetitions: Int) throws -> Double? {
        guard communicator.size >= 2 else {
            throw MPIError(function: "PingPong", message: "needs at least 2 ranks, got \(communicator.size)")
        }
        guard bytes >= 1, repetitions >= 1, warmup >= 0 else {
            throw MPIError(function: "PingPong", message: "bytes and repetitions must be positive")
        }
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: bytes, alignment: 64)
        defer { buffer.deallocate() }
        buffer.initializeMemory(as: UInt8.self, repeating: 1)
        var times: [Double] = []
        times.reserveCapacity(repetitions)
        switch communicator.rank {
        case 0:
            for i in 0..<(warmup + repetitions) {
                let start = MPIEnvironment.wtime
                try communicator.send(UnsafeRawBufferPointer(buffer), to: 1, tag: 0)
                try communicator.receive(into: buffer, from: 1, tag: 0)
                let elapsed = MPIEnvironment.wtime - start
                if i >= warmup { times.append(elapsed) }
            }
        case 1:
            for _ in 0..<(warmup + repetitions) {
                try communicator.receive(into: buffer, from: 0, tag: 0)
                try communicator.send(UnsafeRawBufferPointer(buffer), to: 0, tag: 0)
            }
        default:
            break
        }
        guard communicator.rank == 0 else { return nil }
        let sorted = times.sorted()
        let middle = sorted.count / 2
        let median = sorted.count % 2 == 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2
        return median / 2
    }
}
