#if MPI
import MPI

/// Ping-pong between ranks 0 and 1: one-way latency for 8 bytes (µs, median over 10 000 round
/// trips) and bandwidth for 4 MiB (MB/s, median over 50), printed by rank 0 as JSON lines.
struct PingPongReport {
    let communicator: Communicator

    func run() throws {
        let pingPong = PingPong(communicator: communicator)
        let latency = try pingPong.oneWaySeconds(bytes: 8, warmup: 1000, repetitions: 10_000)
        let bandwidth = try pingPong.oneWaySeconds(bytes: 4 << 20, warmup: 5, repetitions: 50)
        if let latency, let bandwidth {
            printLine(#"{"name":"swift.pingpong.latency_8B","value":\#(rounded(latency * 1e6)),"unit":"us"}"#)
            printLine(#"{"name":"swift.pingpong.bandwidth_4MiB","value":\#(rounded(Double(4 << 20) / bandwidth / 1e6)),"unit":"MB/s"}"#)
        }
        try communicator.barrier()
    }

    private func rounded(_ value: Double) -> Double { (value * 1000).rounded() / 1000 }
}
#endif
