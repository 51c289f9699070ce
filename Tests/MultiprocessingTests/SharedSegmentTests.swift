import Foundation
import XCTest

@testable import Multiprocessing

#if canImport(Glibc)
import Glibc
#endif

final class SharedSegmentTests: TimeLimitedTestCase {
    /// A segment created after the workers started reaches them however they were started:
    /// inherited for nobody, sent with SCM_RIGHTS to all.
    func testSegmentCreatedAfterWorkersStartReachesThemOnEveryStartMethod() throws {
        for method in [StartMethod.fork, .forkserver, .spawn] {
            try Pool.with(processes: 2, startMethod: method) { pool in
                _ = try pool.map(Square(), [1, 2]) // workers are up
                let segment = try SharedSegment(size: 8 * 64)
                for i in 0..<64 { segment.base.storeBytes(of: -i, toByteOffset: i * 8, as: Int.self) }
                let before = try pool.map(WriteSquareIntoSegment(segment: segment), 0..<64, chunkSize: 5)
                XCTAssertEqual(before, (0..<64).map { -$0 }, "\(method)")
                for i in 0..<64 {
                    XCTAssertEqual(segment.base.load(fromByteOffset: i * 8, as: Int.self), i * i, "\(method)")
                }
                // As an input, too, and a second segment in the same worker.
                let other = try SharedSegment(size: 64)
                other.base.storeBytes(of: 4242, toByteOffset: 8, as: Int.self)
                XCTAssertEqual(try pool.starmap(ReadSegmentInput(), [(other, 1), (segment, 3)]), [4242, 9], "\(method)")
            }
        }
    }

    /// Shared memory larger than this machine's memory and swap can never be filled: it is
    /// refused at creation, saying so — RawSharedArray and SharedArray zero-fill what they
    /// map, which past what the machine has calls the kernel's out-of-memory killer on this
    /// or another process. Checked in a forked child whose address space is limited
    /// (RLIMIT_AS), so that without the check the mapping fails there instead of being filled.
    func testSharedMemoryLargerThanTheMachineIsRefused() throws {
        let (mine, theirs) = try Pipe()
        let child = Process(target: SegmentsLargerThanTheMachine(report: theirs), startMethod: .fork)
        try child.start()
        XCTAssertTrue(try mine.poll(timeout: 60), "the child reported nothing")
        let size = try mine.recv(Int.self)
        let lines = try mine.recv([String].self)
        XCTAssertTrue(try child.join(timeout: 30))
        XCTAssertEqual(lines.count, 3)
        for line in lines {
            XCTAssertTrue(line.hasPrefix("threw "), line)
            // A machine of more than 1 TiB meets the older limit first.
            XCTAssertTrue(
                line.contains("memory and swap") || line.contains("memory limit of this process's cgroup")
                    || (size > 1 << 40 && line.contains("1 TiB")), line)
        }
    }

    /// In a container or a Slurm job with `--mem`, the limit is the cgroup's: shared memory
    /// larger than it is refused, saying so, instead of the out-of-memory killer ending the
    /// process that fills it. A forked child moves itself into a new memory cgroup limited to
    /// 256 MiB (as root, where this machine lets one be made: cgroup v1, or v2 with the memory
    /// controller delegated) and tries 512 MiB.
    func testSharedMemoryLargerThanTheCgroupLimitIsRefused() throws {
        guard let cgroup = try TestMemoryCgroup(limit: 256 << 20) else {
            throw XCTSkip("no memory cgroup can be made here (not root, or the controller is not delegated)")
        }
        defer { cgroup.remove() }
        let (mine, theirs) = try Pipe()
        let child = Process(target: SegmentsLargerThanTheCgroup(report: theirs, procs: cgroup.procs), startMethod: .fork)
        try child.start()
        theirs.close()
        guard try mine.poll(timeout: 60), let lines = try? mine.recv([String].self) else {
            _ = try child.join(timeout: 30)
            return XCTFail("the child reported nothing (exit \(String(describing: child.exitCode)): the out-of-memory killer?)")
        }
        XCTAssertTrue(try child.join(timeout: 30))
        XCTAssertEqual(lines.count, 4, "\(lines)")
        guard lines.count == 4 else { return }
        // Without swap accounting the cgroup's limit is its memory and the machine's swap.
        guard let limit = Int(lines[0].dropFirst("limit ".count)), limit < 512 << 20 else {
            throw XCTSkip("the cgroup's limit with this machine's swap (\(lines[0])) takes 512 MiB")
        }
        XCTAssertEqual(lines[1], "made 1 MiB", "a small segment is still made")
        for line in lines.dropFirst(2) {
            XCTAssertTrue(line.hasPrefix("threw "), line)
            XCTAssertTrue(line.contains("memory limit of this process's cgroup (\(limit) bytes"), line)
        }
    }

    /// The cgroup walk reads memory limits: v2 `memory.max` (+ `memory.swap.max`), v1
    /// `memory.memsw.limit_in_bytes` or `memory.limit_in_bytes` + the machine's swap; "no limit"
    /// spelled as v1 does (about 2⁶³) or as "max"; the smallest along the path.
    func testCgroupMemoryLimitsAreRead() throws {
        let root = try FakeCgroupRoot()
        defer { root.remove() }
        let write = root.write
        func bytes(_ cgroups: String, swap: Int = 0) -> Int? {
            MemoryLimit.cgroupBytes(CgroupLimits(cgroups: cgroups, root: root.path), machineSwapBytes: swap)
        }
        try write("memory.max", "max\n")
        try write("slurm/memory.max", "8589934592\n")
        try write("slurm/job_7/memory.max", "4294967296\n")
        try write("slurm/job_7/memory.swap.max", "0\n")
        XCTAssertEqual(bytes("0::/slurm/job_7\n", swap: 1 << 30), 4 << 30)
        XCTAssertEqual(bytes("0::/slurm\n", swap: 1 << 30), (8 << 30) + (1 << 30), "swap.max absent: the machine's swap")
        XCTAssertNil(bytes("0::/\n"))
        XCTAssertNil(bytes("0::/elsewhere\n"), "a path not visible here")
        try write("memory/memory.limit_in_bytes", "9223372036854771712\n")
        try write("memory/box/memory.limit_in_bytes", "1073741824\n")
        XCTAssertEqual(bytes("4:memory:/box\n1:cpu:/box\n", swap: 512), (1 << 30) + 512)
        try write("memory/box/memory.memsw.limit_in_bytes", "2147483648\n")
        XCTAssertEqual(bytes("4:memory:/box\n", swap: 512), 2 << 30, "memory and swap together")
        XCTAssertNil(bytes("4:memory:/\n"))
        XCTAssertEqual(MemoryLimit.limit(machineBytes: 100, cgroup: 50), MemoryLimit(bytes: 50, fromCgroup: true))
        XCTAssertEqual(MemoryLimit.limit(machineBytes: 100, cgroup: 500), MemoryLimit(bytes: 100, fromCgroup: false))
        XCTAssertEqual(MemoryLimit.limit(machineBytes: 100, cgroup: nil), MemoryLimit(bytes: 100, fromCgroup: false))
    }
}

/// Moves itself into the cgroup whose `cgroup.procs` is `procs`, then sends the limit it sees
/// ("limit N"), makes a 1 MiB segment and tries a `SharedSegment` and a `RawSharedArray` of
/// 512 MiB (when the limit is below that): "made …" or "threw <error>" for each.
struct SegmentsLargerThanTheCgroup: ParallelFunction {
    var report: Connection
    var procs: String
    func callAsFunction(_: Void) throws {
        try "\(getpid())".write(toFile: procs, atomically: false, encoding: .utf8)
        let limit = MemoryLimit.current.bytes
        var lines = ["limit \(limit)"]
        do {
            _ = try SharedSegment(size: 1 << 20)
            lines.append("made 1 MiB")
        } catch { lines.append("threw \(error)") }
        for make in [{ _ = try SharedSegment(size: 512 << 20) }, { _ = try RawSharedArray<UInt8>(count: 512 << 20) }] {
            // Filling 512 MiB it may use (with swap) could still meet the out-of-memory killer.
            guard limit < 512 << 20 else {
                lines.append("not tried")
                continue
            }
            do {
                try make()
                lines.append("made")
            } catch { lines.append("threw \(error)") }
        }
        try report.send(lines)
    }
}

/// With its address space limited to 4 GiB above what it maps, tries a `SharedSegment`, a
/// `RawSharedArray` and a `SharedArray` of 1 GiB more than the machine's memory and swap;
/// sends that size and, for each, "made" or "threw <error>".
struct SegmentsLargerThanTheMachine: ParallelFunction {
    var report: Connection
    func callAsFunction(_: Void) throws {
        let status = try String(contentsOfFile: "/proc/self/status", encoding: .utf8)
        let kib =
            status.split(separator: "\n").first { $0.hasPrefix("VmSize:") }
            .flatMap { $0.split(separator: " ").dropFirst().first }.flatMap { Int($0) } ?? 0
        var limit = rlimit()
        guard getrlimit(__rlimit_resource_t(RLIMIT_AS.rawValue), &limit) == 0 else { throw SystemError("getrlimit", errno: errno) }
        limit.rlim_cur = rlim_t(kib * 1024 + (4 << 30))
        guard setrlimit(__rlimit_resource_t(RLIMIT_AS.rawValue), &limit) == 0 else { throw SystemError("setrlimit", errno: errno) }
        let size = MemoryLimit.current.bytes + (1 << 30)
        var lines: [String] = []
        func attempt(_ make: () throws -> Void) {
            do {
                try make()
                lines.append("made")
            } catch { lines.append("threw \(error)") }
        }
        attempt { _ = try SharedSegment(size: size) }
        attempt { _ = try RawSharedArray<UInt8>(count: size) }
        attempt { _ = try SharedArray<UInt8>(count: size) }
        try report.send(size)
        try report.send(lines)
    }
}
