import CSystemShims
import XCTest

@testable import Multiprocessing

#if canImport(Glibc)
import Glibc
#endif

/// A worker hosted by an MPI rank runs on its rank's CPU for round trips
/// (`WorkerChannel.followsRank`): the pieces without MPI.
final class FollowRankTests: XCTestCase {
    /// `CSystemShims_move_to_cpu` puts the caller on that CPU and leaves its affinity as it
    /// was; a CPU it may not use is refused with EINVAL.
    func testMovingToACPUKeepsTheAffinity() throws {
        let before = try XCTUnwrap(CPUAllocation.current.affinity)
        let online = Int32(sysconf(Int32(_SC_NPROCESSORS_ONLN)))
        var moved = 0
        for cpu in 0..<online where CSystemShims_move_to_cpu(cpu) == 0 {
            moved += 1
            // Moved now; the kernel may move it again at any time after, so only usually here.
            XCTAssertGreaterThanOrEqual(CSystemShims_current_cpu(), 0)
            XCTAssertEqual(CPUAllocation.current.affinity, before, "affinity not restored after moving to \(cpu)")
        }
        XCTAssertEqual(moved, before, "could not move to every CPU this process may use")
        errno = 0
        XCTAssertEqual(CSystemShims_move_to_cpu(-1), -1)
        XCTAssertEqual(errno, EINVAL)
        XCTAssertEqual(CSystemShims_move_to_cpu(1 << 20), -1)
        XCTAssertEqual(CPUAllocation.current.affinity, before)
    }

    /// A lone task forwarded by the rank names the rank's CPU for its worker; any other
    /// message clears it, so a worker in a stream of tasks stays where it is.
    func testALoneForwardedTaskNamesTheRanksCPU() throws {
        let backend = try LocalBackend(workers: 1, method: .fork)
        var frame = WireWriter()
        Frame.begin(&frame)
        frame.write(MasterMessage.chunk.rawValue)
        Frame.finish(&frame)
        XCTAssertEqual(backend.sender(of: 0), TransferWords.Sender(cpu: -1, beckoning: false))
        frame.bytes.withUnsafeBytes { backend.forward(frame: $0, to: 0, beckoning: true) }
        let beckoned = backend.sender(of: 0)
        XCTAssertTrue(beckoned.beckoning)
        XCTAssertEqual(beckoned.cpu, CSystemShims_current_cpu(), "the rank's CPU (this thread did not move)")
        // Any other message clears it, and still says which CPU it came from (a worker after
        // an idle wait does not spin there).
        frame.bytes.withUnsafeBytes { backend.forward(frame: $0, to: 0) }
        XCTAssertFalse(backend.sender(of: 0).beckoning)
        XCTAssertNotNil(backend.sender(of: 0).cpu)
    }
}
