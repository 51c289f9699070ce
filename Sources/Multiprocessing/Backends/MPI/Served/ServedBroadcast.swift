import CSystemShims
import Wire

#if canImport(Glibc)
import Glibc
#endif

/// A served `Broadcast` (ARCHITECTURE.md §8): rank 0 holds the bytes (in a memfd region of its
/// own); a node's first task that reads it fetches them in pieces (`read`) into a named shared
/// memory block of the node (`BroadcastNodeCopy`), which every local worker there maps. Reads
/// never wait and never change the state.
final class ServedBroadcast: ServedState {
    static let kind = ServedKind.broadcast

    /// The bytes (nil for an empty value).
    let region: SharedRegion?
    let byteCount: Int

    init(region: SharedRegion?, byteCount: Int) {
        self.region = region
        self.byteCount = byteCount
    }

    enum Request: Equatable {
        case read(offset: Int, count: Int)
    }

    enum Reply: Equatable {
        case bytes([UInt8])
        /// A range outside the bytes: why.
        case refused(String)
    }

    func attempt(_ request: inout Request, from _: Requester) -> ServedOutcome<Reply> {
        switch request {
        case .read(let offset, let count):
            guard offset >= 0, count >= 0, offset <= byteCount - count else {
                return .reply(.refused("bytes \(offset)..<\(offset + count) are outside a broadcast of \(byteCount) bytes"))
            }
            guard count > 0, let region else { return .reply(.bytes([])) }
            return .reply(.bytes(Array(UnsafeRawBufferPointer(start: region.base + offset, count: count))))
        }
    }

    func expire(_ request: Request, from requester: Requester) -> Reply {
        var request = request
        guard case .reply(let reply) = attempt(&request, from: requester) else { return .refused("no answer") }
        return reply
    }

    static func encode(_ request: Request, into writer: inout WireWriter) {
        switch request {
        case .read(let offset, let count):
            writer.write(UInt8(0))
            writer.write(Int64(offset))
            writer.write(Int64(count))
        }
    }

    static func decodeRequest(_ reader: inout WireReader) throws(WireError) -> Request {
        switch try reader.read(UInt8.self) {
        case 0:
            let offset = Int(try reader.read(Int64.self))
            return .read(offset: offset, count: Int(try reader.read(Int64.self)))
        default: throw WireError.corrupt("unknown broadcast request")
        }
    }

    static func encode(_ reply: Reply, into writer: inout WireWriter) {
        switch reply {
        case .bytes(let bytes):
            writer.write(UInt8(0))
            writer.writeBytes(bytes)
        case .refused(let message):
            writer.write(UInt8(1))
            writer.write(message)
        }
    }

    static func decodeReply(_ reader: inout WireReader) throws(WireError) -> Reply {
        switch try reader.read(UInt8.self) {
        case 0: .bytes(try reader.readBytes())
        case 1: .refused(try reader.read(String.self))
        default: throw WireError.corrupt("unknown broadcast reply")
        }
    }
}

/// A `Broadcast`'s handle when rank 0 serves it: the served object (counted at rank 0 while
/// this handle lives) and the random key that names its copy on each node.
final class BroadcastServed: @unchecked Sendable {
    let object: MPIServedObject
    let key: UInt64
    let layout: BroadcastLayout

    private init(object: MPIServedObject, key: UInt64, layout: BroadcastLayout) {
        self.object = object
        self.key = key
        self.layout = layout
    }

    /// On rank 0: serves a copy of `source` (`layout.byteCount` bytes); returns the handle and
    /// rank 0's own mapping of them.
    static func create(
        layout: BroadcastLayout,
        from source: UnsafeRawBufferPointer
    ) throws -> (BroadcastServed, BroadcastBytes) {
        let region = layout.byteCount > 0 ? try SharedRegion(size: layout.byteCount, name: "swiftmp-broadcast") : nil
        let buffer = UnsafeMutableRawBufferPointer(start: region?.base, count: layout.byteCount)
        if let region { try BroadcastBytes.write(source, into: region) }
        let state = ServedBroadcast(region: region, byteCount: layout.byteCount)
        var generator = SystemRandomNumberGenerator()
        let key: UInt64 = generator.next()
        let handle = BroadcastServed(object: .serve(state), key: key, layout: layout)
        let bytes = try BroadcastBytes.shared(key) { () throws(BroadcastError) in
            BroadcastBytes(buffer: UnsafeRawBufferPointer(buffer), keeper: state, protectedIn: getpid())
        }
        return (handle, bytes)
    }

    /// A decoded copy: counted at rank 0 now.
    convenience init(decoded id: UInt64, key: UInt64, layout: BroadcastLayout) throws(BroadcastError) {
        do {
            try MPIServedObject.checkDecoding("Broadcast")
        } catch {
            throw BroadcastError(.unavailable, error.message)
        }
        self.init(object: MPIServedObject(decoded: id), key: key, layout: layout)
    }

    /// Pins the object while an encoded copy travels; refuses a local child process.
    func checkEncoding() throws(BroadcastError) {
        do {
            try MPIServedObject.checkEncoding("Broadcast", id: object.id)
        } catch {
            throw BroadcastError(.unavailable, error.message)
        }
    }

    /// This process's mapping: rank 0's own, or the node's copy (fetched by the first local
    /// worker of the node that needs it).
    func attach() throws(BroadcastError) -> BroadcastBytes {
        try BroadcastBytes.shared(key) { () throws(BroadcastError) in
            try BroadcastNodeCopy.open(self)
        }
    }

    /// Reads `count` bytes at `offset` from rank 0.
    func read(offset: Int, count: Int) throws(BroadcastError) -> [UInt8] {
        let reply: ServedBroadcast.Reply
        do {
            reply = try object.perform(ServedBroadcast.self, .read(offset: offset, count: count))
        } catch {
            throw BroadcastError(
                error.code == .notServed ? .unavailable : .transport,
                "cannot fetch a broadcast from rank 0: \(error.message)")
        }
        switch reply {
        case .bytes(let bytes) where bytes.count == count: return bytes
        case .bytes(let bytes):
            throw BroadcastError(.transport, "rank 0 sent \(bytes.count) bytes of a broadcast for \(count)")
        case .refused(let message): throw BroadcastError(.corrupt, message)
        }
    }
}

/// The copy of a served broadcast on one node: a named POSIX shared memory block
/// (`swiftmp_bc_<key>`, 0600, tracked: removed when the local worker that made it ends, or by
/// the orphan sweep if it died), a one-page header then the bytes. The first local worker that
/// needs it creates it (`O_EXCL`) and fetches the bytes from rank 0; the others wait until it
/// is complete and map it. Every local worker maps it read-only once complete.
enum BroadcastNodeCopy {
    /// The header: the state word (0 filling, 1 complete, 2 failed), the filler's pid.
    static let headerSize = 4096
    /// Bytes per request to rank 0: small enough that the answer goes through the local
    /// worker's ring (not a memfd of its own, `OutOfBand.threshold`) and that every buffer on
    /// the way is reused warm memory. Fresh memory costs a page fault per 4 KiB (about 1 GB/s
    /// on a small VM): 1 GiB to two workers under mpirun -np 3 took 14–17 s in 32 MiB pieces,
    /// 3.9 s in 4 MiB pieces, 3.1 s in 512 KiB pieces (`swiftmp bench broadcast`).
    static let pieceSize = 512 << 10
    /// How long a local worker waits for another's fetch (a stuck filler is noticed sooner:
    /// its death).
    static let waitLimitNanoseconds: UInt64 = 600_000_000_000

    static func name(_ key: UInt64) -> String {
        let hex = String(key, radix: 16)
        return "swiftmp_bc_" + String(repeating: "0", count: 16 - hex.count) + hex
    }

    static func open(_ served: BroadcastServed) throws(BroadcastError) -> BroadcastBytes {
        let name = Self.name(served.key)
        let size = headerSize + served.layout.byteCount
        let deadline = monotonicNanoseconds() &+ waitLimitNanoseconds
        var pause: UInt32 = 200
        while true {
            _ = SharedMemoryTracker.sweep()
            let created: SharedMemoryMapping?
            do throws(SharedMemoryError) {
                created = try SharedMemoryMapping.create(name: name, size: size, track: true)
            } catch  where error.code == .exists {
                created = nil // another local worker of this node makes it: wait for it below
            } catch {
                throw BroadcastError(.unavailable, "cannot make this node's copy of a broadcast: \(error.message)")
            }
            if let created { return try fill(created, from: served) }
            do {
                let mapping = try SharedMemoryMapping.attach(name: name)
                if let bytes = try waitForMaker(mapping, served: served, deadline: deadline) { return bytes }
            } catch let error as SharedMemoryError where error.code == .notFound || error.code == .invalidSize {
                // Gone (its maker failed or ended) or not sized yet: try again.
            } catch let error as BroadcastError {
                throw error
            } catch {
                throw BroadcastError(.unavailable, "cannot map this node's copy of a broadcast: \(error)")
            }
            guard monotonicNanoseconds() < deadline else {
                throw BroadcastError(.transport, "this node's copy of a broadcast was not complete after 600 s")
            }
            usleep(pause)
            pause = min(pause * 2, 10_000)
        }
    }

    private static func state(_ mapping: SharedMemoryMapping) -> UnsafeMutablePointer<UInt32> {
        mapping.base.assumingMemoryBound(to: UInt32.self)
    }

    /// Fetches the bytes into a block this process made, marks it complete.
    private static func fill(_ mapping: SharedMemoryMapping, from served: BroadcastServed) throws(BroadcastError) -> BroadcastBytes {
        (mapping.base + 4).storeBytes(of: Int32(getpid()), as: Int32.self)
        BroadcastBytes.populateForWriting(mapping.base + headerSize, served.layout.byteCount)
        let count = served.layout.byteCount
        var offset = 0
        do throws(BroadcastError) {
            while offset < count {
                let piece = min(pieceSize, count - offset)
                let bytes = try served.read(offset: offset, count: piece)
                bytes.withUnsafeBytes { (mapping.base + headerSize + offset).copyMemory(from: $0.baseAddress!, byteCount: piece) }
                offset += piece
            }
        } catch {
            CSystemShims_store_u32(state(mapping), 2)
            mapping.close() // unlinks it: another worker may try again
            throw error
        }
        CSystemShims_store_u32(state(mapping), 1)
        return try complete(mapping, count: count)
    }

    /// Waits until the block's maker completes it; nil if it failed (try again).
    private static func waitForMaker(
        _ mapping: SharedMemoryMapping, served: BroadcastServed,
        deadline: UInt64
    ) throws -> BroadcastBytes? {
        guard mapping.size == headerSize + served.layout.byteCount else {
            throw BroadcastError(
                .corrupt,
                "this node's copy of a broadcast has \(mapping.size) bytes, not "
                    + "\(headerSize + served.layout.byteCount)")
        }
        var pause: UInt32 = 100
        while true {
            switch CSystemShims_load_u32(state(mapping)) {
            case 1: return try complete(mapping, count: served.layout.byteCount)
            case 0:
                let maker = mapping.base.load(fromByteOffset: 4, as: Int32.self)
                if maker > 0, kill(maker, 0) != 0, errno == ESRCH {
                    // Its maker died while fetching: remove it so that someone makes it again.
                    _ = shm_unlink("/" + mapping.name)
                    mapping.close()
                    return nil
                }
                guard monotonicNanoseconds() < deadline else {
                    throw BroadcastError(.transport, "this node's copy of a broadcast was not complete after 600 s")
                }
                usleep(pause)
                pause = min(pause * 2, 5_000)
            default:
                mapping.close()
                return nil
            }
        }
    }

    private static func complete(_ mapping: SharedMemoryMapping, count: Int) throws(BroadcastError) -> BroadcastBytes {
        if mprotect(mapping.base, mapping.size, PROT_READ) != 0 {
            throw BroadcastError(.unavailable, "cannot map a broadcast read-only: \(SystemError("mprotect", errno: errno))")
        }
        return BroadcastBytes(
            buffer: UnsafeRawBufferPointer(start: mapping.base + headerSize, count: count), keeper: mapping,
            protectedIn: getpid())
    }
}
