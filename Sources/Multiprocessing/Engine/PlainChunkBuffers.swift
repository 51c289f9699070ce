import Wire

/// The memory a worker keeps for chunks of plain numbers too large to run in place in the
/// message (`ParallelFunction._runPlainChunk`, arrays of `WireDeferredBlock.minimumSize` bytes
/// or more): a piece buffer the inputs are read into a piece at a time (from the pool's
/// memory or the message's shared mapping), and output blocks that travel as references
/// (`WireDeferredBlock`) and come back here once the pool has read them.
///
/// Fresh memory costs a page fault per 4 KiB on first touch (~1 µs each on these VMs): a
/// chunk of 250 000 `Int`s built two new 2 MB arrays and faulted ~1 500 pages in the worker.
/// Kept buffers are touched once. Bounded: the piece buffer is 256 KiB (made at the first chunk
/// with large inputs: a worker that never gets one maps none), and at most
/// `keptBytes` (64 MiB) of output blocks wait here between chunks; a larger block is freed
/// when the pool has read it. One per worker runtime (the chunk loop's thread).
public final class _PlainChunkBuffers: @unchecked Sendable {
    /// Inputs are read this many bytes at a time (a multiple of every raw element's stride).
    @usableFromInline static let pieceBytes = WireDeferredBlock.minimumSize
    /// Output blocks kept between chunks, in bytes at most.
    static let keptBytes = 64 << 20

    /// The piece buffer, made at first use (on the chunk loop's thread).
    @usableFromInline var piece: UnsafeMutableRawPointer {
        if let allocated = pieceStorage { return allocated }
        let allocated = UnsafeMutableRawPointer.allocate(byteCount: Self.pieceBytes, alignment: 64)
        pieceStorage = allocated
        return allocated
    }
    private var pieceStorage: UnsafeMutableRawPointer?
    /// Blocks back from their replies, under `lock`.
    private var free: [(pointer: UnsafeMutableRawPointer, capacity: Int)] = []
    private let lock = ConditionLock()

    init() {}

    deinit {
        pieceStorage?.deallocate()
        for block in free { block.pointer.deallocate() }
    }

    /// A block of at least `bytes` bytes: a kept one if one is large enough, else new.
    @usableFromInline
    func block(bytes: Int) -> _PlainOutputBlock {
        let kept = lock.withLock { () -> (pointer: UnsafeMutableRawPointer, capacity: Int)? in
            guard let index = free.firstIndex(where: { $0.capacity >= bytes }) else { return nil }
            return free.remove(at: index)
        }
        if let kept { return _PlainOutputBlock(kept.pointer, capacity: kept.capacity, home: self) }
        return _PlainOutputBlock(.allocate(byteCount: max(bytes, 1), alignment: 64), capacity: max(bytes, 1), home: self)
    }

    /// A block the pool has read (its owner ended): kept, the largest first, while the kept
    /// blocks fit in `keptBytes`; the others are freed.
    fileprivate func give(_ pointer: UnsafeMutableRawPointer, capacity: Int) {
        let surplus = lock.withLock { () -> [UnsafeMutableRawPointer] in
            free.append((pointer, capacity))
            free.sort { $0.capacity > $1.capacity }
            var total = 0
            var dropped: [UnsafeMutableRawPointer] = []
            free.removeAll { block in
                guard total + block.capacity > Self.keptBytes else {
                    total += block.capacity
                    return false
                }
                dropped.append(block.pointer)
                return true
            }
            return dropped
        }
        for pointer in surplus { pointer.deallocate() }
    }

    /// Bytes of output blocks kept now (tests).
    var keptBlockBytes: Int { lock.withLock { free.reduce(0) { $0 + $1.capacity } } }
}

/// One output block of `_PlainChunkBuffers`: the owner of a reply's deferred block, going
/// back to its buffers when the reply no longer needs it.
public final class _PlainOutputBlock: @unchecked Sendable {
    @usableFromInline let pointer: UnsafeMutableRawPointer
    let capacity: Int
    private weak var home: _PlainChunkBuffers?

    init(_ pointer: UnsafeMutableRawPointer, capacity: Int, home: _PlainChunkBuffers) {
        self.pointer = pointer
        self.capacity = capacity
        self.home = home
    }

    deinit {
        if let home { home.give(pointer, capacity: capacity) } else { pointer.deallocate() }
    }
}
