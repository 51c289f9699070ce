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

    /// Results the pool cannot decode: the error names the function as its author wrote it
    /// (it showed the mangled name a function type travels under, `…21ReturnsUndecodableV`).
    func testResultsThatCannotBeDecodedNameTheFunctionReadably() throws {
        try Pool.with(processes: 1, startMethod: .fork) { pool in
            XCTAssertThrowsError(try pool.map(ReturnsUndecodable(), [1, 2])) { error in
                XCTAssertEqual((error as? PoolError)?.code, .encoding, "\(error)")
                XCTAssertTrue("\(error)".contains("cannot decode results of MultiprocessingTests.ReturnsUndecodable:"), "\(error)")
            }
            XCTAssertEqual(try pool.map(Square(), [5]), [25], "the pool stays usable")
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

/// A value that encodes but never decodes.
struct Undecodable: Codable, Sendable {
    struct Refused: Error, CustomStringConvertible { var description: String { "refused to decode" } }
    init() {}
    init(from decoder: any Decoder) throws { throw Refused() }
    func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(1)
    }
}

struct ReturnsUndecodable: ParallelFunction {
    func callAsFunction(_ x: Int) -> Undecodable { Undecodable() }
}
