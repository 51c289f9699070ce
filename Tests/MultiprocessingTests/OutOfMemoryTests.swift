import Wire
import XCTest

@testable import Multiprocessing

#if canImport(Glibc)
import Glibc
#endif

/// A task over its memory limit: the kernel's out-of-memory killer ends its worker, and the
/// input's `WorkerDied` says so (`outOfMemory`), so that a scientist over a Slurm job's
/// `--mem` reads "out of memory" rather than a bare SIGKILL. The other inputs succeed.
final class OutOfMemoryTests: XCTestCase {
    func testTheOutOfMemoryKillerIsNamed() throws {
        guard let cgroup = try TestMemoryCgroup(limit: 64 << 20) else {
            throw XCTSkip("no memory cgroup can be made here (not root, or the controller is not delegated)")
        }
        defer { cgroup.remove() }
        guard let before = OutOfMemoryKills.count() else { throw XCTSkip("/proc/vmstat has no oom_kill count here") }
        try Pool.with(processes: 2, startMethod: .fork) { pool in
            let results = try pool.imap(AllocateInACgroup(procs: cgroup.procs), [0, 1, 0, 0], chunkSize: 1).map { $0 }
            XCTAssertEqual(results.count, 4)
            for (index, result) in results.enumerated() where index != 1 {
                XCTAssertEqual(try result.get(), 0, "input \(index)")
            }
            guard case .failure(let error as WorkerDied) = results[1] else { return XCTFail("\(results[1])") }
            guard let after = OutOfMemoryKills.count(), after > before else {
                throw XCTSkip("the worker was not ended by the out-of-memory killer here: \(error)")
            }
            XCTAssertEqual(error.signal, SIGKILL, "\(error)")
            XCTAssertEqual(error.inputIndex, 1)
            XCTAssertTrue(error.outOfMemory, "\(error)")
            XCTAssertTrue("\(error)".contains("out-of-memory killer"), "\(error)")
        }
    }

    /// A worker killed from outside while no out-of-memory kill happened is not said to be.
    func testAPlainKillIsNotTakenForOutOfMemory() throws {
        try Pool.with(processes: 1, startMethod: .fork) { pool in
            XCTAssertThrowsError(try pool.apply(KillSelf(), 0)) { error in
                guard let died = error as? WorkerDied else { return XCTFail("\(error)") }
                XCTAssertFalse(died.outOfMemory, "\(died)")
                XCTAssertFalse("\(died)".contains("out-of-memory"), "\(died)")
            }
        }
    }

    func testTheCountIsReadFromVmstat() throws {
        let root = try FakeCgroupRoot()
        defer { root.remove() }
        try root.write("vmstat", "nr_free_pages 1\noom_kill 42\nnuma_hit 3\n")
        XCTAssertEqual(OutOfMemoryKills.count(vmstat: root.path + "/vmstat"), 42)
        try root.write("old", "nr_free_pages 1\n")
        XCTAssertNil(OutOfMemoryKills.count(vmstat: root.path + "/old"))
        XCTAssertNil(OutOfMemoryKills.count(vmstat: root.path + "/missing"))
    }
}

/// Input 1 moves its worker into a memory cgroup and fills 512 MiB there; others return 0.
struct AllocateInACgroup: ParallelFunction {
    var procs: String
    func callAsFunction(_ x: Int) throws -> Int {
        guard x == 1 else { return 0 }
        try "\(getpid())".write(toFile: procs, atomically: false, encoding: .utf8)
        let size = 512 << 20
        guard let memory = malloc(size) else { return -1 }
        memset(memory, 1, size)
        let sum = Int(memory.load(fromByteOffset: size - 1, as: UInt8.self))
        free(memory)
        return sum
    }
}

/// Ends its worker with SIGKILL.
struct KillSelf: ParallelFunction {
    func callAsFunction(_ x: Int) -> Int {
        kill(getpid(), SIGKILL)
        return x
    }
}

/// Under mpirun a worker rank tells rank 0 how its local worker ended: `outOfMemory` crosses
/// too, in both ways a rank reports (a relayed worker's end, a scheduled bundle's failure).
final class OutOfMemoryAcrossRanksTests: XCTestCase {
    func testARelayedEndCarriesIt() throws {
        for flag in [false, true] {
            var writer = WireWriter()
            RelayEnvelope.ended(
                pool: 3, local: 1,
                .init(exit: .signaled(SIGKILL), taken: 4, input: 2, wedged: false, requester: 7, outOfMemory: flag),
                into: &writer)
            // The envelope's header comes first; the ending is the rest.
            let ending = try writer.bytes.withUnsafeBytes { raw in
                XCTAssertEqual(RelayEnvelope.read(raw)?.kind, RelayEnvelope.Up.ended.rawValue)
                return try RelayEnvelope.readEnding(UnsafeRawBufferPointer(rebasing: raw[RelayEnvelope.size...]))
            }
            XCTAssertEqual(ending.outOfMemory, flag)
            XCTAssertEqual(ending.exit, .signaled(SIGKILL))
            XCTAssertEqual(ending.requester, 7)
        }
    }

    func testABundlesFailureCarriesIt() throws {
        let died = WorkerDied(pid: 12, signal: SIGKILL, inputIndex: 0, outOfMemory: true)
        var writer = WireWriter()
        OutcomeFailure(died).write(into: &writer)
        let failure = try writer.bytes.withUnsafeBytes { raw in
            var reader = WireReader(raw)
            return try OutcomeFailure.read(&reader)
        }
        let (error, _) = failure.error(inputIndex: 5, worker: WorkerDied(rank: 2, host: "node2"))
        let again = try XCTUnwrap(error as? WorkerDied)
        XCTAssertTrue(again.outOfMemory, "\(again)")
        XCTAssertTrue("\(again)".contains("out-of-memory killer"), "\(again)")
        XCTAssertEqual(again.rank, 2)
    }
}
