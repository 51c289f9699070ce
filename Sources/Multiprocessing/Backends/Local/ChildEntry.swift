import CSystemShims

#if canImport(Glibc)
import Glibc
#endif

/// What a child process runs, chosen by a spec string: `pool-worker parent=P slot=N`
/// (region descriptor at 3), `process` (payload at 3, descriptor socket at 4, see
/// `ProcessLauncher`) or `fork-server parent=P` / `fork-template parent=P` (socket at 3).
enum ChildEntry {
    /// Runs the role `spec` names; returns the exit status.
    static func run(spec: String, parent overrideParent: pid_t? = nil) -> Int32 {
        let words = spec.split(separator: " ")
        guard let role = words.first else { return 64 }
        var values: [String: String] = [:]
        for word in words.dropFirst() {
            let parts = word.split(separator: "=", maxSplits: 1)
            if parts.count == 2 { values[String(parts[0])] = String(parts[1]) }
        }
        let parent = overrideParent ?? values["parent"].flatMap { pid_t($0) } ?? getppid()
        switch role {
        case "pool-worker":
            guard let slot = values["slot"].flatMap({ Int($0) }),
                let region = try? SharedRegion(adopting: 3),
                let layout = try? PoolRegion.attach(region),
                slot >= 0, slot < layout.slotCount
            else {
                printError("swiftmp worker: cannot attach the pool's shared memory (\(spec))")
                return 71
            }
            region.closeDescriptor()
            if let stdio = values["stdio"].flatMap({ Int32($0) }) { OutputTagging.redirect(output: stdio, error: stdio + 1) }
            // Spawned (or by the fork server): `main` never ran here, so nothing set up logging.
            // Forked by a pool's template, it did (and swift-log takes one set-up per process).
            if values["main"] != "ran" { WorkerLogging.bootstrapInFreshWorker() }
            return withExtendedLifetime(region) { servePool(layout: layout, slot: slot, parent: parent, control: 4) }
        case "manager":
            guard let directory = values["dir"], let key = values["key"].flatMap(ManagerKey.decodeHex) else {
                printError("swiftmp manager: bad spec (\(spec))")
                return 64
            }
            _ = CSystemShims_set_name("swiftmp-manager")
            // Also ignores SIGINT (Ctrl-C reaches the whole process group), as Python's
            // manager server does: it goes when its owner goes.
            guard CSystemShims_cleanup_on_termination(directory + "/socket", directory) == 0 else {
                printError("swiftmp manager: cannot set its signal handling: \(SystemError("sigaction", errno: errno))")
                return 71
            }
            _ = CSystemShims_set_pdeathsig(SIGTERM)
            if getppid() != parent {
                unlink(directory + "/socket")
                rmdir(directory)
                return 0
            }
            return ManagerServer.serve(listener: 3, authkey: key, directory: directory, parent: parent)
        case "process":
            if let stdio = values["stdio"].flatMap({ Int32($0) }) { OutputTagging.redirect(output: stdio, error: stdio + 1) }
            return ProcessEntry.run(payloadDescriptor: 3, control: 4)
        case "fork-server", "fork-template":
            _ = CSystemShims_set_name(role == "fork-server" ? "swiftmp-forksrv" : "swiftmp-forktpl")
            // Ctrl-C reaches the whole process group: the server must outlive it while its
            // parent does (it goes when the parent goes), as Python's fork server does. The
            // children it forks get SIGINT's default action back (`ForkServer.serve`).
            // A template keeps the program's action for its children (a program that ignores
            // SIGINT before its pool has workers that ignore it, replacements too).
            guard (role == "fork-template" ? CSystemShims_ignore_interrupts_saving() : CSystemShims_ignore_interrupts(1)) == 0 else {
                printError("swiftmp fork server: cannot ignore SIGINT: \(SystemError("sigaction", errno: errno))")
                return 71
            }
            return ForkServer.serve(socket: 3, parent: parent)
        default:
            printError("swiftmp: unknown child role \(role)")
            return 64
        }
    }

    /// A pool worker's serve loop over its slot's rings. `crashReports`: made by the pool's
    /// process before it forked this worker (nil: made here).
    static func servePool(
        layout: PoolRegion, slot: Int, parent: pid_t, control: Int32, crashReports: CrashReports.Setup? = nil
    ) -> Int32 {
        _ = CSystemShims_set_name("swiftmp-worker")
        CurrentProcess.becomeChild(named: "PoolWorker-\(slot + 1)", daemon: true)
        WorkerRuntime.servesThisProcess = true
        CrashReports.install(parent: parent, setup: crashReports)
        let inbox = DescriptorInbox(socket: control)
        // Large messages read across processes (`RemoteTransfer`): where the pool may find this
        // worker's mapping of the region, and whether this worker can read the pool's.
        let transfer = layout.transfer(slot)
        transfer.workerAddress = UInt64(UInt(bitPattern: layout.base))
        transfer.workerReadsPool = RemoteTransfer.probe(pid: layout.poolPID, address: layout.poolAddress) ? 1 : 2
        let channel = WorkerChannel(
            tasks: layout.taskRing(slot), results: layout.resultRing(slot),
            doorbell: layout.doorbell, parent: parent, control: control, inbox: inbox,
            transfer: transfer, pool: layout.poolPID)
        let runtime = WorkerRuntime(progress: layout.progress(slot), attachments: inbox.descriptor(for:))
        // Large result arrays are written from where they are into the memfd (`WorkerChannel.send`).
        runtime.reply.defersLargeBlocks = true
        // Records logged in tasks travel on the result ring, before the task's result.
        WorkerLogSink.current = WorkerLogSink { record in
            Frame.finish(&record)
            _ = record.bytes.withUnsafeBytes { channel.send($0) }
        }
        // Forked from a worker rank: objects are reached through the rank, never by MPI here.
        let relay = MPIObjectClient.isAvailable ? ObjectRequestRelay(channel: channel) : nil
        if let relay { MPIObjectClient.install(relay: relay) }
        if relay != nil {
            channel.spinsForTasks = { SpinGate.spinningPays() }
            // `SWIFTMP_WORKER_FOLLOWS_RANK=0` leaves the worker where the kernel puts it.
            channel.followsRank = getenv("SWIFTMP_WORKER_FOLLOWS_RANK").map { String(cString: $0) != "0" } ?? true
        }
        while true {
            let action: WorkerRuntime.Action
            if let kept = relay?.takeKept() {
                action = kept.withUnsafeBytes { runtime.handle($0) }
            } else if let message = channel.receive() {
                action = runtime.handle(message)
                // A large message's mapping goes at the next receive, once the reply is out
                // (freeing its memory takes time the caller need not wait for); a remote one
                // goes now, before the reply, so that the pool lets go of its arrays.
                channel.releaseRemoteMessage()
            } else {
                break
            }
            switch action {
            case .none:
                continue
            case .reply:
                Frame.finish(&runtime.reply)
                let ok = channel.send(&runtime.reply)
                if !ok { return 0 }
                // Handles the task dropped while another of its requests was under way.
                if relay != nil { MPIObjectClient.flushReleases(waiting: false) }
                // A large reply's buffer is not kept for the next one (it went out of band).
                if runtime.reply.bytes.capacity > OutOfBand.threshold || !runtime.reply.deferredBlocks.isEmpty {
                    runtime.reply = WireWriter(capacity: 64 << 10)
                    runtime.reply.defersLargeBlocks = true
                }
            case .stop:
                if relay != nil {
                    // Give rank 0 back the served objects the pool's functions hold before
                    // this worker exits (an exit runs no deinit), while it still answers.
                    runtime.forgetFunctions()
                    MPIObjectClient.flushReleases(waiting: false)
                }
                Frame.finish(&runtime.reply)
                _ = channel.send(&runtime.reply)
                channel.awaitResultsRead()
                fflush(nil)
                return 0
            }
        }
        channel.awaitResultsRead()
        if let failure = channel.failure {
            printError("swiftmp worker: \(failure)")
            return 71
        }
        return 0
    }
}

/// The library's start-up hook (called by the C constructor in CSystemShims before `main`).
/// Returns the exit status, or -1 to let `main` run.
@_cdecl("swiftmp_startup_entry")
func swiftmpStartupEntry(_ kind: Int32, _ spec: UnsafePointer<CChar>?) -> Int32 {
    switch kind {
    case 1: // CSYSTEMSHIMS_ENTRY_SPAWNED
        let text = spec.map { String(cString: $0) } ?? ""
        let words = text.split(separator: " ")
        let parent = words.first(where: { $0.hasPrefix("parent=") }).flatMap { pid_t($0.dropFirst(7)) } ?? getppid()
        let passed = words.first(where: { $0.hasPrefix("fds=") }).flatMap { Int32($0.dropFirst(4)) } ?? 1
        ChildLauncher.becomeChild(parent: parent, firstToClose: 3 + passed)
        return ChildEntry.run(spec: text)
    case 2: // CSYSTEMSHIMS_ENTRY_MPI_WORKER
        #if MPI
        return MPIWorkerEntry.run()
        #else
        return WithoutMPI.workerRankEntry()
        #endif
    default:
        return -1
    }
}
