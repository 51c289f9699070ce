/// Where one worker of a pool runs (`Pool.workerPlacement`): its slot, the pid of the process
/// in it, and under mpirun the worker rank hosting it and that rank's host.
public struct WorkerPlacement: Sendable, Equatable, CustomStringConvertible {
    /// The worker's slot (0 ..< `Pool.processes`); a replacement takes its predecessor's slot.
    public let slot: Int
    /// The worker process's pid on its host (nil while it is starting).
    public let pid: Int32?
    /// The worker rank hosting it (MPI backend; nil for the local backend).
    public let rank: Int?
    /// The host it runs on, when known.
    public let host: String?

    public init(slot: Int, pid: Int32?, rank: Int?, host: String?) {
        self.slot = slot
        self.pid = pid
        self.rank = rank
        self.host = host
    }

    /// E.g. `worker 0: pid 4242 on node1` or `worker 3: rank 2, pid 4242 on node2`.
    public var description: String {
        var text = "worker \(slot): "
        if let rank { text += "rank \(rank), " }
        text += pid.map { "pid \($0)" } ?? "starting"
        if let host { text += " on \(host)" }
        return text
    }
}
