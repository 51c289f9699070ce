import CSystemShims

#if canImport(Glibc)
import Glibc
#endif

/// A worker's end of its control socket: descriptors of shared segments arrive here
/// (`SCM_RIGHTS`), always before the message that mentions them.
final class DescriptorInbox {
    private let socket: Int32
    private var pending: [SegmentID: Int32] = [:]

    init(socket: Int32) {
        self.socket = socket
    }

    /// The descriptor of segment `id`, reading the socket until it arrives. nil if the
    /// socket is closed or broken (the decode then fails with a clear error).
    func descriptor(for id: SegmentID) throws -> Int32? {
        while pending[id] == nil {
            var buffer = [UInt8](repeating: 0, count: 4 + 32 * 16)
            var fds = [Int32](repeating: -1, count: 64)
            var count: Int32 = 0
            var truncated: Int32 = 0
            let n = buffer.withUnsafeMutableBytes { raw in
                fds.withUnsafeMutableBufferPointer {
                    CSystemShims_recv_with_fds(socket, raw.baseAddress, raw.count, $0.baseAddress, 64, &count, &truncated)
                }
            }
            let received = Array(fds.prefix(Int(count)))
            guard n > 0, truncated == 0 else {
                received.forEach(systemClose)
                return nil
            }
            let segments = try buffer.withUnsafeBytes { raw -> [SegmentID]? in
                var reader = WireReader(UnsafeRawBufferPointer(rebasing: raw[0..<n]))
                guard Int(try reader.read(UInt32.self)) == received.count else { return nil }
                return try received.map { _ in SegmentID(high: try reader.read(UInt64.self), low: try reader.read(UInt64.self)) }
            }
            guard let segments else {
                received.forEach(systemClose)
                return nil
            }
            for (segment, fd) in zip(segments, received) { pending[segment] = fd }
        }
        return pending.removeValue(forKey: id)
    }
}
