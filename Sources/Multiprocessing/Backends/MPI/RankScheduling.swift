#if MPI
#if canImport(Glibc)
import Glibc
#endif

/// How rank 0 shares a pool's inputs among the worker ranks' local workers (ARCHITECTURE.md §8).
enum RankScheduling: Equatable {
    /// Rank 0's engine sees every local worker as a slot and sends each its chunks; the rank
    /// relays them. Rank 0 pays its cost per task once per chunk.
    case relay
    /// Rank 0's engine sees each rank as one slot and sends it bundles of many inputs; the rank
    /// runs its own engine over its local workers (`NodeScheduler`), a chunk at a time. Rank 0
    /// pays its cost once per bundle.
    case node

    /// `SWIFTMP_RANK_SCHEDULING` (`node` or `relay`), if set.
    static func fromEnvironment() throws(PoolError) -> RankScheduling? {
        guard let text = getenv("SWIFTMP_RANK_SCHEDULING").map({ String(cString: $0) }), !text.isEmpty else { return nil }
        switch text {
        case "node": return .node
        case "relay": return .relay
        default:
            throw PoolError(
                .invalidArgument,
                "SWIFTMP_RANK_SCHEDULING=\(text): give node (each worker rank schedules its local workers) or relay "
                    + "(rank 0 schedules every local worker), or unset it (node when a rank hosts \(nodeThreshold) workers or more)")
        }
    }

    /// The default for a pool whose ranks host these many local workers: `.node` when one
    /// hosts `nodeThreshold` or more (node-level ranks: rank 0 talks to nodes, not cores),
    /// `.relay` otherwise. A rank with a handful of workers gains little (rank 0's cost per
    /// chunk is shared by few workers) and its own engine is one more hop per task: measured
    /// with 2 workers on one rank (`-np 2` on 2 vCPUs), node scheduling had 1.2× relay's hot
    /// round trip and 0.5–0.7× its chunk-1 throughput; with 4 per rank, comparable throughput
    /// and a tenth of rank 0's CPU per task (`Benchmarks/reports/mpi-relay.md`).
    static func automatic(localWorkers: [Int]) -> RankScheduling {
        localWorkers.contains { $0 >= nodeThreshold } ? .node : .relay
    }

    /// Local workers on one rank from which it schedules them itself by default.
    static let nodeThreshold = 4
}
#endif
