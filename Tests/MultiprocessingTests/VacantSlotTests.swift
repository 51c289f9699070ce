import CSystemShims
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
            // Every new descriptor fails for 300 ms (the lowest free number is the limit): each
            // worker ends after its task, and no replacement can start meanwhile.
            let result = try withDescriptorLimit(.noneFree) {
                let result = try pool.mapAsync(Square(), 0..<8, chunkSize: 1)
                usleep(300_000)
                return result
            }
            XCTAssertEqual(try bounded(60, "\(method): the map") { try result.get(timeout: 50) }, (0..<8).map { $0 * $0 }, "\(method)")
            XCTAssertEqual(try bounded(60, "\(method): a map after") { try pool.map(Square(), 0..<6, chunkSize: 1) }, (0..<6).map { $0 * $0 })
        }
    }
}

/// A `.fork` pool's template that answers a request with a failed fork (out of processes,
/// memory or descriptors) is healthy: it stays the replacements' parent, and the slot waits
/// vacant. It was dropped before, and every later replacement forked from the program.
final class TemplateRefusalTests: XCTestCase {
    func testATemplateWhoseForkFailsIsKept() throws {
        let pool = try Pool(processes: 2, startMethod: .fork, maxTasksPerChild: 1)
        defer {
            pool.terminate()
            _ = try? bounded(30, "join") { try pool.join() }
        }
        XCTAssertEqual(try bounded(60, "warm-up") { try pool.map(Square(), 0..<4, chunkSize: 1) }, [0, 1, 4, 9])
        let templates = children(named: "swiftmp-forktpl")
        XCTAssertEqual(templates.count, 1, "\(templates)")
        let template = try XCTUnwrap(templates.first)
        // No room for any new descriptor (the request's): the template answers EMFILE at once.
        var saved = rlimit()
        XCTAssertEqual(getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &saved), 0)
        XCTAssertEqual(CSystemShims_limit_descriptors(template, 3), 0)
        let result = try pool.mapAsync(Square(), 0..<8, chunkSize: 1)
        usleep(300_000)
        XCTAssertEqual(CSystemShims_limit_descriptors(template, UInt(saved.rlim_cur)), 0, "errno \(errno), limit \(saved.rlim_cur) / \(saved.rlim_max)")
        XCTAssertEqual(try bounded(60, "the map") { try result.get(timeout: 50) }, (0..<8).map { $0 * $0 })
        XCTAssertEqual(children(named: "swiftmp-forktpl"), [template], "the same template")
        XCTAssertEqual(try bounded(60, "a map after") { try pool.map(Square(), 0..<6, chunkSize: 1) }, (0..<6).map { $0 * $0 })
        XCTAssertEqual(children(named: "swiftmp-forktpl"), [template], "the same template")
    }
}

/// An initializer that ends its worker.
struct ExitInTheInitializer: ParallelFunction {
    func callAsFunction(_: Void) { exit(5) }
}

/// `maxTasksPerChild: 1` and a start that fails every time: the call fails with the reason
/// once three workers in a row died before their first task (workers were replaced for ever,
/// about 1 300 a second, and the call hung).
final class RetiringStartDeathTests: XCTestCase {
    func testAStartThatAlwaysFailsBreaksAPoolWithOneTaskPerChild() throws {
        for method in [StartMethod.fork, .spawn, .forkserver] {
            let pool = try Pool(processes: 2, startMethod: method, initializer: ExitInTheInitializer(), maxTasksPerChild: 1)
            defer {
                pool.terminate()
                _ = try? bounded(30, "join") { try pool.join() }
            }
            do {
                let results = try bounded(60, "\(method): map") { try pool.map(Square(), 0..<20) }
                XCTFail("\(method): \(results)")
            } catch let error as PoolError {
                XCTAssertEqual(error.code, .startFailed, "\(method): \(error)")
                XCTAssertTrue(error.message.contains("before their first task"), "\(method): \(error)")
            }
        }
    }
}
