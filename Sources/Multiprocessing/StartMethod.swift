import Foundation

/// How a local pool starts its workers (Python's start methods).
public enum StartMethod: String, Sendable, CaseIterable, Codable {
    /// `fork()` from the library's supervisor thread: fastest (~0.3 ms), inherits memory
    /// copy-on-write. Unsafe when other threads of this process may hold Swift runtime locks
    /// (measured: 13–37 % of children hung); `.automatic` avoids it then.
    case fork
    /// A single-threaded fork server (spawned once) forks the workers: safe with threads,
    /// ~0.3 ms per worker after an ~8 ms start. Workers do not inherit this process's memory.
    case forkserver
    /// `posix_spawn` of this executable; the library's start-up hook runs the worker before
    /// `main`. Safe with threads, 3–8 ms per worker.
    case spawn
    /// `.fork` when this process has no other threads than the library's own, otherwise
    /// `.forkserver`.
    case automatic

    /// The method `.automatic` resolves to now.
    var resolved: StartMethod {
        guard self == .automatic else { return self }
        return StartMethod.foreignThreadCount() == 0 ? .fork : .forkserver
    }

    /// Threads of this process other than the calling one and the library's own.
    static func foreignThreadCount() -> Int {
        guard let entries = try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/task") else { return 1 }
        var count = 0
        for entry in entries {
            guard let tid = Int32(entry), tid != CSystemShims_gettid() else { continue }
            let name = (try? String(contentsOfFile: "/proc/self/task/\(entry)/comm", encoding: .utf8))?
                .trimmingCharacters(in: .whitespacesAndNewlines) ?? ""
            if name.hasPrefix("swiftmp-") { continue }
            count += 1
        }
        return count
    }
}

import CSystemShims
