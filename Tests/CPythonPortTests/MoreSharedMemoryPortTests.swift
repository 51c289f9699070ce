// More ports of CPython's shared-memory tests (Lib/test/_test_multiprocessing.py:
// _TestSharedMemory, TestResourceTracker), beyond SharedMemoryPortTests; children on every
// start method.
//
// CPython test                                                → Swift test (MoreSharedMemoryPortTests)
// _TestSharedMemory.test_shared_memory_name_with_embedded_null → testNameWithAnEmbeddedNullIsRefused
// TestResourceTracker.test_too_long_name_resource             → testTooLongNameIsRefused
// _TestSharedMemory.test_shared_memory_pickle_unpickle        → testHandleRoundTripsThroughAnEncoder
// _TestSharedMemory.test_shared_memory_pickle_unpickle_dead_object
//                                                             → testDecodingAHandleOfARemovedBlockThrowsNotFound
// _TestSharedMemory.test_shared_memory_untracking /
//   test_shared_memory_tracking                               → testAChildThatOpensABlockByNameLeavesIt (documented
//                                                               difference for the tracking half)
// _TestSharedMemory.test_shared_memory_basics (also_sms.close()
//   leaves the block; the creator's unlink)                    → testCloseOfTheTrackedCreatorUnlinksOthersOnlyUnmap
//                                                               (documented difference)
// _TestSharedMemory.test_shared_memory_across_processes
//   (the handle in pool tasks instead of a Process)            → testHandleInPoolTasks
//
// Not applicable: the SharedMemoryManager and ShareableList cases (not in the API — a gap),
// test_shared_memory_SharedMemoryServer_ignores_sigint (no server), the resource tracker's own
// process (there is none: SharedMemoryTracker keeps records in /dev/shm).
//
// Differences from Python, checked as documented (SharedMemory's "Lifetime"): a tracked
// block is unlinked when its creator closes it (Python: only by `unlink()`, or by the
// tracker at the creator's exit); a handle that opened a block by name never owns it, with
// or without `track` (Python's `track=True` in a second process makes its tracker unlink the
// block when that process ends).

import Foundation
import Multiprocessing
import XCTest

#if canImport(Glibc)
import Glibc
#endif

/// Opens a block by name (with `track` as given), checks its first bytes, and closes it
/// (CPython's `SharedMemory(create=False, name=…, track=…)` subprocess).
struct Port3OpenByNameAndClose: ParallelFunction {
    var name: String
    var track: Bool
    var expected: [UInt8]
    func callAsFunction(_: Void) throws {
        let block = try SharedMemory(name: name, track: track)
        try require(Array(block.bytes[0..<expected.count]) == expected, "bytes \(Array(block.bytes[0..<expected.count]))")
        block.close()
    }
}

/// Writes `input + 1` at offset `input` of the block (a task holding the handle).
struct Port3WriteIntoBlock: ParallelFunction {
    var block: SharedMemory
    func callAsFunction(_ input: Int) -> Int32 {
        block.bytes[input] = UInt8(input + 1)
        return getpid()
    }
}

final class MoreSharedMemoryPortTests: PortTestCase {
    private func uniqueName(_ tag: String) -> String { "cpyport3_\(tag)_\(getpid())_\(UInt32.random(in: 0...UInt32.max))" }

    private func isInvalidName(_ error: any Error) -> Bool { (error as? SharedMemoryError)?.code == .invalidName }

    /// test_shared_memory_name_with_embedded_null: a name with a NUL in it is refused
    /// (Python: ValueError), to open and to create; the block whose name it extends is left
    /// alone.
    func testNameWithAnEmbeddedNullIsRefused() throws {
        let name = uniqueName("null")
        let block = try SharedMemory(name: name, create: true, size: 512)
        defer { block.close() }
        XCTAssertThrowsError(try SharedMemory(name: name + "\0a", create: false, size: 512)) {
            XCTAssertTrue(isInvalidName($0), "\($0)")
        }
        XCTAssertThrowsError(try SharedMemory(name: name + "\0a", create: true, size: 512)) {
            XCTAssertTrue(isInvalidName($0), "\($0)")
        }
        XCTAssertNoThrow(try SharedMemory(name: name).close(), "the block itself is still there")
    }

    /// TestResourceTracker.test_too_long_name_resource: a name too long for the system is
    /// refused (Python: ValueError), to create and to open, and nothing is created.
    func testTooLongNameIsRefused() throws {
        let long = String(repeating: "a", count: 600)
        XCTAssertThrowsError(try SharedMemory(name: long, create: true, size: 16)) { XCTAssertTrue(isInvalidName($0), "\($0)") }
        XCTAssertThrowsError(try SharedMemory(name: long)) { XCTAssertTrue(isInvalidName($0), "\($0)") }
        XCTAssertFalse(FileManager.default.fileExists(atPath: "/dev/shm/" + String(long.prefix(255))))
    }

    /// test_shared_memory_pickle_unpickle: a handle encoded and decoded (here with JSON) is
    /// the same block: same name, and writes through either are seen through the other.
    func testHandleRoundTripsThroughAnEncoder() throws {
        let block = try SharedMemory(create: true, size: 512)
        defer { block.close() }
        block.bytes.copyBytes(from: Array("pickle".utf8))
        let encoded = try JSONEncoder().encode(block)
        let copy = try JSONDecoder().decode(SharedMemory.self, from: encoded)
        XCTAssertEqual(copy.name, block.name)
        XCTAssertEqual(copy.size, block.size)
        XCTAssertEqual(Array(copy.bytes[0..<6]), Array("pickle".utf8))
        block.bytes.copyBytes(from: Array("newval".utf8))
        XCTAssertEqual(Array(copy.bytes[0..<6]), Array("newval".utf8))
        copy.bytes.copyBytes(from: Array("oldval".utf8))
        XCTAssertEqual(Array(block.bytes[0..<6]), Array("oldval".utf8))
        copy.close()
        XCTAssertEqual(Array(block.bytes[0..<6]), Array("oldval".utf8), "closing the copy left the creator's mapping")
    }

    /// test_shared_memory_pickle_unpickle_dead_object: decoding the handle of a block that was
    /// closed and unlinked throws FileNotFoundError (`.notFound`).
    func testDecodingAHandleOfARemovedBlockThrowsNotFound() throws {
        let block = try SharedMemory(create: true, size: 512, track: false)
        block.bytes.copyBytes(from: Array("pickle".utf8))
        let encoded = try JSONEncoder().encode(block)
        block.close()
        try block.unlink()
        XCTAssertThrowsError(try JSONDecoder().decode(SharedMemory.self, from: encoded)) {
            XCTAssertEqual(($0 as? SharedMemoryError)?.code, .notFound, "\($0)")
        }
    }

    /// test_shared_memory_untracking and test_shared_memory_tracking: a child that opens the
    /// block by name (track false, then true) and ends leaves it in place, with its bytes.
    /// (Python's tracking case expects the block removed when that child ends: documented
    /// difference — only the creator owns a block.)
    func testAChildThatOpensABlockByNameLeavesIt() throws {
        try forEachMethod { method in
            let block = try SharedMemory(create: true, size: 10)
            defer { block.close() }
            block.bytes.copyBytes(from: [1, 2, 3])
            for track in [false, true] {
                let p = try started(Port3OpenByNameAndClose(name: block.name, track: track, expected: [1, 2, 3]), method)
                try joinOrKill(p)
                XCTAssertEqual(p.exitCode, 0, "\(method) track \(track)")
                XCTAssertNoThrow(try SharedMemory(name: block.name).close(), "\(method) track \(track): the child removed the block")
            }
        }
    }

    /// test_shared_memory_basics' lifetime: a second handle's close only unmaps; the
    /// creator's close (tracked) unlinks the block, so a later unlink finds nothing (Python:
    /// the creator's close keeps the name until unlink); an untracked creator's close keeps
    /// it until unlink.
    func testCloseOfTheTrackedCreatorUnlinksOthersOnlyUnmap() throws {
        let tracked = try SharedMemory(name: uniqueName("tracked"), create: true, size: 64)
        let other = try SharedMemory(name: tracked.name)
        other.close()
        XCTAssertNoThrow(try SharedMemory(name: tracked.name).close(), "a second handle's close removed the block")
        tracked.close()
        XCTAssertThrowsError(try SharedMemory(name: tracked.name)) { XCTAssertEqual(($0 as? SharedMemoryError)?.code, .notFound, "\($0)") }
        XCTAssertThrowsError(try tracked.unlink()) { XCTAssertEqual(($0 as? SharedMemoryError)?.code, .notFound, "\($0)") }

        let untracked = try SharedMemory(name: uniqueName("untracked"), create: true, size: 64, track: false)
        untracked.close()
        XCTAssertNoThrow(try SharedMemory(name: untracked.name).close(), "an untracked block went with its creator's close")
        XCTAssertNoThrow(try untracked.unlink())
        XCTAssertThrowsError(try SharedMemory(name: untracked.name)) { XCTAssertEqual(($0 as? SharedMemoryError)?.code, .notFound, "\($0)") }
    }

    /// test_shared_memory_across_processes, with the handle in a pool function: every task
    /// writes its byte through the block it was given; the parent sees all of them, and the
    /// block outlives the pool.
    func testHandleInPoolTasks() throws {
        try forEachMethod { method in
            let block = try SharedMemory(create: true, size: 64)
            defer { block.close() }
            let pids = try Pool.with(processes: 2, startMethod: method) { pool in
                try pool.map(Port3WriteIntoBlock(block: block), Array(0..<64), chunkSize: 1)
            }
            XCTAssertFalse(pids.contains(getpid()))
            XCTAssertEqual(Array(block.bytes[0..<64]), (0..<64).map { UInt8($0 + 1) }, "\(method)")
            XCTAssertNoThrow(try SharedMemory(name: block.name).close(), "\(method): a worker removed the block")
        }
    }
}
