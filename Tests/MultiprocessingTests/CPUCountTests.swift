import XCTest
@testable import Multiprocessing
#if canImport(Glibc)
import Glibc
#endif

final class CPUCountTests: XCTestCase {
    /// `sched_getaffinity`/`sched_setaffinity` (GNU extensions the Glibc module does not
    /// import), looked up with dlsym so that the test reads the mask independently of the
    /// library's C shim.
    private typealias AffinityCall = @convention(c) (pid_t, Int, UnsafeMutableRawPointer?) -> Int32
    private func affinityCall(_ name: String) throws -> AffinityCall {
        let symbol = try XCTUnwrap(dlsym(UnsafeMutableRawPointer(bitPattern: 0), name), "dlsym(\(name))")
        return unsafeBitCast(symbol, to: AffinityCall.self)
    }

    /// A mask big enough for 4096 CPUs.
    private static let maskBytes = 4096 / 8

    /// The CPUs in this process's affinity mask.
    private func affinityCount() throws -> Int {
        let getAffinity = try affinityCall("sched_getaffinity")
        var mask = [UInt64](repeating: 0, count: Self.maskBytes / 8)
        let status = mask.withUnsafeMutableBytes { getAffinity(0, $0.count, $0.baseAddress) }
        XCTAssertEqual(status, 0, "sched_getaffinity: errno \(errno)")
        return mask.reduce(0) { $0 + $1.nonzeroBitCount }
    }

    func testCPUCountIsTheAffinityMaskSize() throws {
        let expected = try affinityCount()
        XCTAssertGreaterThan(expected, 0)
        XCTAssertEqual(Multiprocessing.cpuCount, expected)
        XCTAssertLessThanOrEqual(Multiprocessing.cpuCount, sysconf(Int32(_SC_NPROCESSORS_ONLN)))
    }

    /// A child whose mask is narrowed to one CPU sees `cpuCount == 1` (Python's
    /// `os.process_cpu_count()` under `taskset -c <cpu>`), whatever the machine has.
    func testCPUCountFollowsANarrowedMask() throws {
        let getAffinity = try affinityCall("sched_getaffinity")
        let setAffinity = try affinityCall("sched_setaffinity")
        var mask = [UInt64](repeating: 0, count: Self.maskBytes / 8)
        XCTAssertEqual(mask.withUnsafeMutableBytes { getAffinity(0, $0.count, $0.baseAddress) }, 0)
        // The lowest CPU we may run on, alone.
        let word = try XCTUnwrap(mask.firstIndex { $0 != 0 })
        var single = [UInt64](repeating: 0, count: mask.count)
        single[word] = 1 << UInt64(mask[word].trailingZeroBitCount)
        let pid = fork()
        XCTAssertGreaterThanOrEqual(pid, 0, "fork: errno \(errno)")
        if pid == 0 {
            let set = single.withUnsafeMutableBytes { setAffinity(0, $0.count, $0.baseAddress) }
            guard set == 0 else { _exit(3) }
            _exit(Multiprocessing.cpuCount == 1 ? 0 : 4)
        }
        var status: Int32 = 0
        XCTAssertEqual(waitpid(pid, &status, 0), pid)
        XCTAssertEqual(status, 0, "exit 3: sched_setaffinity failed; exit 4: cpuCount was not 1 under a one-CPU mask")
    }
}
