import CSystemShims

/// What the engine and one worker share about the worker's chunks (two words in memory
/// both map; `PoolRegion` keeps one per local worker slot):
///
/// - the **claim word**: high 32 bits the *floor* (set by the engine), low 32 bits how many
///   chunk messages the worker has *taken* since it started. A worker takes its n-th chunk
///   message by raising `taken` to n, and runs it only if n ≥ floor. The engine withdraws
///   every chunk the worker has not taken yet by raising the floor past the last one it
///   sent — one compare-and-swap each, so a chunk is either taken (and runs) or withdrawn
///   (and the worker skips it when it reads it), never both.
/// - the **input word**: the position, within the chunk it runs, of the input it runs.
///
/// After the worker died the two words say exactly which input it was running. The counts
/// wrap at 2³²; they are compared modulo that (fewer than 2³¹ chunks are ever outstanding).
struct WorkerProgress: @unchecked Sendable {
    let claim: UnsafeMutablePointer<UInt64>
    let input: UnsafeMutablePointer<Int>

    /// Bytes per slot (a cache line: the words of two workers never share one).
    static let byteCount = 64

    /// The input word while the worker decodes a chunk's inputs or encodes its results:
    /// between inputs, no input of the chunk is the one it runs.
    static let betweenInputs = -1

    init(at base: UnsafeMutableRawPointer) {
        claim = base.assumingMemoryBound(to: UInt64.self)
        input = (base + 8).assumingMemoryBound(to: Int.self)
    }

    /// Private words for a worker whose engine cannot see its memory (MPI, in-process):
    /// nothing is ever withdrawn. The owner deallocates `claim` (the block's start).
    static func unshared() -> WorkerProgress {
        let base = UnsafeMutableRawPointer.allocate(byteCount: byteCount, alignment: 64)
        base.initializeMemory(as: UInt8.self, repeating: 0, count: byteCount)
        return WorkerProgress(at: base)
    }

    /// Fresh state for a new worker (before it starts).
    func reset() {
        CSystemShims_store_u64_seqcst(claim, 0)
        input.pointee = 0
    }

    // MARK: worker side

    /// Takes the next chunk message; returns whether to run it (false: withdrawn, skip it).
    func takeChunk() -> Bool {
        input.pointee = 0
        var seen = CSystemShims_load_u64_seqcst(claim)
        while true {
            let floor = UInt32(truncatingIfNeeded: seen >> 32)
            let taken = UInt32(truncatingIfNeeded: seen) &+ 1
            let desired = (seen & 0xFFFF_FFFF_0000_0000) | UInt64(taken)
            if CSystemShims_cas_u64(claim, &seen, desired) != 0 {
                return WorkerProgress.isAtOrAfter(taken, floor)
            }
        }
    }

    // MARK: engine side

    /// How many chunk messages the worker has taken, and the input position it is at.
    func snapshot() -> (taken: UInt32, input: Int) {
        let word = CSystemShims_load_u64_seqcst(claim)
        return (UInt32(truncatingIfNeeded: word), input.pointee)
    }

    /// Withdraws every chunk after the first `sent` the worker has not taken; returns how many
    /// it has taken (chunks numbered above that are withdrawn).
    func withdraw(sent: UInt32) -> UInt32 {
        var seen = CSystemShims_load_u64_seqcst(claim)
        while true {
            let desired = (UInt64(sent &+ 1) << 32) | (seen & 0xFFFF_FFFF)
            if CSystemShims_cas_u64(claim, &seen, desired) != 0 {
                return UInt32(truncatingIfNeeded: seen)
            }
        }
    }

    /// `a ≥ b` modulo 2³².
    static func isAtOrAfter(_ a: UInt32, _ b: UInt32) -> Bool {
        Int32(bitPattern: a &- b) >= 0
    }
}
