import XCTest

@testable import Multiprocessing

#if canImport(Glibc)
import Glibc
#endif

final class PoolEncodingTests: TimeLimitedTestCase {
    func testInputsAndOutputsThatCannotBeEncodedAreTypedErrorsNamingTheType() throws {
        for method in [StartMethod.fork, .spawn] {
            try Pool.with(processes: 1, startMethod: method) { pool in
                XCTAssertThrowsError(try pool.map(TakesUnencodable(), [Unencodable()])) { error in
                    XCTAssertEqual((error as? PoolError)?.code, .encoding, "\(error)")
                    XCTAssertTrue("\(error)".contains("refused to encode"), "\(error)")
                }
                XCTAssertThrowsError(try pool.apply(ReturnsUnencodable(), 3)) { error in
                    XCTAssertEqual((error as? PoolError)?.code, .encoding, "\(error)")
                    XCTAssertTrue("\(error)".contains("ReturnsUnencodable"), "\(error)")
                }
                XCTAssertEqual(try pool.map(Square(), [5]), [25], "the pool stays usable")
            }
        }
    }

    /// Workers started inside an mpirun job must not inherit its OMPI_/PMIX_ variables
    /// (they would die in MPI_Init or be captured as MPI ranks).
    func testWorkersDoNotInheritMPIEnvironment() throws {
        setenv("OMPI_SWIFTMP_TEST_MARKER", "1", 1)
        setenv("PMIX_SWIFTMP_TEST_MARKER", "1", 1)
        defer {
            unsetenv("OMPI_SWIFTMP_TEST_MARKER")
            unsetenv("PMIX_SWIFTMP_TEST_MARKER")
        }
        for method in [StartMethod.fork, .spawn] {
            try Pool.with(processes: 1, startMethod: method) { pool in
                XCTAssertEqual(try pool.map(SeesVariable(name: "OMPI_SWIFTMP_TEST_MARKER"), [0]), [false], "\(method)")
                XCTAssertEqual(try pool.map(SeesVariable(name: "PMIX_SWIFTMP_TEST_MARKER"), [0]), [false], "\(method)")
                XCTAssertEqual(try pool.map(SeesVariable(name: "PATH"), [0]), [true], "\(method)")
            }
        }
    }
}
