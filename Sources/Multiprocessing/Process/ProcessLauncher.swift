import CSystemShims

#if canImport(Glibc)
import Glibc
#endif

/// Starts the child of a `Process` with any start method. The child always gets the same
/// two descriptors: 3 = the payload (a memfd), 4 = a socket on which the descriptors its
/// target mentions were queued before it started (then our end is closed, so a missing one
/// reads as end-of-file — an error, never a hang).
///
/// - `.fork`: forked by the calling thread if it is the main thread, else by the supervisor
///   thread; shared segments are inherited (mapped), so only connections travel on the socket.
/// - `.spawn`: `posix_spawn` of this executable with the role `process`.
/// - `.forkserver`: forked by the fork server, which received both descriptors.
enum ProcessLauncher {
    static func start(
        method: StartMethod, tagOutput: Bool? = nil, payload: ProcessPayload, segments: [SegmentStorage],
        descriptors: [(SegmentID, Int32)],
        inMemory: (@Sendable () throws -> Void)?,
        decode: (@Sendable (inout WireReader) throws -> any ParallelFunction)?,
        state: ProcessState
    ) throws -> pid_t {
        // tagOutput / SWIFTMP_TAG_OUTPUT: the child's 1 and 2 are pipes read by the supervisor.
        let tagged = try OutputTagging.Pipes.ifEnabled(option: tagOutput)
        var launched = false
        defer { if !launched { tagged?.discard() } }
        if method == .fork || method == .automatic {
            let pid = try startForked(
                payload: payload, segments: segments, descriptors: descriptors, inMemory: inMemory,
                tagged: tagged, decode: decode, state: state)
            launched = true
            try tagged?.started(pid: pid)
            return pid
        }
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
                        throw ProcessError(
                            .encoding,
                            """
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
        let passed = tagged == nil ? "fds=2" : "fds=4 stdio=5"
        let pid: pid_t
        switch method {
        case .fork, .automatic:
            preconditionFailure("forked children start in startForked")
        case .spawn:
            let passing = [region.descriptor, childSocket] + (tagged?.childEnds ?? [])
            pid = try ProcessSupervisor.shared.perform {
                let pid = try ChildLauncher.spawn(spec: "process parent=\(parent) \(passed)", passing: passing)
                let pidfd = try ProcessSupervisor.shared.watch(pid: pid, duplicate: true) { state.ended($0) }
                state.started(pid, pidfd: pidfd)
                return pid
            }
        case .forkserver:
            pid = try ForkServer.shared().fork(
                spec: "process \(passed)",
                passing: [region.descriptor, childSocket] + (tagged?.childEnds ?? []),
                started: { state.started($0) }, onExit: { _, exit in state.ended(exit) })
        }
        launched = true
        try tagged?.started(pid: pid)
        return pid
    }

    /// `.fork`: the child already has the payload in memory and the decoder for its type, so
    /// there is no memfd to fill or read and no type to look up by name; the socket for
    /// descriptors exists only when the target mentions some (connections). With `inMemory`
    /// (the target mentions nothing shared; then there is no `decode`) the child calls the
    /// target as it is in memory.
    private static func startForked(
        payload: ProcessPayload, segments: [SegmentStorage], descriptors: [(SegmentID, Int32)],
        inMemory: (@Sendable () throws -> Void)?, tagged: OutputTagging.Pipes?,
        decode: (@Sendable (inout WireReader) throws -> any ParallelFunction)?, state: ProcessState
    ) throws -> pid_t {
        precondition((inMemory == nil) != (decode == nil), "a forked child either calls its target as it is in memory or decodes it")
        var childSocket: Int32 = -1
        if !descriptors.isEmpty {
            var pair: [Int32] = [-1, -1]
            try syscallRetrying("socketpair") {
                socketpair(AF_UNIX, Int32(SOCK_SEQPACKET.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &pair)
            }
            childSocket = pair[1]
            do {
                try send(descriptors, on: pair[0])
            } catch {
                systemClose(pair[0])
                systemClose(pair[1])
                throw error
            }
            systemClose(pair[0])
        }
        defer { if childSocket >= 0 { systemClose(childSocket) } }
        let parent = getpid()
        let socket = childSocket
        // The child keeps the descriptors of the segments its target mentions (mapped, and
        // open so that it can pass them on to children of its own, whatever their start
        // method) and the socket; everything else from 3 up is closed.
        let keptRegions = segments.map(\.region).filter { $0.inheritableDescriptor >= 0 }
        let kept = (keptRegions.map(\.inheritableDescriptor) + (socket >= 0 ? [socket] : [])).sorted()
        // A local function, not a closure value: on the main thread it is called directly,
        // and its captures are not put in a heap context first (the parent writes that page
        // again after the fork).
        @Sendable func launch() throws -> pid_t {
            // The child is queued on the forking thread's CPU (`SameCPUStart`); right after
            // the fork the thread and the child get back the affinity the thread had.
            var affinity = CSystemShims_affinity()
            let pinned = SameCPUStart.pin(saving: &affinity)
            let pid: pid_t
            do {
                pid = try fork(named: payload.name, daemon: payload.daemon) {
                    tagged?.redirectInChild()
                    kept.withUnsafeBufferPointer { keep in
                        withUnsafePointer(to: affinity) {
                            ChildLauncher.becomeChild(parent: parent, firstToClose: 3, keeping: keep, affinity: pinned ? $0 : nil)
                        }
                    }
                    // (Written so that the usual child, whose target mentions nothing, retains
                    // nothing: the Swift runtime's code is a page fault of its own there.)
                    if !keptRegions.isEmpty {
                        for region in keptRegions { region.keptInForkedChild() }
                    }
                    let code =
                        if let decode {
                            ProcessEntry.run(payload: payload, control: socket, decode: decode)
                        } else {
                            ProcessEntry.run(inMemory: { try inMemory?() }, name: payload.name)
                        }
                    CSystemShims_exit_child(code)
                }
            } catch {
                // A thread left on one CPU is the worse of the two failures.
                if pinned, let failure = SameCPUStart.restore(affinity) { throw failure }
                throw error
            }
            if pinned, let failure = SameCPUStart.restore(affinity, child: pid) {
                ChildLauncher.killAndReap(pid)
                throw failure
            }
            // The parent reaps it through this pidfd (join, isAlive, exitCode, the next start),
            // as Python does: the supervisor thread is not woken for it, so it sleeps through
            // the child's life and the next fork.
            let pidfd: Int32
            do {
                pidfd = try syscallRetrying("pidfd_open") { CSystemShims_pidfd_open(pid, 0) }
            } catch {
                ChildLauncher.killAndReap(pid)
                throw error
            }
            state.started(pid, pidfd: pidfd, reaps: true)
            return pid
        }
        // A child dies with the *thread* that forked it (PR_SET_PDEATHSIG). The main thread
        // lives as long as the process (libdispatch's dispatch_main parks it for ever rather
        // than letting it exit), so the main thread forks on the spot: no hand-over to the
        // supervisor thread and back, which costs two cross-thread wake-ups per start. Any
        // other thread may end before its children, so they are forked by the supervisor.
        if CSystemShims_gettid() == getpid() { return try launch() }
        return try ProcessSupervisor.shared.perform(launch)
    }

    /// `fork()` for a `.fork` child: `ChildLauncher.fork`, except that the parent records the
    /// child's identity (`CurrentProcess.prepareForkedChild`) and the child only marks itself,
    /// in C, before `child` runs.
    private static func fork(named name: String, daemon: Bool, child: () -> Never) throws(SystemError) -> pid_t {
        // fflush(NULL) itself, under libc's lock of the stream list: other threads of this
        // process may open and close streams (`CSystemShims_flush_all` is for the child's end).
        fflush(nil)
        CurrentProcess.prepareForkedChild(named: name, daemon: daemon)
        let pid = try ChildLauncher.forkUnderGuard()
        if pid == 0 {
            CSystemShims_mark_forked_child()
            child()
        }
        return pid
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
