import Wire

#if canImport(Glibc)
import Glibc
#endif

/// How a task in a worker rank's local worker reaches rank 0's object service (ARCHITECTURE.md
/// §8): the local worker never calls MPI, so its request goes to its rank on its result ring
/// (`WorkerMessage.objectRequest`), the rank forwards it to rank 0 and the answer back on the
/// worker's task ring (`MasterMessage.objectReply`). Pool messages that arrive on the task ring
/// while the task waits are kept, in order, for the serve loop (`takeKept`).
///
/// Used only by the worker's one serving thread and the task it runs (object calls from
/// several threads of one task take turns in `MPIObjectClient`).
final class ObjectRequestRelay: @unchecked Sendable {
    private let channel: WorkerChannel
    private var kept: [[UInt8]] = []
    private var frame = WireWriter(capacity: 256)

    init(channel: WorkerChannel) {
        self.channel = channel
    }

    /// Sends `request` and waits for its answer; nil if the rank is gone.
    func call(_ request: [UInt8]) -> [UInt8]? {
        Frame.begin(&frame)
        frame.write(WorkerMessage.objectRequest.rawValue)
        frame.bytes.append(contentsOf: request)
        Frame.finish(&frame)
        guard frame.bytes.withUnsafeBytes({ channel.send($0) }) else { return nil }
        // Copies: the message the serve loop is handling (the task's chunk) lies in the
        // channel's receive buffer, and its inputs may still be decoded after this call.
        while let message = channel.receiveCopy() {
            if message.first == MasterMessage.objectReply.rawValue { return Array(message.dropFirst()) }
            kept.append(message)
        }
        return nil
    }

    /// The oldest pool message that arrived while a task waited for an answer, if any.
    func takeKept() -> [UInt8]? {
        kept.isEmpty ? nil : kept.removeFirst()
    }
}
