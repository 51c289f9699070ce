/// The smallest limit a process's cgroups put on one resource: over the cgroups named in
/// `/proc/self/cgroup` (cgroup v2's unified hierarchy, or v1's hierarchy of the controller)
/// and each one's ancestors, as far as this process can see them under `root` (normally
/// `/sys/fs/cgroup`; a container with its own cgroup namespace sees its own root). A
/// directory that does not exist, or says "no limit", adds nothing. Used for CPUs
/// (`CPUAllocation`) and memory (`MemoryLimit`).
struct CgroupLimits {
    /// The text of `/proc/self/cgroup`.
    var cgroups: String
    var root: String

    /// This process's cgroups, under `/sys/fs/cgroup`.
    static var current: CgroupLimits {
        CgroupLimits(cgroups: readSmallFile("/proc/self/cgroup") ?? "", root: "/sys/fs/cgroup")
    }

    /// The smallest of `v2` (given a cgroup v2 directory) and `v1` (given a directory of the
    /// v1 hierarchy mounted as one of `v1Mounts`, for a line naming `v1Controller`).
    func smallest(v1Controller: String, v1Mounts: [String], v1: (String) -> Int?, v2: (String) -> Int?) -> Int? {
        var limits: [Int] = []
        for line in cgroups.split(separator: "\n") {
            let fields = line.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false)
            guard fields.count == 3 else { continue }
            let controllers = fields[1].split(separator: ",")
            let path = String(fields[2])
            if fields[0] == "0" && fields[1].isEmpty {
                // cgroup v2: the unified hierarchy at `root` (or `root`/unified on hybrid systems).
                for mount in [root, root + "/unified"] {
                    if let limit = Self.smallest(mount: mount, path: path, read: v2) { limits.append(limit) }
                }
            } else if controllers.contains(Substring(v1Controller)) {
                var seen = Set<String>()
                for name in [controllers.joined(separator: ",")] + v1Mounts where seen.insert(name).inserted {
                    if let limit = Self.smallest(mount: root + "/" + name, path: path, read: v1) { limits.append(limit) }
                }
            }
        }
        return limits.min()
    }

    /// The smallest limit from `mount`+`path` up to `mount`.
    private static func smallest(mount: String, path: String, read: (String) -> Int?) -> Int? {
        var limits: [Int] = []
        var components = path.split(separator: "/").map(String.init)
        while true {
            let directory = components.isEmpty ? mount : mount + "/" + components.joined(separator: "/")
            if let limit = read(directory) { limits.append(limit) }
            if components.isEmpty { return limits.min() }
            components.removeLast()
        }
    }

    /// A file holding one number (or "max"), as an `Int`; nil when absent, "max", or not a number.
    static func number(_ path: String) -> Int? {
        guard let text = readSmallFile(path) else { return nil }
        return Int(text.filter { !$0.isWhitespace })
    }
}
