import Multiprocessing

#if canImport(Glibc)
import Glibc
#endif

// `mpi-object-check --broadcast`: a 40 MiB array of Double (more than one piece of a node's
// fetch) and a dictionary broadcast once, read by every worker's tasks (checksums), with the
// copy each worker maps (one per node under mpirun, the pool's segment locally).

/// Sums slice `index` of `parts` of a broadcast array in place; says where it ran and which
/// copy it read (the file behind the mapping, from /proc/self/maps).
struct BroadcastSlice: ParallelFunction {
    let table: Broadcast<[Double]>
    let parts: Int
    func callAsFunction(_ index: Int) throws -> BroadcastSliceResult {
        try table.withUnsafeBufferPointer { (elements: UnsafeBufferPointer<Double>) -> BroadcastSliceResult in
            let size = elements.count / parts
            let end = index == parts - 1 ? elements.count : (index + 1) * size
            var sum = 0.0
            var i = index * size
            while i < end {
                sum += elements[i]
                i += 1
            }
            let host = Multiprocessing.currentProcess
            return BroadcastSliceResult(
                sum: sum, worker: "\(host.name) \(getpid())",
                copy: mappingFile(UInt(bitPattern: elements.baseAddress)))
        }
    }

    func mappingFile(_ address: UInt) -> String {
        guard let file = fopen("/proc/self/maps", "r") else { return "?" }
        defer { fclose(file) }
        var line = [CChar](repeating: 0, count: 4096)
        while fgets(&line, 4096, file) != nil {
            let text = String(decoding: line.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            let fields = text.split(separator: " ", omittingEmptySubsequences: true)
            let range = fields[0].split(separator: "-")
            guard range.count == 2, let low = UInt(range[0], radix: 16), let high = UInt(range[1], radix: 16),
                low <= address, address < high
            else { continue }
            // permissions, inode, path
            return "\(fields[1]) \(fields.count > 4 ? fields[4] : "") \(fields.count > 5 ? fields[5].trimmingCharacters(in: "\n") : "")"
        }
        return "unmapped"
    }
}

struct BroadcastSliceResult: Codable, Sendable {
    var sum: Double
    var worker: String
    var copy: String
}

struct BroadcastWord: ParallelFunction {
    let words: Broadcast<[String: Int]>
    func callAsFunction(_ key: String) throws -> Int {
        try words.value[key] ?? -1
    }
}

func broadcastCheck() throws {
    let count = 5 << 20 // 40 MiB
    var data = [Double](repeating: 0, count: count)
    for i in 0..<count { data[i] = Double(i % 1000) }
    let expected = data.reduce(0, +)
    try Pool.with { pool in
        let workers = pool.processes
        let table = try pool.broadcast(data)
        let parts = 4 * workers
        let results = try pool.map(BroadcastSlice(table: table, parts: parts), 0..<parts, chunkSize: 1)
        check("broadcast checksum", results.reduce(0) { $0 + $1.sum }, expected)
        let copies = Set(results.map(\.copy))
        let workersSeen = Set(results.map(\.worker)).count
        print("BROADCAST workers=\(workers) seen=\(workersSeen) copies=\(copies.count) \(copies.sorted())")
        check("broadcast read-only", copies.allSatisfy { $0.hasPrefix("r--s") }, true)
        let words = try pool.broadcast(["alpha": 1, "beta": 2, "gamma": 3])
        check(
            "broadcast dictionary", try pool.map(BroadcastWord(words: words), ["gamma", "alpha", "delta", "beta"]),
            [3, 1, -1, 2])
        table.release()
        check("broadcast released", table.isReleased, true)
        do {
            _ = try pool.apply(BroadcastSlice(table: table, parts: 1), 0)
            check("broadcast after release", "ran", "refused")
        } catch {
            check("broadcast after release", "\(error)".contains("released") ? "refused" : "\(error)", "refused")
        }
        // A second broadcast after the first was released: fetched and read the same way.
        let again = try pool.broadcast(Array(data[0..<(1 << 20)]))
        let second = try pool.map(BroadcastSlice(table: again, parts: workers), 0..<workers, chunkSize: 1)
        check("broadcast again", second.reduce(0) { $0 + $1.sum }, data[0..<(1 << 20)].reduce(0, +))
    }
    if mismatches > 0 {
        print("BROADCAST MISMATCHES \(mismatches)")
        exit(1)
    }
    print("BROADCAST OK")
}
