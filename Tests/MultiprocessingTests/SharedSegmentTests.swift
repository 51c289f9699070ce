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
            XCTAssertTrue(line.contains("memory and swap") || (size > 1 << 40 && line.contains("1 TiB")), line)
        }
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
        let size = machineMemoryBytes() + (1 << 30)
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
