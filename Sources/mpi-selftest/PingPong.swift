import MPI

/// Ping-pong between ranks 0 and 1: one-way latency for 8 bytes (µs, median over 10 000 round
/// trips) and bandwidth for 4 MiB (MB/s, median over 50). Other ranks wait at a barrier.
/// `Benchmarks/c/pingpong.c` measures the same way, for comparison.
struct PingPong {
    let communicator: Communicator

    func run() throws {
        guard communicator.size >= 2 else {
            throw MPIError(function: "pingpong", message: "needs at least 2 ranks, got \(communicator.size)")
        }
        let latency = try roundTrips(bytes: 8, warmup: 1000, repetitions: 10_000)
        let bandwidth = try roundTrips(bytes: 4 << 20, warmup: 5, repetitions: 50)
        if communicator.rank == 0 {
            let oneWay = median(latency) / 2
            printLine(#"{"name":"swift.pingpong.latency_8B","value":\#(rounded(oneWay * 1e6)),"unit":"us"}"#)
            let seconds = median(bandwidth) / 2
            printLine(#"{"name":"swift.pingpong.bandwidth_4MiB","value":\#(rounded(Double(4 << 20) / seconds / 1e6)),"unit":"MB/s"}"#)
        }
        try communicator.barrier()
    }

    /// Round-trip times in seconds, measured on rank 0 (empty elsewhere).
    private func roundTrips(bytes: Int, warmup: Int, repetitions: Int) throws -> [Double] {
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
        return times
    }

    private func median(_ values: [Double]) -> Double {
        let sorted = values.sorted()
        let middle = sorted.count / 2
        return sorted.count % 2 == 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2
    }

    private func rounded(_ value: Double) -> Double { (value * 1000).rounded() / 1000 }
}
