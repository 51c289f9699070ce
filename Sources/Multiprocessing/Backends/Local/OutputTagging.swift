import CSystemShims

#if canImport(Glibc)
import Glibc
#endif

/// `Pool(…, tagOutput: true)`, `Process(…, tagOutput: true)` or `SWIFTMP_TAG_OUTPUT=1`: every
/// line a local pool worker (or the process) writes on its standard output or standard error
/// reaches the program's own, prefixed with where it came from — `[pid 1234] line`, or
/// `[rank 2 pid 1234] line` when the pool's process is rank 2 of an MPI job — like
/// `mpirun --tag-output`.
///
/// Each worker then gets two pipes as its descriptors 1 and 2 (line-buffered); the process
/// supervisor's thread reads them and writes each complete line, prefixed, with one `write`
/// to descriptor 1 or 2 of this process (a line longer than 64 KiB is cut there; a last line
/// without a newline gets one when the worker ends). Off (the default), workers share the
/// program's descriptors as before and nothing of this runs. The option wins over the
/// variable (`tagOutput: false` turns it off); without the option (nil) the variable is read
/// each time a worker starts.
enum OutputTagging {
    /// Whether workers started now are tagged: `option` if given, else the variable.
    static func isEnabled(option: Bool?) -> Bool {
        option ?? isEnabled
    }

    static var isEnabled: Bool {
        guard let value = getenv("SWIFTMP_TAG_OUTPUT").map({ String(cString: $0) }) else { return false }
        return ["1", "yes", "true", "on"].contains(value.lowercased())
    }

    /// The prefix of this process's workers' lines, without the pid.
    static let origin: String = {
        let rank = getenv("OMPI_COMM_WORLD_RANK") ?? getenv("PMIX_RANK")
        return rank.map { "rank \(String(cString: $0)) " } ?? ""
    }()

    /// A worker's two pipes, made before it starts: the child's ends become its 1 and 2.
    struct Pipes: Sendable {
        var outputRead: Int32, outputWrite: Int32, errorRead: Int32, errorWrite: Int32

        /// The pipes if tagging is on (`option`, else the variable), nil otherwise.
        static func ifEnabled(option: Bool? = nil) throws(SystemError) -> Pipes? {
            guard OutputTagging.isEnabled(option: option) else { return nil }
            var output: [Int32] = [-1, -1], error: [Int32] = [-1, -1]
            try syscallRetrying("pipe2 (a worker's tagged standard output)") { CSystemShims_pipe2(&output, O_CLOEXEC) }
            do {
                try syscallRetrying("pipe2 (a worker's tagged standard error)") { CSystemShims_pipe2(&error, O_CLOEXEC) }
            } catch {
                output.forEach(systemClose)
                throw error
            }
            return Pipes(outputRead: output[0], outputWrite: output[1], errorRead: error[0], errorWrite: error[1])
        }

        /// The child's ends, to pass to a spawned (or fork server's) child.
        var childEnds: [Int32] { [outputWrite, errorWrite] }

        /// In a forked child, before anything else: the pipes become its 1 and 2.
        func redirectInChild() {
            OutputTagging.redirect(output: outputWrite, error: errorWrite)
        }

        /// In the parent, when the child could not start: closes all four ends.
        func discard() {
            [outputRead, outputWrite, errorRead, errorWrite].forEach(systemClose)
        }

        /// In the parent, once the child started: closes the child's ends and reads the
        /// parent's ends on the supervisor thread.
        func started(pid: pid_t) throws(SystemError) {
            systemClose(outputWrite)
            systemClose(errorWrite)
            let prefix = "[\(OutputTagging.origin)pid \(pid)] "
            let output = LineTagger(prefix: prefix, target: 1, worker: pid)
            let error = LineTagger(prefix: prefix, target: 2, worker: pid)
            OutputTagging.lock.withLock { OutputTagging.reading[pid] = 2 }
            do {
                try ProcessSupervisor.shared.addSource(outputRead) { output.drain($0) }
            } catch {
                systemClose(outputRead)
                systemClose(errorRead)
                OutputTagging.lock.withLock { OutputTagging.reading[pid] = nil }
                throw error
            }
            do {
                try ProcessSupervisor.shared.addSource(errorRead) { error.drain($0) }
            } catch {
                systemClose(errorRead)
                OutputTagging.ended(pid)
                throw error
            }
        }
    }

    /// Tagged pipes not at their end yet, by worker pid.
    private static let lock = ConditionLock()
    nonisolated(unsafe) private static var reading: [pid_t: Int] = [:]

    /// One of the worker's pipes reached its end (on the supervisor thread).
    static func ended(_ worker: pid_t) {
        lock.withLock {
            let left = (reading[worker] ?? 1) - 1
            reading[worker] = left > 0 ? left : nil
            lock.broadcast()
        }
    }

    /// Waits (at most until `deadline`) until the tagged output of the workers `pids`, which
    /// have ended, has all been written out: a program that exits right after its pool
    /// ends loses none of its workers' last lines. Returns at once when nothing is tagged.
    static func awaitEnd(of pids: [pid_t], deadline: UInt64) {
        lock.withLock {
            while !reading.isEmpty && pids.contains(where: { reading[$0] != nil }) && monotonicNanoseconds() < deadline {
                lock.wait(until: deadline)
            }
        }
    }

    /// In a worker: descriptors `output` and `error` become its 1 and 2 (then closed), and
    /// standard output is line-buffered (a pipe would make it fully buffered).
    static func redirect(output: Int32, error: Int32) {
        dup2(output, 1)
        dup2(error, 2)
        if output > 2 { close(output) }
        if error > 2 { close(error) }
        CSystemShims_line_buffer_stdout()
    }
}

/// Cuts what a worker writes into lines and writes each, prefixed, to `target`.
/// Runs on the supervisor thread only.
final class LineTagger: @unchecked Sendable {
    private let prefix: [UInt8]
    private let target: Int32
    private var pending: [UInt8] = []
    private var chunk = [UInt8](repeating: 0, count: 16 << 10)
    static let longestLine = 64 << 10

    private let worker: pid_t

    init(prefix: String, target: Int32, worker: pid_t) {
        self.prefix = Array(prefix.utf8)
        self.target = target
        self.worker = worker
    }

    /// Reads what `fd` has; false (and `fd` closed) at its end.
    func drain(_ fd: Int32) -> Bool {
        let count = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if count < 0 && (errno == EINTR || errno == EAGAIN) { return true }
        guard count > 0 else {
            // The worker ended (or the read failed: nothing more can come).
            if !pending.isEmpty { emit(pending[...]) }
            pending.removeAll()
            systemClose(fd)
            OutputTagging.ended(worker)
            return false
        }
        pending.append(contentsOf: chunk[0..<count])
        var start = pending.startIndex
        while let newline = pending[start...].firstIndex(of: UInt8(ascii: "\n")) {
            emit(pending[start..<newline])
            start = newline + 1
        }
        pending.removeSubrange(..<start)
        while pending.count >= Self.longestLine {
            emit(pending[..<Self.longestLine])
            pending.removeSubrange(..<Self.longestLine)
        }
        return true
    }

    private func emit(_ line: ArraySlice<UInt8>) {
        var bytes = prefix
        bytes.append(contentsOf: line)
        bytes.append(UInt8(ascii: "\n"))
        bytes.withUnsafeBytes { raw in
            var offset = 0
            while offset < raw.count {
                let written = write(target, raw.baseAddress! + offset, raw.count - offset)
                if written < 0 && errno == EINTR { continue }
                if written <= 0 { return } // our own output is closed: the line is dropped
                offset += written
            }
        }
    }
}
