#if canImport(Glibc)
import Glibc
#endif

/// What a `Process` child receives at descriptor 3: its target's type name and encoded
/// value, its name and daemon flag, in a memfd. The descriptors the target mentions
/// (shared segments, connections) arrive on a socket at descriptor 4, each announced by id,
/// as a pool worker receives them (`DescriptorInbox`).
struct ProcessPayload {
    static let magic: UInt64 = 0x5357_4D50_5052_4F43 // "SWMPPROC"

    var typeName: String
    var name: String
    var daemon: Bool
    /// Where the child sits among the program's processes (`Process.ordinal`).
    var ordinal: String
    var target: [UInt8]

    /// A sealed-size memfd holding the payload.
    func makeRegion() throws -> SharedRegion {
        var writer = WireWriter(capacity: target.count + typeName.utf8.count + name.utf8.count + 64)
        writer.write(ProcessPayload.magic)
        writer.write(typeName)
        writer.write(name)
        writer.write(daemon)
        writer.write(ordinal)
        target.withUnsafeBytes { writer.writeLengthPrefixed($0) }
        let region = try SharedRegion(size: writer.count, name: "swiftmp-process")
        writer.bytes.withUnsafeBytes { region.base.copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
        return region
    }

    /// Reads a payload made by `makeRegion`.
    init(reading region: SharedRegion) throws {
        var reader = WireReader(UnsafeRawBufferPointer(start: region.base, count: region.size))
        guard try reader.read(UInt64.self) == ProcessPayload.magic else {
            throw WireError.corrupt("the process payload has no magic number")
        }
        typeName = try reader.read(String.self)
        name = try reader.read(String.self)
        daemon = try reader.read(Bool.self)
        ordinal = try reader.read(String.self)
        target = Array(try reader.readLengthPrefixed())
    }

    init(typeName: String, name: String, daemon: Bool, ordinal: String, target: [UInt8]) {
        self.typeName = typeName
        self.name = name
        self.daemon = daemon
        self.ordinal = ordinal
        self.target = target
    }
}
