import CSystemShims
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// The fork server: a single-threaded process, spawned once, that forks workers on request
/// so that a threaded program never forks itself. It is the workers' parent, so it reaps
/// them and relays each exit status. It talks to us over an inherited `SOCK_SEQPACKET`
/// socketpair (no path anyone else could open) and dies when that socket closes.
///
/// A `.fork` pool's *template* (`template()`) is the same server, forked from the pool's
/// process as the pool starts instead of spawned (`LocalBackend.start`):
/// the workers that replace dead ones are forked from it, so they start as the first
/// workers did — from the program as it was then, with no lock held by a thread of it.
/// Forked from the program at the death, a replacement could start with a lock another
/// thread held at that moment (one of the Swift runtime's, a user's mutex) and wait for it
/// for ever.
///
/// Requests: `fork` = [1][request u64][spec][working directory] + descriptors (SCM_RIGHTS).
/// Replies: `forked` = [1][request u64][pid i32][errno i32]; `exited` = [2][pid i32][status i32].
final class ForkServer: @unchecked Sendable {
    private static let creation = ConditionLock(resetInForkedChild: true)
    nonisolated(unsafe) private static var instance: ForkServer?

    /// The process's fork server, spawned on first use, and again after the previous one
    /// ended (killed, crashed).
    static func shared() throws -> ForkServer {
        try creation.withLock {
            if let instance, instance.owner == getpid(), !instance.hasEnded { return instance }
            let server = try ForkServer()
            instance = server
            return server
        }
    }

    /// A fork template: children run with what the program had when it forked it. Never
    /// replaced behind its owner's back (`fork` throws once it ended).
    private let isTemplate: Bool
    private let socket: Int32
    private let serverPID: pid_t
    /// The process that started the server (a forked child starts its own).
    let owner = getpid()
    /// Set (on the supervisor thread) when the server process ended or its socket closed.
    /// Never under `creation`: the thread that holds `creation` may be waiting for the
    /// supervisor thread to spawn the next server.
    private let ended = EndedFlag()
    /// Done when the supervisor reaped the server process.
    private let reaped = Completion<Void>()
    private let lock = ConditionLock()
    private var nextRequest: UInt64 = 1
    private var replies: [UInt64: Result<pid_t, ForkRefusal>] = [:]
    private var pending: [UInt64: (started: @Sendable (pid_t) -> Void, onExit: @Sendable (pid_t, ChildExit) -> Void)] = [:]
    private var exitHandlers: [pid_t: @Sendable (pid_t, ChildExit) -> Void] = [:]
    private var earlyExits: [pid_t: ChildExit] = [:]
    private var dead = false

    private final class EndedFlag: Sendable {
        let value = Atomic<Bool>(false)
        func set() { value.store(true, ordering: .releasing) }
    }

    private var hasEnded: Bool { ended.value.load(ordering: .acquiring) }

    /// A new fork template for a `.fork` pool of this process (see the type's comment).
    static func template() throws -> ForkServer { try ForkServer(template: true) }

    private init(template: Bool = false) throws {
        isTemplate = template
        var pair: [Int32] = [-1, -1]
        try syscallRetrying("socketpair") {
            socketpair(AF_UNIX, Int32(SOCK_SEQPACKET.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &pair)
        }
        let parent = getpid()
        let child = pair[1], ours = pair[0]
        let ended = self.ended, reaped = self.reaped
        let spec = template ? "fork-template parent=\(parent)" : "fork-server parent=\(parent)"
        do {
            serverPID = try ProcessSupervisor.shared.perform {
                let pid =
                    template
                    ? try ChildLauncher.fork {
                        if child != 3 { dup2(child, 3) }
                        // Our end, if it took the number of a closed standard stream, is not
                        // the template's (nor its children's) output.
                        if ours < 3 { close(ours) }
                        ChildLauncher.becomeChild(parent: parent, firstToClose: 4)
                        _exit(ChildEntry.run(spec: spec))
                    }
                    : try ChildLauncher.spawn(spec: spec, passing: [child])
                try ProcessSupervisor.shared.watch(pid: pid) { _ in
                    ended.set()
                    reaped.complete(.success(()))
                }
                return pid
            }
        } catch {
            systemClose(pair[0])
            systemClose(pair[1])
            throw error
        }
        systemClose(child)
        socket = pair[0]
        // The handler keeps this server alive until its socket reports the end: the children
        // it was starting or watching are then reported ended, whoever still holds it.
        do {
            try ProcessSupervisor.shared.addSource(socket) { [self] _ in readReplies() }
        } catch {
            _ = Glibc.kill(serverPID, SIGKILL)
            // Not closed here: every property is set, so `deinit` runs and closes `socket`
            // (closing it here too would close whatever took its number meanwhile).
            throw error
        }
    }

    /// Closes nothing in a forked child that replaced the inherited server (`shared()`).
    deinit { closeIfOpenedHere(socket, owner: owner) }

    /// This process's working directory ("" if it cannot be read).
    static func currentDirectory() -> String {
        var path = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        guard getcwd(&path, path.count) != nil else { return "" }
        return String(decoding: path.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// Asks the server to fork a child running `spec` with `fds` as 3, 4, … in this process's
    /// working directory, waiting at most `answerWithin` ns for its answer.
    /// A server that ended before it got the request is replaced by a new one, transparently
    /// (a template is not: this throws); one that ends after it got the request makes this
    /// throw (the child, if it was forked, died with the server).
    func fork(
        spec: String, passing fds: [Int32], started: @escaping @Sendable (pid_t) -> Void,
        onExit: @escaping @Sendable (pid_t, ChildExit) -> Void, answerWithin: UInt64 = 30_000_000_000,
        retrying: Bool = false
    ) throws -> pid_t {
        if isTemplate && (hasEnded || owner != getpid()) {
            throw SystemError("fork in the pool's fork template (pid \(serverPID), which ended)", errno: ECHILD)
        }
        if hasEnded || owner != getpid() {
            if retrying { throw SystemError("fork in the fork server (a new server ended as it started)", errno: ECHILD) }
            return try ForkServer.shared().fork(spec: spec, passing: fds, started: started, onExit: onExit, retrying: true)
        }
        let request = lock.withLock { () -> UInt64 in
            let id = nextRequest
            nextRequest += 1
            pending[id] = (started, onExit)
            return id
        }
        var writer = WireWriter()
        writer.write(UInt8(1))
        writer.write(request)
        writer.write(spec)
        writer.write(ForkServer.currentDirectory())
        let sent = writer.bytes.withUnsafeBytes { raw in
            fds.withUnsafeBufferPointer { fdBuffer in
                CSystemShims_send_with_fds(socket, raw.baseAddress, raw.count, fdBuffer.baseAddress, Int32(fds.count))
            }
        }
        if sent < 0 {
            let code = errno
            _ = lock.withLock { pending.removeValue(forKey: request) }
            if code == EPIPE || code == ECONNRESET || code == ENOTCONN {
                // The server is gone and never saw the request: ask a new one (once).
                ended.set()
                if isTemplate { throw SystemError("sendmsg to the pool's fork template (it ended)", errno: code) }
                if retrying { throw SystemError("sendmsg to the fork server (a new server ended too)", errno: code) }
                return try ForkServer.shared().fork(spec: spec, passing: fds, started: started, onExit: onExit, retrying: true)
            }
            throw SystemError("sendmsg to the fork server", errno: code)
        }
        let end = monotonicNanoseconds() &+ answerWithin
        let (result, serverDied): (Result<pid_t, ForkRefusal>?, Bool) = lock.withLock {
            while replies[request] == nil && !dead {
                if !lock.wait(until: end), monotonicNanoseconds() >= end { break }
            }
            return (replies.removeValue(forKey: request), dead)
        }
        guard let result else {
            _ = lock.withLock { pending.removeValue(forKey: request) }
            if serverDied {
                let error = SystemError(
                    """
                    fork in the fork server (pid \(serverPID), which ended before it answered: nothing was \
                    started; a new server starts on the next use, try again)
                    """, errno: ECHILD)
                throw isTemplate ? error : ForkServerLost(error)
            }
            let which = isTemplate ? "the pool's fork template" : "the fork server"
            throw SystemError("fork in \(which) (pid \(serverPID), which did not answer in \(answerWithin / 1_000_000_000) s)", errno: ETIMEDOUT)
        }
        return try result.get()
    }

    /// Ends the server (a template, when its pool's workers are gone) and waits until
    /// `deadline` for the supervisor to reap it (0: does not wait; calling it again waits).
    /// A child it still has dies with it (`PR_SET_PDEATHSIG`).
    func stop(deadline: UInt64) {
        guard owner == getpid() else { return }
        if !reaped.isDone { _ = Glibc.kill(serverPID, SIGKILL) }
        _ = reaped.wait(until: deadline, spinning: false)
    }

    /// On the supervisor thread: reads every queued reply. False once the server is gone.
    private func readReplies() -> Bool {
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 256, alignment: 8)
        defer { buffer.deallocate() }
        while true {
            let n = recv(socket, buffer.baseAddress, buffer.count, Int32(MSG_DONTWAIT))
            if n < 0 {
                if errno == EAGAIN || errno == EINTR { return true }
                return markDead()
            }
            if n == 0 { return markDead() }
            let message = UnsafeRawBufferPointer(rebasing: buffer[0..<n])
            var reader = WireReader(message)
            guard let kind = try? reader.read(UInt8.self) else { continue }
            if kind == 1, let request = try? reader.read(UInt64.self),
                let pid = try? reader.read(Int32.self), let code = try? reader.read(Int32.self)
            {
                let callbacks = lock.withLock { pending.removeValue(forKey: request) }
                if code == 0, let callbacks {
                    callbacks.started(pid)
                    let early = lock.withLock { () -> ChildExit? in
                        exitHandlers[pid] = callbacks.onExit
                        return earlyExits.removeValue(forKey: pid)
                    }
                    if let early { deliverExit(pid: pid, early) }
                }
                let server = isTemplate ? "pool's fork template" : "fork server"
                lock.withLock {
                    replies[request] =
                        code == 0 ? .success(pid) : .failure(ForkRefusal(SystemError("fork in the \(server) (pid \(serverPID))", errno: code)))
                    lock.broadcast()
                }
            } else if kind == 2, let pid = try? reader.read(Int32.self), let status = try? reader.read(Int32.self) {
                deliverExit(pid: pid, ChildExit(waitStatus: status))
            }
        }
    }

    private func deliverExit(pid: pid_t, _ exit: ChildExit) {
        let handler = lock.withLock { () -> (@Sendable (pid_t, ChildExit) -> Void)? in
            if let handler = exitHandlers.removeValue(forKey: pid) { return handler }
            earlyExits[pid] = exit
            return nil
        }
        handler?(pid, exit)
    }

    private func markDead() -> Bool {
        // The server is gone: its children died with it (PR_SET_PDEATHSIG). Ended before a
        // waiting request wakes: its caller tells a server that ended from one that refused.
        ended.set()
        let handlers = lock.withLock { () -> [pid_t: @Sendable (pid_t, ChildExit) -> Void] in
            dead = true
            lock.broadcast()
            let all = exitHandlers
            exitHandlers.removeAll()
            return all
        }
        for (pid, handler) in handlers { handler(pid, .signaled(SIGKILL)) }
        return false
    }

    // MARK: the server process

    /// The server's main loop (in the spawned process). Returns its exit status.
    static func serve(socket: Int32, parent: pid_t) -> Int32 {
        CrashReports.owner = parent // the pool's process, where a worker's crash report goes
        var children: [Int32: pid_t] = [:] // pidfd → pid
        // A request: its spec and the requester's directory (up to PATH_MAX).
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 64 << 10, alignment: 8)
        defer { buffer.deallocate() }
        let me = getpid()
        func reply(_ writer: WireWriter) {
            _ = writer.bytes.withUnsafeBytes { raw in
                CSystemShims_send_with_fds(socket, raw.baseAddress, raw.count, nil, 0)
            }
        }
        while true {
            var descriptors = [pollfd(fd: socket, events: Int16(POLLIN), revents: 0)]
            for fd in children.keys { descriptors.append(pollfd(fd: fd, events: Int16(POLLIN), revents: 0)) }
            let ready = pollDescriptors(&descriptors, timeoutMilliseconds: 1000)
            if ready < 0 && errno != EINTR { break }
            if getppid() != parent { break }
            for entry in descriptors.dropFirst() where entry.revents != 0 {
                var status: Int32 = 0
                var pid: pid_t = 0
                if CSystemShims_waitid_pidfd(entry.fd, WNOHANG, &status, &pid) == 0, pid == 0 { continue }
                let child = children.removeValue(forKey: entry.fd) ?? pid
                systemClose(entry.fd)
                var writer = WireWriter()
                writer.write(UInt8(2))
                writer.write(Int32(child))
                writer.write(status)
                reply(writer)
            }
            guard descriptors[0].revents != 0 else { continue }
            var fds = [Int32](repeating: -1, count: 16)
            var fdCount: Int32 = 0
            var truncated: Int32 = 0
            let n = fds.withUnsafeMutableBufferPointer { fdBuffer in
                CSystemShims_recv_with_fds(socket, buffer.baseAddress, buffer.count, fdBuffer.baseAddress, 16, &fdCount, &truncated)
            }
            if n <= 0 { break } // our parent closed the socket or died
            let received = Array(fds.prefix(Int(fdCount)))
            defer { received.forEach(systemClose) }
            var reader = WireReader(UnsafeRawBufferPointer(rebasing: buffer[0..<n]))
            guard (try? reader.read(UInt8.self)) == 1, let request = try? reader.read(UInt64.self) else { continue }
            var writer = WireWriter()
            writer.write(UInt8(1))
            writer.write(request)
            // Descriptors this server had no room for (out of descriptors): refused at once
            // with the reason, rather than left unanswered for the requester's time limit.
            guard truncated == 0, let spec = try? reader.read(String.self), let directory = try? reader.read(String.self) else {
                writer.write(Int32(0))
                writer.write(truncated != 0 ? EMFILE : EINVAL)
                reply(writer)
                continue
            }
            // Room for everything the child and its watch need, made here, before the fork:
            // the passed descriptors moved just past 3, 4, … (where the child puts them), and
            // one number kept for the child's pidfd. Without room the request is refused with
            // the reason; a child that found none after the fork died at its start (counted as
            // a start death) or was never watched.
            var moved: [Int32] = []
            for fd in received {
                let copy = fcntl(fd, F_DUPFD_CLOEXEC, Int32(3 + received.count))
                if copy < 0 { break }
                moved.append(copy)
            }
            let reserved = moved.count == received.count ? fcntl(socket, F_DUPFD_CLOEXEC, 0) : -1
            defer { moved.forEach(systemClose) }
            guard reserved >= 0 else {
                writer.write(Int32(0))
                writer.write(errno)
                reply(writer)
                continue
            }
            fflush(nil)
            let pid = Glibc.fork()
            if pid == 0 {
                // The child: SIGINT's default action again (the server ignores it), as a
                // spawned child has it; a template's: the program's, as a forked one has it.
                _ = CSystemShims_restore_interrupts()
                // A template's child: its parent is the pool's process, as the template's is.
                CurrentProcess.forkedAgain()
                // The requester's working directory, as a forked or spawned child starts in
                // its parent's (Python's fork server children chdir there too). One that is
                // gone by now leaves the child in the server's.
                if !directory.isEmpty { _ = chdir(directory) }
                // Passed descriptors become 3, 4, … (from their moved copies, past those
                // numbers: a fixed 512 failed under a descriptor limit below it); everything
                // else closes.
                for (index, fd) in moved.enumerated() where dup2(fd, Int32(3 + index)) < 0 {
                    printError("swiftmp: a child of the fork server cannot take its descriptors: \(SystemError("dup2", errno: errno))")
                    _exit(70)
                }
                ChildLauncher.becomeChild(parent: me, firstToClose: Int32(3 + moved.count))
                _exit(ChildEntry.run(spec: spec, parent: me))
            }
            // A child whose end this server could not watch (no pidfd: out of descriptors)
            // would never be reported ended, and the pool would wait for it for ever: it is
            // killed and reaped at once, and the request fails with the reason.
            systemClose(reserved) // its number is the pidfd's
            let pidfd = pid > 0 ? CSystemShims_pidfd_open(pid, 0) : -1
            let failure = pid < 0 || pidfd < 0 ? errno : 0
            if pidfd >= 0 {
                _ = fcntl(pidfd, F_SETFD, FD_CLOEXEC)
                children[pidfd] = pid
                writer.write(Int32(pid))
                writer.write(Int32(0))
            } else {
                if pid > 0 { ChildLauncher.killAndReap(pid) }
                writer.write(Int32(0))
                writer.write(failure)
            }
            reply(writer)
        }
        // Parent gone: take every child down with us and reap them.
        for (fd, pid) in children {
            kill(pid, SIGKILL)
            var status: Int32 = 0
            var reaped: pid_t = 0
            _ = CSystemShims_waitid_pidfd(fd, 0, &status, &reaped)
            systemClose(fd)
        }
        return 0
    }
}

/// The fork server ended after it got a request and before it answered (killed, say by the
/// out-of-memory killer): nothing was started, and the next use starts a new server, so a
/// pool's replacement is tried again later (`PoolEngine.mayPass`) rather than breaking the
/// pool — which it did until session 22 (a fault probe: 3 runs in 30 with the server killed
/// just before a replacement).
struct ForkServerLost: Error, CustomStringConvertible {
    let error: SystemError
    init(_ error: SystemError) { self.error = error }
    var description: String { error.description }
}

/// A fork server's (or template's) answer that its fork failed (out of processes, memory or
/// descriptors): the server itself is fine, unlike one that ended or did not answer.
struct ForkRefusal: Error, CustomStringConvertible {
    let error: SystemError
    init(_ error: SystemError) { self.error = error }
    var description: String { error.description }
}
