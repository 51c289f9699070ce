import XCTest

@testable import Multiprocessing

#if canImport(Glibc)
import Glibc
#endif

/// A replacement worker that cannot start for a while (here: this process out of descriptors)
/// leaves its slot vacant and is started again later; the call goes on and ends with every
/// result (it broke the pool before: `PoolError(.startFailed)`, "cannot start a replacement
/// worker"). The engine's side, step by step: `EngineTests` (vacant slots).
final class VacantSlotTests: XCTestCase {
    func testAMapGoesOnWhileReplacementsCannotStartForAWhile() throws {
        for method in [StartMethod.fork, .spawn, .forkserver] {
            let pool = try Pool(processes: 2, startMethod: method, maxTasksPerChild: 1)
            defer {
                pool.terminate()
                _ = try? bounded(30, "join") { try pool.join() }
            }
            XCTAssertEqual(try bounded(60, "warm-up") { try pool.map(Square(), 0..<4, chunkSize: 1) }, [0, 1, 4, 9])
            var saved = rlimit()
            XCTAssertEqual(getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &saved), 0)
            // Every new descriptor fails from now on (the lowest free number is the limit):
            // each worker ends after its task, and no replacement can start.
            let free = dup(0)
            close(free)
            var lowered = saved
            lowered.rlim_cur = rlim_t(free)
            XCTAssertEqual(setrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &lowered), 0)
            let result: AsyncResult<[Int]>
            do {
                result = try pool.mapAsync(Square(), 0..<8, chunkSize: 1)
            } catch {
                XCTAssertEqual(setrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &saved), 0)
                throw error
            }
            usleep(300_000)
            XCTAssertEqual(setrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &saved), 0)
            XCTAssertEqual(try bounded(60, "\(method): the map") { try result.get(timeout: 50) }, (0..<8).map { $0 * $0 }, "\(method)")
            XCTAssertEqual(try bounded(60, "\(method): a map after") { try pool.map(Square(), 0..<6, chunkSize: 1) }, (0..<6).map { $0 * $0 })
        }
    }
}
