#if MPI
import Foundation
import MPI
import TestSupport
import XCTest

#if canImport(Glibc)
import Glibc
#endif

/// The MPI layer in this process, as a singleton (rank 0 of 1, no mpirun). MPI can be
/// initialised once per process, so every in-process check is in this one test.
///
/// A singleton `MPI_Init` adds `OMPI_*` and `PMIX_*` variables to the environment (a PMIx
/// server address, `OMPI_MCA_orte_launch=1`, …) and `MPI_Finalize` leaves most of them; other
/// tests in this process start children that must not inherit them, so the test removes them.
final class SingletonTests: XCTestCase {
    private static let mpiPrefixes = ["OMPI_", "PMIX_", "OPAL_"]

    private static func mpiVariables() -> [String: String] {
        ProcessInfo.processInfo.environment.filter { name, _ in mpiPrefixes.contains { name.hasPrefix($0) } }
    }

    func testSingletonRankSizeAndCollectives() throws {
        let before = Self.mpiVariables()
        defer {
            for name in Self.mpiVariables().keys where before[name] == nil { unsetenv(name) }
            for (name, value) in before { setenv(name, value, 1) }
        }
        setenv("OMPI_MCA_pml", "ob1", 1)
        setenv("OMPI_MCA_btl_vader_single_copy_mechanism", "none", 1)
        XCTAssertTrue(try MPIEnvironment.libraryVersion.contains("Open MPI"))

        let provided = try MPIEnvironment.initialize(threadLevel: .funneled)
        XCTAssertGreaterThanOrEqual(provided, .funneled)
        XCTAssertTrue(MPIEnvironment.isInitialized)
        XCTAssertEqual(try MPIEnvironment.initialize(threadLevel: .funneled), provided, "initialize twice")
        XCTAssertFalse(try MPIEnvironment.processorName.isEmpty)

        let world = Communicator.world
        XCTAssertEqual(world.rank, 0)
        XCTAssertEqual(world.size, 1)

        // Collectives at size 1.
        XCTAssertEqual(try world.allReduce([1, 2, 3], .sum), [1, 2, 3])
        XCTAssertEqual(try world.allReduce(2.5, .max), 2.5)
        XCTAssertEqual(try world.reduce(Int32(7), .product, root: 0), 7)
        var broadcast = [UInt8](arrayLiteral: 9, 8)
        try world.broadcast(&broadcast, root: 0)
        XCTAssertEqual(broadcast, [9, 8])
        XCTAssertEqual(try world.gather([Int16(4), 5], root: 0), [4, 5])
        XCTAssertEqual(try world.allGather(UInt32(3)), [3])
        XCTAssertEqual(try world.gatherv([1.0, 2.0, 3.0], root: 0), [[1.0, 2.0, 3.0]])
        XCTAssertEqual(try world.allGatherv([Float]()), [[]])
        try world.barrier()

        // Point to point with itself.
        let request = try world.isend([10, 20, 30] as [Int64], to: 0, tag: 5)
        let status = try world.probe(from: .any, tag: 5)
        XCTAssertEqual(status.source, 0)
        XCTAssertEqual(try status.count(of: Int64.self), 3)
        let (elements, _) = try world.receiveArray(of: Int64.self, from: 0, tag: 5)
        XCTAssertEqual(elements, [10, 20, 30])
        try request.wait()
        XCTAssertNil(try world.iprobe(from: .any, tag: .any))

        // Communicators made from the world.
        let copy = try world.duplicate()
        XCTAssertEqual(copy.size, 1)
        try copy.free()
        XCTAssertNil(try world.split(color: nil))
        let split = try XCTUnwrap(try world.split(color: 3, key: 0))
        XCTAssertEqual(split.size, 1)
        try split.free()

        // Errors come back as MPIError with MPI's text.
        XCTAssertThrowsError(try world.send(1, to: 1, tag: 0)) { error in
            let mpiError = error as? MPIError
            XCTAssertEqual(mpiError?.function, "MPI_Send")
            XCTAssertEqual(mpiError?.message.isEmpty, false)
        }

        try MPIEnvironment.finalize()
        try MPIEnvironment.finalize() // idempotent
        XCTAssertTrue(MPIEnvironment.isFinalized)
        XCTAssertThrowsError(try MPIEnvironment.initialize())
    }
}
#endif
