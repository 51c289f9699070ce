import CSystemShims
import Wire

#if canImport(Glibc)
import Glibc
#endif

/// Large messages whose large arrays stay where they are: the sender sends the message's
/// other bytes and, for each large array (`WireDeferredBlock`), its address; the receiver
/// reads each array with `process_vm_readv` straight from the sender's memory into the array
/// it decodes (`WireRemoteRanges`). One copy, into the receiver's new array, and no shared
/// memory of the message's size on either side (the out-of-band memfd, `OutOfBand`, took a
/// copy into fresh shared pages and a second one out of them).
///
/// The sender keeps the arrays until the receiver says it has read them (`TransferWords`):
/// the pool keeps a large argument until the worker's `inputsRead` passes its token (or the
/// worker ends); a worker keeps a large result until the pool's `resultsRead` passes its
/// token, and waits for that before it exits.
///
/// Used only where the receiver can read the sender (a probe, each side reading the other's
/// copy of the pool region's magic: the worker at its start, the pool once its first message
/// to the worker is out): under `ptrace` restrictions
/// (Yama's `ptrace_scope`, a non-dumpable process, a container without the permission)
/// messages take the memfd as before.
///
/// Frame: the header's length has `flag` set and counts this payload: token, the message's
/// full size, the block count (UInt32, then 4 bytes of zero), per block its position in the
/// message, the sender's address and its size (3 × UInt64), then the message's other bytes.
enum RemoteTransfer {
    /// Set in a frame header's length: the payload describes a remote message.
    static let flag: UInt64 = 1 << 62
    static let fixedSize = 24
    static let blockSize = 24

    /// For tests: the probes fail as when `process_vm_readv` is not permitted (EPERM), so
    /// large messages take the memfd. Read by the pool when it probes a worker or sends a
    /// large argument, and by a worker (forked: it inherits it) when it probes the pool.
    nonisolated(unsafe) static var probeFailsForTesting = false

    /// For tests: the pool waits (up to 10 s) for a worker that sent a remote message to be
    /// gone before reading it (with `OutOfBand.exitAfterSendingDescriptor`: a worker that
    /// dies between sending a large result and the pool reading it).
    nonisolated(unsafe) static var awaitSenderExitForTesting = false
    /// For tests: remote messages this process has received (the pool's side).
    nonisolated(unsafe) static var receivedForTesting = 0

    /// Waits until process `pid` has ended (a zombie or gone), up to 10 s.
    static func awaitExit(of pid: pid_t) {
        for _ in 0..<1000 {
            guard let file = fopen("/proc/\(pid)/stat", "r") else { return }
            var line = [CChar](repeating: 0, count: 512)
            let read = fgets(&line, Int32(line.count), file) != nil
            fclose(file)
            guard read else { return }
            let text = String(decoding: line.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            if let close = text.lastIndex(of: ")"), text[close...].dropFirst(2).first == "Z" { return }
            usleep(10_000)
        }
    }

    /// `SWIFTMP_PROCESS_VM_READV=0` turns this off (large messages take the memfd).
    static let enabledByEnvironment: Bool = {
        guard let value = getenv("SWIFTMP_PROCESS_VM_READV") else { return true }
        return String(cString: value) != "0"
    }()

    /// Whether this process sends large messages remote (given a receiver that can read it).
    static var enabled: Bool { enabledByEnvironment && !probeFailsForTesting }

    /// Whether a large array read remote gets huge pages (`MADV_HUGEPAGE` on its storage's
    /// whole 2 MiB pages before the read; `SWIFTMP_LARGE_HUGEPAGES=0` turns it off). Most of
    /// such a read is the kernel handing out fresh pages (zeroed, then faulted in one by one):
    /// 2 MiB at a time, a 512 MiB argument moved 1.97 times faster here and a result 1.35
    /// times (median ratios over 5 interleaved rounds, Benchmarks/reports/large-values.md).
    /// With the memfd (`OutOfBand`) it did not pay: see `Sources/Wire/WireLargeBlocks.swift`.
    static let hugePages: Bool = {
        guard let value = getenv("SWIFTMP_LARGE_HUGEPAGES") else { return true }
        return String(cString: value) != "0"
    }()

    /// Advises huge pages for the whole 2 MiB pages of `count` bytes at `destination`.
    static func adviseHugePages(_ destination: UnsafeMutableRawPointer, count: Int) {
        let huge = UInt(2 << 20)
        let start = (UInt(bitPattern: destination) + huge - 1) & ~(huge - 1)
        let end = (UInt(bitPattern: destination) + UInt(count)) & ~(huge - 1)
        if end > start { _ = madvise(UnsafeMutableRawPointer(bitPattern: start), Int(end - start), MADV_HUGEPAGE) }
    }

    /// Reads `count` bytes at `address` in process `pid` into `destination`; 0 or an errno.
    static func read(pid: pid_t, address: UInt64, into destination: UnsafeMutableRawPointer, count: Int) -> Int32 {
        guard count > 0 else { return 0 }
        return CSystemShims_process_vm_read_all(pid, destination, UnsafeRawPointer(bitPattern: UInt(address)), count)
    }

    /// Whether this process may read process `pid`'s memory: its mapping of the pool region,
    /// at `address`, must hold the region's magic.
    static func probe(pid: pid_t, address: UInt64) -> Bool {
        guard enabled, pid > 0, address != 0 else { return false }
        var magic: UInt64 = 0
        let code = withUnsafeMutableBytes(of: &magic) { read(pid: pid, address: address, into: $0.baseAddress!, count: 8) }
        return code == 0 && magic == PoolRegion.magic
    }

    /// The frame (header included) for `message` (a `Frame.finish`ed frame with deferred
    /// blocks), or nil when its other bytes are too many to go through a ring.
    static func frame(for message: WireWriter, token: UInt64) -> [UInt8]? {
        let inline = message.bytes.count - Frame.headerSize
        let payload = fixedSize + message.deferredBlocks.count * blockSize + inline
        guard !message.deferredBlocks.isEmpty, payload <= OutOfBand.threshold else { return nil }
        var frame = WireWriter(capacity: Frame.headerSize + payload)
        frame.write(flag | UInt64(payload))
        frame.write(token)
        frame.write(UInt64(message.totalCount - Frame.headerSize))
        frame.write(UInt32(message.deferredBlocks.count))
        frame.write(UInt32(0))
        var before = 0 // bytes of earlier blocks
        for block in message.deferredBlocks {
            frame.write(UInt64(block.position - Frame.headerSize + before))
            frame.write(UInt64(UInt(bitPattern: block.bytes.baseAddress)))
            frame.write(UInt64(block.bytes.count))
            before += block.bytes.count
        }
        message.bytes.withUnsafeBytes { frame.writeRaw(UnsafeRawBufferPointer(rebasing: $0[Frame.headerSize...])) }
        return frame.bytes
    }
}

/// The words of one pool slot for remote messages (64 bytes in the pool region, zero when
/// the slot's worker is launched): the worker's address of the region @0 (for the pool's
/// probe), whether the worker may read the pool @8 and the pool the worker @12 (0 not yet
/// known, 1 yes, 2 no), the last remote argument the worker has read @16, the last remote
/// result the pool has read @24, a futex word bumped with it @32, and what the pool said of
/// its last sender @40 (`Sender`).
struct TransferWords: @unchecked Sendable {
    static let byteCount = 64
    let base: UnsafeMutableRawPointer

    init(at base: UnsafeMutableRawPointer) { self.base = base }

    private var words: UnsafeMutablePointer<UInt64> { base.assumingMemoryBound(to: UInt64.self) }
    private var flags: UnsafeMutablePointer<UInt32> { (base + 8).assumingMemoryBound(to: UInt32.self) }
    var resultsReadSequence: UnsafeMutablePointer<UInt32> { (base + 32).assumingMemoryBound(to: UInt32.self) }

    func reset() { base.initializeMemory(as: UInt8.self, repeating: 0, count: TransferWords.byteCount) }

    /// What the pool said of itself with its last message to this worker, in one word: the CPU
    /// it sent from (`WorkerChannel.onSendersCPU`) and whether that was an MPI worker rank
    /// forwarding a lone task the worker should follow it for (`WorkerChannel.followsRank`).
    struct Sender: Equatable {
        /// The CPU the message was sent from, if known.
        var cpu: Int32?
        var beckoning: Bool

        init(cpu: Int32, beckoning: Bool) {
            self.cpu = cpu >= 0 ? cpu : nil
            self.beckoning = beckoning && cpu >= 0
        }

        /// Bits 0–30: the CPU + 1 (0: unknown); bit 31: beckoning.
        fileprivate init(word: UInt32) {
            let cpu = Int32(word & 0x7FFF_FFFF) - 1
            self.init(cpu: cpu, beckoning: word & 0x8000_0000 != 0)
        }

        fileprivate var word: UInt32 {
            guard let cpu else { return 0 }
            return UInt32(cpu + 1) | (beckoning ? 0x8000_0000 : 0)
        }
    }

    var sender: Sender {
        get { Sender(word: CSystemShims_load_u32((base + 40).assumingMemoryBound(to: UInt32.self))) }
        nonmutating set { CSystemShims_store_u32((base + 40).assumingMemoryBound(to: UInt32.self), newValue.word) }
    }

    var workerAddress: UInt64 {
        get { CSystemShims_load_u64_seqcst(words) }
        nonmutating set { CSystemShims_store_u64_seqcst(words, newValue) }
    }
    var workerReadsPool: UInt32 {
        get { CSystemShims_load_u32_seqcst(flags) }
        nonmutating set { CSystemShims_store_u32_seqcst(flags, newValue) }
    }
    var poolReadsWorker: UInt32 {
        get { CSystemShims_load_u32_seqcst(flags + 1) }
        nonmutating set { CSystemShims_store_u32_seqcst(flags + 1, newValue) }
    }
    var inputsRead: UInt64 {
        get { CSystemShims_load_u64_seqcst(words + 2) }
        nonmutating set { CSystemShims_store_u64_seqcst(words + 2, newValue) }
    }
    var resultsRead: UInt64 {
        get { CSystemShims_load_u64_seqcst(words + 3) }
        nonmutating set {
            CSystemShims_store_u64_seqcst(words + 3, newValue)
            _ = CSystemShims_fetch_add_u32(resultsReadSequence, 1)
            _ = CSystemShims_futex_wake(resultsReadSequence, Int32.max)
        }
    }
}

/// A received remote message: its bytes in a private mapping of its full size, where only the
/// other bytes are written and the large arrays' ranges are registered (`WireRemoteRanges`)
/// to be read from the sender while decoding; unregistered and unmapped when dropped.
final class RemoteMessage {
    let token: UInt64
    /// The message (the large arrays' ranges not filled in unless `materialize`d).
    let bytes: UnsafeRawBufferPointer
    private let mapping: UnsafeMutableRawBufferPointer
    private let blocks: [(position: Int, address: UInt64, count: Int)]
    private let pid: pid_t
    private var registered = false

    /// Parses a remote frame's payload from process `pid`; throws on a malformed one.
    init(payload: UnsafeRawBufferPointer, from pid: pid_t) throws {
        var reader = WireReader(payload)
        token = try reader.read(UInt64.self)
        let total = try reader.read(UInt64.self)
        let count = Int(try reader.read(UInt32.self))
        _ = try reader.read(UInt32.self)
        guard total <= Frame.maximumPayload, count > 0, count * RemoteTransfer.blockSize <= reader.remaining else {
            throw PoolError(.protocolViolation, "a malformed large message (\(count) blocks, \(total) bytes)")
        }
        var blocks: [(position: Int, address: UInt64, count: Int)] = []
        var end = 0
        var referenced = 0
        for _ in 0..<count {
            let position = try reader.read(UInt64.self)
            let address = try reader.read(UInt64.self)
            let size = try reader.read(UInt64.self)
            guard position >= end, size > 0, position <= total, size <= total - position else {
                throw PoolError(.protocolViolation, "a malformed large message (a block at \(position) of \(size) bytes)")
            }
            blocks.append((Int(position), address, Int(size)))
            end = Int(position + size)
            referenced += Int(size)
        }
        let inline = UnsafeRawBufferPointer(rebasing: payload[reader.offset...])
        guard referenced + inline.count == Int(total) else {
            throw PoolError(.protocolViolation, "a malformed large message (\(inline.count) + \(referenced) ≠ \(total) bytes)")
        }
        // Address space only: the arrays' ranges are never touched unless materialized.
        let size = Int(total)
        guard let pointer = mmap(nil, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0),
            pointer != MAP_FAILED
        else {
            throw SystemError("mmap (a \(size)-byte message's address space)", errno: errno)
        }
        mapping = UnsafeMutableRawBufferPointer(start: pointer, count: size)
        var from = 0
        var to = 0
        for block in blocks {
            let run = block.position - to
            (pointer + to).copyMemory(from: inline.baseAddress! + from, byteCount: run)
            from += run
            to = block.position + block.count
        }
        if to < size { (pointer + to).copyMemory(from: inline.baseAddress! + from, byteCount: size - to) }
        self.blocks = blocks
        self.pid = pid
        self.bytes = UnsafeRawBufferPointer(mapping)
    }

    deinit {
        if registered { WireRemoteRanges.unregister(inside: bytes) }
        munmap(mapping.baseAddress, mapping.count)
    }

    /// Whether the sender can be read now: the first byte of each array (a sender that ended
    /// or cannot be read fails here, before anything is decoded).
    func probe() -> Bool {
        var byte: UInt8 = 0
        return blocks.allSatisfy { block in
            withUnsafeMutableBytes(of: &byte) { RemoteTransfer.read(pid: pid, address: block.address, into: $0.baseAddress!, count: 1) } == 0
        }
    }

    /// Registers the arrays' ranges for the decoder (`WireRemoteRanges`).
    func register() {
        let pid = self.pid
        for block in blocks {
            let address = block.address
            WireRemoteRanges.register(UnsafeRawBufferPointer(rebasing: bytes[block.position..<(block.position + block.count)])) {
                destination, offset, count in
                if RemoteTransfer.hugePages { RemoteTransfer.adviseHugePages(destination, count: count) }
                return RemoteTransfer.read(pid: pid, address: address + UInt64(offset), into: destination, count: count)
            }
        }
        registered = true
    }

    /// Reads the arrays into their ranges (for a consumer that copies the bytes rather than
    /// decoding them); throws when the sender cannot be read.
    func materialize() throws {
        for block in blocks {
            let code = RemoteTransfer.read(pid: pid, address: block.address, into: mapping.baseAddress! + block.position, count: block.count)
            if code != 0 { throw SystemError("process_vm_readv (a large message's array from process \(pid))", errno: code) }
        }
    }
}
