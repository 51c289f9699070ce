import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A directory laid out as `/sys/fs/cgroup` is, for tests of what the library reads there.
struct FakeCgroupRoot {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("cgroup-\(UUID().uuidString)")
    var path: String { url.path }

    init() throws {
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }

    /// Writes `text` to the file at `path` below the root, making its directories.
    func write(_ path: String, _ text: String) throws {
        let file = url.appendingPathComponent(path)
        try FileManager.default.createDirectory(at: file.deletingLastPathComponent(), withIntermediateDirectories: true)
        try text.write(to: file, atomically: true, encoding: .utf8)
    }

    func remove() { try? FileManager.default.removeItem(at: url) }
}

/// A new memory cgroup below this process's own, limited to `limit` bytes (and no swap), for
/// a child to move into; nil where none can be made here.
struct TestMemoryCgroup {
    let directory: String
    /// The file a process writes its pid to, to move into it.
    var procs: String { directory + "/cgroup.procs" }

    init?(limit: Int) throws {
        guard getuid() == 0, let text = try? String(contentsOfFile: "/proc/self/cgroup", encoding: .utf8) else { return nil }
        let name = "swiftmp-test-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        for line in text.split(separator: "\n") {
            let fields = line.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false)
            guard fields.count == 3 else { continue }
            let path = String(fields[2]).trimmingCharacters(in: CharacterSet(charactersIn: "/"))
            var files: [(String, String)]
            var base: String
            if fields[1].split(separator: ",").contains("memory") {
                base = "/sys/fs/cgroup/memory/" + path
                files = [("memory.limit_in_bytes", "\(limit)")]
                if FileManager.default.fileExists(atPath: base + "/memory.memsw.limit_in_bytes") {
                    files.append(("memory.memsw.limit_in_bytes", "\(limit)"))
                }
            } else if fields[0] == "0" && fields[1].isEmpty,
                let controllers = try? String(contentsOfFile: "/sys/fs/cgroup/" + path + "/cgroup.subtree_control", encoding: .utf8),
                controllers.split(whereSeparator: \.isWhitespace).contains("memory")
            {
                base = "/sys/fs/cgroup/" + path
                files = [("memory.max", "\(limit)"), ("memory.swap.max", "0")]
            } else {
                continue
            }
            let directory = base + "/" + name
            guard mkdir(directory, 0o755) == 0 else { continue }
            var written = true
            for (file, value) in files {
                let done = (try? value.write(toFile: directory + "/" + file, atomically: false, encoding: .utf8)) != nil
                // Swap limits are optional: a kernel without swap accounting has no such file.
                if !done && !(file.hasSuffix("swap.max") || file.hasPrefix("memory.memsw")) { written = false }
            }
            guard written else {
                rmdir(directory)
                continue
            }
            self.directory = directory
            return
        }
        return nil
    }

    /// Removes it (once the child that moved in ended).
    func remove() {
        for _ in 0..<50 where rmdir(directory) != 0 {
            usleep(20_000)
        }
    }
}
