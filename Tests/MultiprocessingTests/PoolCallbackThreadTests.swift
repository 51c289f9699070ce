import Multiprocessing
import Synchronization
import XCTest

/// Found by the CPython port: blocking calls in a callback (which runs on the pool's own
/// thread) waited for ever, and a huge timeout crashed the process.
final class PoolCallbackThreadTests: XCTestCase {
    /// `join()`, `apply` and `get()` without a timeout in a callback of the same pool throw at
    /// once (Python: "cannot join current thread"); `get(timeout:)` and another pool work.
    func testBlockingWaitsInACallbackFailInsteadOfHanging() throws {
        let pool = try Pool(processes: 1, startMethod: .fork)
        let other = try Pool(processes: 1, startMethod: .fork)
        defer {
            pool.terminate()
            other.terminate()
        }
        let seen = Mutex<[String]>([])
        let done = try pool.applyAsync(
            Square(), 3,
            callback: { _ in
                func note(_ text: String) { seen.withLock { $0.append(text) } }
                do {
                    try pool.join()
                    note("join returned")
                } catch let error as PoolError {
                    note("join \(error.code)")
                } catch {
                    note("join \(error)")
                }
                do {
                    _ = try pool.apply(Square(), 4)
                    note("apply returned")
                } catch let error as PoolError {
                    note("apply \(error.code)")
                } catch {
                    note("apply \(error)")
                }
                note("other pool \((try? other.apply(Square(), 5)).map(String.init) ?? "failed")")
            })
        XCTAssertTrue(done.wait(timeout: 60), "the callback hung")
        XCTAssertEqual(seen.withLock { $0 }, ["join invalidArgument", "apply invalidArgument", "other pool 25"])
        XCTAssertEqual(try pool.apply(Square(), 6), 36, "the pool goes on")
    }

    /// Iterating an `imap` stream of the same pool in a callback ends it with one failure
    /// instead of waiting for ever.
    func testIteratingAStreamInACallbackFailsInsteadOfHanging() throws {
        let pool = try Pool(processes: 1, startMethod: .fork)
        defer { pool.terminate() }
        let stream = try pool.imap(Square(), [1, 2, 3])
        let seen = Mutex<String>("")
        let done = try pool.applyAsync(
            Square(), 3,
            callback: { _ in
                let results = Array(stream)
                seen.withLock {
                    $0 = results.map { result in
                        switch result {
                        case .success(let value): return "\(value)"
                        case .failure(let error as PoolError): return "\(error.code)"
                        case .failure(let error): return "\(error)"
                        }
                    }.joined(separator: " ")
                }
            })
        XCTAssertTrue(done.wait(timeout: 60), "the callback hung")
        XCTAssertEqual(seen.withLock { $0 }, "invalidArgument")
    }

    /// A timeout of 10⁹ s or more (or infinity) means no limit, as everywhere else in the API,
    /// instead of crashing on the conversion to nanoseconds.
    func testHugeTimeoutMeansNoLimit() throws {
        try Pool.with(processes: 1, startMethod: .fork) { pool in
            XCTAssertEqual(try pool.map(Square(), [1, 2], timeout: 1e300), [1, 4])
            XCTAssertEqual(try pool.map(Square(), [3], timeout: .infinity), [9])
            XCTAssertThrowsError(try pool.map(Square(), [3], timeout: .nan)) { error in
                XCTAssertEqual((error as? PoolError)?.code, .invalidArgument)
            }
        }
        let pool = try Pool(processes: 1, startMethod: .fork, taskTimeout: 1e12)
        defer { pool.terminate() }
        XCTAssertEqual(try pool.apply(Square(), 7), 49)
    }
}
