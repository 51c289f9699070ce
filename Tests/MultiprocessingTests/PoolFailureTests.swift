import XCTest

@testable import Multiprocessing

#if canImport(Glibc)
import Glibc
#endif

private struct HiddenFunction: ParallelFunction {
    func callAsFunction(_ x: Int) -> Int { x }
}

final class PoolFailureTests: TimeLimitedTestCase {
    let methods: [StartMethod] = [.fork, .forkserver, .spawn]

    func testThrowingFunctionGivesRemoteErrorWithIndexAndPoolStaysUsable() throws {
        for method in methods {
            try Pool.with(processes: 2, startMethod: method) { pool in
                // map fails fast: with the first input that fails (the lowest of those failed in the
                // same round) — any multiple of 7, named exactly.
                XCTAssertThrowsError(try pool.map(FailOnMultiple(divisor: 7), 1..<50, chunkSize: 3)) { error in
                    guard let remote = error as? RemoteError else { return XCTFail("\(method): \(error)") }
                    XCTAssertEqual((remote.inputIndex + 1) % 7, 0, "\(method): \(remote)")
                    XCTAssertTrue(remote.typeName.hasSuffix("Boom"), remote.typeName)
                    XCTAssertEqual(remote.message, "boom at \(remote.inputIndex + 1)")
                }
                XCTAssertThrowsError(try pool.map(FailOnMultiple(divisor: 7), 1..<10, chunkSize: 3)) { error in
                    XCTAssertEqual((error as? RemoteError)?.inputIndex, 6, "\(method): \(error)") // input 7 is at index 6
                }
                // imap: the failure is one element; the others are delivered.
                let results = Array(try pool.imap(FailOnMultiple(divisor: 5), Array(1...10)))
                XCTAssertEqual(results.count, 10)
                XCTAssertEqual(results.compactMap { try? $0.get() }, [2, 3, 4, 5, 7, 8, 9, 10])
                XCTAssertEqual(try pool.map(Square(), [1, 2, 3]), [1, 4, 9])
            }
        }
    }

    /// The caller hears of a death within a second of it (timed from the moment the victim
    /// starts to die, so a loaded machine's slow pool start does not count; a crashing worker
    /// first writes its crash report — Swift's backtracer symbolicates —, which may take
    /// longer than the death itself on a loaded machine: 5 s for those).
    func testKilledWorkerGivesWorkerDiedAndIsReplaced() throws {
        let stamp = FileManager.default.temporaryDirectory.appendingPathComponent("swiftmp-death-\(getpid())").path
        defer { unlink(stamp) }
        for method in methods {
            for way in [DieOn.Way.sigkill, .segfault, .fatal, .exit] {
                let pool = try Pool(processes: 2, startMethod: method)
                unlink(stamp)
                XCTAssertThrowsError(try pool.map(DieOn(victim: 5, way: way, stamp: stamp), 0..<10, chunkSize: 1), "\(method) \(way)") { error in
                    guard let died = error as? WorkerDied else { return XCTFail("\(method) \(way): \(error)") }
                    XCTAssertEqual(died.inputIndex, 5, "\(method) \(way)")
                    XCTAssertNotNil(died.pid)
                    switch way {
                    case .sigkill: XCTAssertEqual(died.signal, SIGKILL)
                    case .segfault, .raiseSegv: XCTAssertEqual(died.signal, SIGSEGV)
                    case .fatal: XCTAssertTrue(died.signal == SIGILL || died.signal == SIGTRAP, "\(died)")
                    case .exit: XCTAssertEqual(died.exitCode, 3)
                    }
                }
                let heard = monotonicNanoseconds()
                let died = try XCTUnwrap(UInt64((try? String(contentsOfFile: stamp, encoding: .utf8)) ?? ""), "\(method) \(way): no stamp")
                let limit = way == .sigkill || way == .exit ? 1.0 : 5.0
                XCTAssertLessThan(Double(heard - died) / 1e9, limit, "\(method) \(way): too slow")
                XCTAssertEqual(try pool.map(Square(), 0..<20), (0..<20).map { $0 * $0 }, "\(method) \(way)")
                pool.close()
                try pool.join()
            }
        }
    }

    func testPrivateFunctionTypeIsRejectedAtSubmit() throws {
        try Pool.with(processes: 1) { pool in
            XCTAssertThrowsError(try pool.map(HiddenFunction(), [1])) { error in
                XCTAssertEqual((error as? PoolError)?.code, .unresolvableFunction)
                XCTAssertTrue("\(error)".contains("internal or public"), "\(error)")
            }
        }
    }

    func testBadArgumentsAreClearErrors() throws {
        XCTAssertThrowsError(try Pool(processes: 0)) { XCTAssertEqual(($0 as? PoolError)?.code, .invalidArgument) }
        XCTAssertThrowsError(try Pool(processes: 1, maxTasksPerChild: 0)) {
            XCTAssertEqual(($0 as? PoolError)?.code, .invalidArgument)
        }
        try Pool.with(processes: 1) { pool in
            XCTAssertThrowsError(try pool.map(Square(), [1], chunkSize: 0)) {
                XCTAssertEqual(($0 as? PoolError)?.code, .invalidArgument)
            }
            XCTAssertThrowsError(try pool.imap(Square(), [1], chunkSize: -1)) {
                XCTAssertEqual(($0 as? PoolError)?.code, .invalidArgument)
            }
        }
    }

    func testClosedAndTerminatedPools() throws {
        let pool = try Pool(processes: 2)
        let pending = try pool.mapAsync(Sleep(seconds: 2), [1, 2, 3, 4])
        pool.terminate()
        XCTAssertThrowsError(try pending.get(timeout: 5)) { error in
            XCTAssertEqual((error as? PoolError)?.code, .terminated, "\(error)")
        }
        try pool.join()
        XCTAssertThrowsError(try pool.map(Square(), [1])) { XCTAssertEqual(($0 as? PoolError)?.code, .closed) }

        let closing = try Pool(processes: 2)
        let result = try closing.mapAsync(Sleep(seconds: 0.05), [1, 2, 3])
        closing.close()
        XCTAssertThrowsError(try closing.apply(Square(), 3)) { XCTAssertEqual(($0 as? PoolError)?.code, .closed) }
        try closing.join()
        XCTAssertEqual(try result.get(timeout: 0), [1, 2, 3], "close() lets submitted work finish")
    }

    func testGetTimesOut() throws {
        try Pool.with(processes: 1) { pool in
            let result = try pool.applyAsync(Sleep(seconds: 0.5), 1)
            XCTAssertFalse(result.isReady)
            XCTAssertThrowsError(try result.get(timeout: 0.01)) { XCTAssertTrue($0 is TimeoutError) }
            XCTAssertFalse(result.wait(timeout: 0.01))
            XCTAssertEqual(try result.get(timeout: 10), 1)
            XCTAssertTrue(result.isReady)
            XCTAssertTrue(result.isSuccessful)
        }
    }
}
