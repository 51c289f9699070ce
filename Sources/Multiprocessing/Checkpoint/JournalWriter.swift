import CSystemShims
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// A journal's writer thread: writes what it is handed (first the header, when it is to
/// compute it, then the frames, each sealed with its checksum), flushes it to the disk a
/// second later at most, and at the end (once the journal's `close` wrote the rest) flushes
/// and closes the file. It owns the descriptor.
///
/// Direct writes (a map's journal, where the file system offers `O_DIRECT`): each frame goes
/// from its buffer to the disk, without a copy into the page cache (measured: 16.7 MB in
/// 1 MiB writes took 2.0 ms of CPU through the page cache into allocated ext4 blocks, then
/// 0.6 ms in `fsync` and 1.0 ms to evict the pages of a deleted file; direct, 0.65 ms, 0.07
/// and 0.1). A direct write covers whole blocks (`alignment`): it starts at the block that
/// holds the file's end, with the bytes of the file in it first (`lastBlock`: the same bytes
/// again, as the page cache writes a partially filled page again), and ends with zeros up to
/// the next block. So the file is longer than the journal while it is open — by less than
/// a block, zeros, which a reader takes for a torn frame and drops (as the next run's `open`
/// does after a kill) — and cut to the journal's length when it closes. A file system that
/// refuses a direct write after all (`EINVAL`), or one that stops within a block, gets the
/// rest through the page cache. The last frames, which the thread ending the call writes,
/// go into the page cache as the same whole blocks (the call does not wait for the disk; the
/// `fsync` after it writes them out).
///
/// Forks (`ForkGuard`): the thread is active while it runs code and lets go while it sleeps
/// and during its `write`s and `fsync`s; the threads that hand it work take its lock outside
/// their activity (`ForkGuard.whileBlocked`), so none waits for the lock while a fork waits
/// for it.
final class JournalWriter: @unchecked Sendable {
    typealias Header = @Sendable () throws(CheckpointError) -> [UInt8]
    /// Starts a thread running the body (`spawnThread`; tests make it fail).
    typealias Spawn = (_ name: String, _ body: @escaping @Sendable () -> Void) throws(SystemError) -> Void

    private let descriptor: Int32
    private let path: String
    /// The alignment of direct writes when the journal opened (1: through the page cache): the
    /// journal places each frame `offset % alignment` bytes into its buffer.
    let alignment: Int
    private let lock = ConditionLock()
    // Under `lock`.
    /// Frames to write, in order.
    private var queued: [JournalBuffer] = []
    /// Written frames' buffers, to hand back to the journal (their memory is reused).
    private var spares: [JournalBuffer] = []
    /// The header of a new journal, to compute and write before any frame.
    private var header: Header?
    /// A thread (this one, or the one that closes the journal) is writing what it took.
    private var writing = false
    /// The journal is closing: its `close` writes what is left.
    private var finishing = false
    /// Nothing queued and nothing being written (set under `lock`; read without it by the
    /// journal, which hands off a frame near the end only then: `CheckpointJournal.isDueBySize`).
    private let idle = Atomic<Bool>(true)
    /// All is written and the file unlocked: flush and close it.
    private var released = false
    private var unsynced: Bool
    private var error: CheckpointError?
    // The thread that writes (the writer, or the one closing the journal: never both at once).
    /// The journal's length: where the next frame goes.
    private var size: Int
    /// The file's length: `size`, or up to the end of the last direct write's block.
    private var written: Int
    /// The end of the space allocated for the file (`preallocate`).
    private var allocated: Int
    /// Whether to allocate ahead (written through the page cache; false once the file system
    /// refused). Direct writes do not: measured in C, they cost as much CPU either way, and
    /// the blocks allocated ahead are given back by a truncation on the call's path (0.2–0.4
    /// ms here, before the journal is unlocked).
    private var preallocating: Bool
    /// The alignment of direct writes; 0 once writing through the page cache.
    private var direct: Int
    /// The file's last partial block: its first `size % direct` bytes.
    private let lastBlock: UnsafeMutableRawPointer
    /// Tests: direct writes after this many are refused as a file system would (`EINVAL`).
    private var directWritesBeforeRefusal: Int?
    // Writer thread only.
    private var lastSync = monotonicNanoseconds()

    /// `existing`: the file's bytes (its first `size` are the journal); `directWrites`: write
    /// without the page cache where the file system offers it (a map's large frames; a
    /// stream's frames are a result each).
    init(
        descriptor: Int32, path: String, size: Int, existing: [UInt8] = [], unsynced: Bool, header: Header? = nil,
        directWrites: Bool = false, refusingDirectWritesAfter: Int? = nil
    ) {
        self.descriptor = descriptor
        self.size = size
        written = size
        allocated = size
        self.path = path
        self.unsynced = unsynced
        self.header = header
        direct = directWrites ? Int(CSystemShims_enable_direct_io(descriptor)) : 0
        alignment = max(direct, 1)
        preallocating = direct == 0
        lastBlock = .allocate(byteCount: max(direct, 1), alignment: JournalBuffer.pageAlignment)
        if direct > 0 && size > 0 {
            let start = size - size % direct
            existing.withUnsafeBytes { lastBlock.copyMemory(from: $0.baseAddress! + start, byteCount: size - start) }
        }
        directWritesBeforeRefusal = refusingDirectWritesAfter
    }

    deinit { lastBlock.deallocate() }

    /// Whether the next write goes around the page cache (tests).
    var writesDirectly: Bool { lock.withLock { direct > 0 } }

    /// Starts the thread (the caller closes the descriptor if this throws).
    func start(_ spawn: Spawn = spawnThread) throws(SystemError) {
        try spawn("swiftmp-journal") { [self] in
            ForkGuard.enterActivity()
            run()
            ForkGuard.leaveActivity()
        }
    }

    /// Whether the writer has nothing queued and is not writing: a frame handed off now is
    /// written at once, and a buffer it wrote is there to fill next.
    var isIdle: Bool { idle.load(ordering: .acquiring) }

    /// Written buffers waiting to be filled again (tests).
    var spareCount: Int { lock.withLock { spares.count } }

    /// What could not be written (the call fails with it).
    var failure: CheckpointError? { ForkGuard.whileBlocked { lock.withLock { error } } }

    /// Queues a frame to be written; returns an empty buffer to fill next.
    func submit(_ frame: JournalBuffer) -> JournalBuffer {
        let spare: JournalBuffer? = ForkGuard.whileBlocked {
            lock.withLock {
                queued.append(frame)
                idle.store(false, ordering: .releasing)
                lock.broadcast()
                return spares.popLast()
            }
        }
        return spare ?? JournalBuffer.make(capacity: frame.capacity)
    }

    /// Writes `last` and what is still queued — on this thread, once the writer is done with
    /// what it was writing —, unlocks the file and lets the thread flush it to the disk and
    /// close it. Returns what could not be written, if anything.
    func finish(_ last: JournalBuffer?) -> CheckpointError? {
        let (header, frames, idle, failed) = ForkGuard.whileBlocked {
            lock.withLock { () -> (Header?, [JournalBuffer], [JournalBuffer], Bool) in
                if let last { queued.append(last) }
                finishing = true
                while writing { _ = lock.wait(until: nil) }
                defer {
                    self.header = nil
                    queued = []
                    spares = []
                }
                return (self.header, queued, spares, error != nil)
            }
        }
        // The last frames go into the page cache — the same whole blocks at the same places, so
        // it reads none of them — rather than to the disk, which the call would wait for (a
        // direct write of 1 MiB took 0.5–0.8 ms here); the writer's `fsync` after the call
        // writes them out. (Should clearing `O_DIRECT` fail, they are written directly.)
        if direct > 0 { _ = CSystemShims_disable_direct_io(descriptor) }
        let failure = failed ? nil : write(header: header, frames: frames)
        JournalBuffer.recycle(frames + idle)
        ForkGuard.whileBlocked {
            releaseExcess()
            // The next run may open it now (it reads what was written; the flush to the disk
            // goes on in the writer thread, on this open file).
            _ = flock(descriptor, LOCK_UN)
        }
        return ForkGuard.whileBlocked {
            lock.withLock {
                if let failure, error == nil { error = failure }
                if failure == nil && (header != nil || !frames.isEmpty) { unsynced = true }
                released = true
                lock.broadcast()
                return error
            }
        }
    }

    /// A blocking system call outside this thread's activity.
    private func outside<T, E>(_ body: () throws(E) -> T) throws(E) -> T {
        ForkGuard.leaveActivity()
        defer { ForkGuard.enterActivity() }
        return try body()
    }

    /// Computes and writes the header if given, then seals and writes each frame, in order;
    /// on whichever thread took them (the `write`s outside its `ForkGuard` activity).
    private func write(header: Header?, frames: [JournalBuffer]) -> CheckpointError? {
        do throws(CheckpointError) {
            if let header {
                let bytes = try header()
                let failure = bytes.withUnsafeBytes { raw -> CheckpointError? in
                    do throws(CheckpointError) {
                        try writeCopied(raw)
                        return nil
                    } catch {
                        return error
                    }
                }
                if let failure { throw failure }
            }
            for frame in frames {
                CheckpointJournal.seal(frame)
                try writeFrame(frame)
            }
            return nil
        } catch {
            return error
        }
    }

    /// A frame, from its buffer when the journal placed it where the file's end falls in a
    /// block (`lead`: room for the block's first bytes), else copied.
    private func writeFrame(_ frame: JournalBuffer) throws(CheckpointError) {
        guard direct > 0, frame.lead == size % direct else { return try writeCopied(UnsafeRawBufferPointer(frame.frame)) }
        frame.base.copyMemory(from: lastBlock, byteCount: frame.lead)
        let length = frame.padded(to: direct)
        try writeDirect(frame.base, length: length, lead: frame.lead, end: frame.count)
    }

    /// Bytes appended to the journal: through the page cache, or copied after the file's last
    /// partial block into a buffer for a direct write (a header, a frame placed otherwise).
    private func writeCopied(_ raw: UnsafeRawBufferPointer) throws(CheckpointError) {
        guard direct > 0 else { return try writeBuffered(raw) }
        let lead = size % direct
        let length = roundedUp(lead + raw.count, to: direct)
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: length, alignment: direct)
        defer { buffer.deallocate() }
        buffer.copyMemory(from: lastBlock, byteCount: lead)
        if let source = raw.baseAddress { (buffer + lead).copyMemory(from: source, byteCount: raw.count) }
        (buffer + lead + raw.count).initializeMemory(as: UInt8.self, repeating: 0, count: length - lead - raw.count)
        try writeDirect(buffer, length: length, lead: lead, end: lead + raw.count)
    }

    /// Writes `length` bytes from `buffer` (aligned) at the start of the block holding the
    /// journal's end: the block's first `lead` bytes (what the file holds there), the new bytes
    /// up to `end`, zeros after. A refusal (`EINVAL`), or a write that stops within a block,
    /// turns direct writes off: the rest goes through the page cache.
    private func writeDirect(_ buffer: UnsafeMutableRawPointer, length: Int, lead: Int, end: Int) throws(CheckpointError) {
        let start = size - lead
        preallocate(length - lead)
        var done = 0
        while done < length {
            let n: Int
            if let left = directWritesBeforeRefusal, left == 0 {
                n = -1
                errno = EINVAL
            } else {
                n = ForkGuard.whileBlocked { pwrite(descriptor, buffer + done, length - done, off_t(start + done)) }
            }
            if n < 0 && errno == EINTR { continue }
            if n > 0 && n % direct == 0 {
                done += n
                continue
            }
            if n < 0 && errno != EINVAL {
                throw CheckpointError(
                    .unusable,
                    "cannot write the checkpoint \(path): \(String(cString: strerror(errno))); is the disk full?")
            }
            done += max(n, 0)
            written = max(written, start + done)
            guard CSystemShims_disable_direct_io(descriptor) == 0 else {
                throw CheckpointError(
                    .unusable, "cannot write the checkpoint \(path) through the page cache: \(String(cString: strerror(errno)))")
            }
            ForkGuard.whileBlocked { lock.withLock { direct = 0 } }
            // Bytes before `from` are in the file (the block's first ones were already).
            let from = max(done, lead)
            size = start + min(from, end)
            if from < end { try writeBuffered(UnsafeRawBufferPointer(start: buffer + from, count: end - from)) }
            return
        }
        if let left = directWritesBeforeRefusal { directWritesBeforeRefusal = left - 1 }
        written = max(written, start + length)
        size = start + end
        let kept = size % direct
        lastBlock.copyMemory(from: buffer + end - kept, byteCount: kept)
    }

    /// Appends through the page cache.
    private func writeBuffered(_ raw: UnsafeRawBufferPointer) throws(CheckpointError) {
        preallocate(raw.count)
        let failure: CheckpointError? = ForkGuard.whileBlocked {
            do throws(CheckpointError) {
                try CheckpointJournal.writeAll(descriptor, raw, at: size, path: path)
                return nil
            } catch {
                return error
            }
        }
        if let failure { throw failure }
        size += raw.count
        written = max(written, size)
    }

    /// Allocates the file's blocks ahead of its end, `KEEP_SIZE` (the size, and what a reader
    /// sees, do not change): a `write(2)` into allocated blocks costs ext4 about a third less
    /// CPU time than one that reserves them (measured: 16.7 MB in 1 MiB writes, 3.2 → 2.3 ms).
    /// As much as the file holds already, 4–64 MiB; given back (`releaseExcess`) before
    /// the journal is unlocked, and by the next run's `open` after a kill. Only an
    /// optimisation: a file system that refuses it (no `fallocate`, a full disk, a quota) is
    /// just written to, and a real lack of space fails the `write`.
    private func preallocate(_ count: Int) {
        guard preallocating, size + count > allocated else { return }
        let end = size + count + min(max(size + count, 4 << 20), 64 << 20)
        if CSystemShims_fallocate_keep_size(descriptor, Int64(allocated), Int64(end - allocated)) == 0 {
            allocated = end
        } else {
            preallocating = false
        }
    }

    /// Cuts the file to the journal's length: the blocks allocated beyond it, and the zeros
    /// after the last direct write. Runs before the file is unlocked: the next run may append
    /// to it then. A failure only leaves them until the next run opens the journal (which
    /// drops them).
    private func releaseExcess() {
        guard allocated > size || written > size else { return }
        if ftruncate(descriptor, off_t(size)) == 0 {
            allocated = size
            written = size
        }
    }

    private enum Step {
        case write(Header?, [JournalBuffer])
        case sync
        case close(unsynced: Bool)
    }

    private func run() {
        while true {
            let step: Step = lock.withLock {
                while true {
                    if released { return .close(unsynced: unsynced) }
                    // Once closing, the closing thread writes what is left; nothing more is
                    // written after a failure (a journal without its header, or with a gap,
                    // would be read wrong).
                    if !finishing && !writing && error == nil && (header != nil || !queued.isEmpty) {
                        writing = true
                        defer {
                            header = nil
                            queued = []
                        }
                        return .write(header, queued)
                    }
                    let due = unsynced && !writing ? lastSync &+ CheckpointJournal.syncInterval : nil
                    if let due, monotonicNanoseconds() >= due {
                        unsynced = false
                        return .sync
                    }
                    _ = outside { lock.wait(until: due) }
                }
            }
            switch step {
            case .close(let unsynced):
                outside {
                    if unsynced { _ = fsync(descriptor) }
                    _ = Glibc.close(descriptor)
                }
                return
            case .sync:
                _ = outside { fsync(descriptor) }
                lastSync = monotonicNanoseconds()
            case .write(let header, let frames):
                let failure = write(header: header, frames: frames)
                for frame in frames { frame.reset() }
                lock.withLock {
                    writing = false
                    if let failure, error == nil { error = failure }
                    if failure == nil { unsynced = true }
                    // Every written buffer is a spare (the journal takes them back, or the
                    // buffer cache at the end): one dropped here would be made again, its
                    // huge page zeroed by the pool's thread (and given back by the VM, a
                    // fresh page from the host).
                    spares += frames
                    if queued.isEmpty { idle.store(true, ordering: .releasing) }
                    lock.broadcast()
                }
            }
        }
    }
}
