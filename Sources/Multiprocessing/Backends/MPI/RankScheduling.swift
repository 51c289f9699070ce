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
                    + "(rank 0 schedules every local worker), or unset it (node when a rank hosts several workers)")
        }
    }

    /// The default for a pool whose ranks host these many local workers: `.node` when one
    /// hosts several (node-level ranks: rank 0 talks to nodes, not cores), `.relay` when each
    /// hosts one (one rank per core: a bundle would have one worker to go to).
    static func automatic(localWorkers: [Int]) -> RankScheduling {
        localWorkers.contains { $0 >= 2 } ? .node : .relay
    }
}
#endif
