import CSystemShims
#if canImport(Glibc)
import Glibc
#endif

/// Starts the child of a `Process` with any start method. The child always gets the same
/// two descriptors: 3 = the payload (a memfd), 4 = a socket on which the descriptors its
/// target mentions were queued before it started (then our end is closed, so a missing one
/// reads as end-of-file — an error, never a hang).
///
/// - `.fork`: forked by the supervisor thread; shared segments are inherited (mapped), so
///   only connections travel on the socket.
/// - `.spawn`: `posix_spawn` of this executable with the role `process`.
/// - `.forkserver`: forked by the fork server, which received both descriptors.
enum ProcessLauncher {
    static func start(method: StartMethod, payload: ProcessPayload, segments: [SegmentStorage],
                      descriptors: [(SegmentID, Int32)],
                      started: @escaping @Sendable (pid_t) -> Void,
                      onExit: @escaping @Sendable (ChildExit) -> Void) throws -> pid_t {
        let region = try payload.makeRegion()
        var pair: [Int32] = [-1, -1]
        try syscallRetrying("socketpair") {
            socketpair(AF_UNIX, Int32(SOCK_SEQPACKET.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &pair)
        }
        let mine = pair[0], childSocket = pair[1]
        defer { systemClose(childSocket) }
        do {
            var attachments = descriptors
            if method != .fork {
                for segment in segments {
                    guard segment.region.descriptor >= 0 else {
                        throw ProcessError(.encoding, """
                            the target mentions shared memory this process received from another \
                            process; it can reach a child only with the .fork start method
                            """)
                    }
                    attachments.append((segment.id, segment.region.descriptor))
                }
            }
            try send(attachments, on: mine)
        } catch {
            systemClose(mine)
            throw error
        }
        systemClose(mine)

        let parent = getpid()
        switch method {
        case .fork, .automatic:
            let payloadFD = region.descriptor
            return try ProcessSupervisor.shared.perform {
                let pid = try ChildLauncher.fork {
                    // Move both out of the way of 3 and 4, then into place; close the rest.
                    let high = [fcntl(payloadFD, F_DUPFD, 512), fcntl(childSocket, F_DUPFD, 512)]
                    dup2(high[0], 3)
                    dup2(high[1], 4)
                    ChildLauncher.becomeChild(parent: parent, firstToClose: 5)
                    _exit(ProcessEntry.run(payloadDescriptor: 3, control: 4))
                }
                started(pid)
                try ProcessSupervisor.shared.watch(pid: pid, onExit: onExit)
                return pid
            }
        case .spawn:
            let passing = [region.descriptor, childSocket]
            return try ProcessSupervisor.shared.perform {
                let pid = try ChildLauncher.spawn(spec: "process parent=\(parent) fds=2", passing: passing)
                started(pid)
                try ProcessSupervisor.shared.watch(pid: pid, onExit: onExit)
                return pid
            }
        case .forkserver:
            return try ForkServer.shared().fork(spec: "process fds=2", passing: [region.descriptor, childSocket],
                                                started: started, onExit: { _, exit in onExit(exit) })
        }
    }

    /// Queues `attachments` on `socket` in batches of 32, in `DescriptorInbox`'s format.
    private static func send(_ attachments: [(SegmentID, Int32)], on socket: Int32) throws {
        for start in stride(from: 0, to: attachments.count, by: 32) {
            let batch = attachments[start..<min(start + 32, attachments.count)]
            var message = WireWriter()
            message.write(UInt32(batch.count))
            for (id, _) in batch {
                message.write(id.high)
                message.write(id.low)
            }
            let fds = batch.map { $0.1 }
            let sent = message.bytes.withUnsafeBytes { raw in
                fds.withUnsafeBufferPointer {
                    CSystemShims_send_with_fds(socket, raw.baseAddress, raw.count, $0.baseAddress, Int32(fds.count))
                }
            }
            if sent < 0 { throw SystemError("sendmsg (descriptors for a new process)", errno: errno) }
        }
    }
}
