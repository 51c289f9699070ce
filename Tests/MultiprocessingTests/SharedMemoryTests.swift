import XCTest

@testable import Multiprocessing

#if canImport(Glibc)
import Glibc
#endif

final class SharedMemoryTests: XCTestCase {
    private func exists(_ name: String) -> Bool { access("/dev/shm/" + name, F_OK) == 0 }

    func testCreateAttachCloseUnlink() throws {
        let block = try SharedMemory(create: true, size: 10_000)
        XCTAssertTrue(block.name.hasPrefix("psm_"))
        XCTAssertEqual(block.size, 10_000)
        var info = stat()
        XCTAssertEqual(stat("/dev/shm/" + block.name, &info), 0)
        XCTAssertEqual(info.st_mode & 0o777, 0o600)
        block.bytes.storeBytes(of: 1234, toByteOffset: 16, as: Int.self)

        let attached = try SharedMemory(name: block.name)
        XCTAssertEqual(attached.size, 10_000)
        XCTAssertEqual(attached.bytes.load(fromByteOffset: 16, as: Int.self), 1234)
        attached.close()
        XCTAssertTrue(exists(block.name), "an attached handle's close must not unlink")
        block.close()
        block.close()
        XCTAssertFalse(exists(block.name), "the tracked creator's close unlinks")
        XCTAssertThrowsError(try SharedMemory(name: block.name)) {
            XCTAssertEqual(($0 as? SharedMemoryError)?.code, .notFound)
        }
    }

    func testErrorsAndUntrackedBlocks() throws {
        for bad in ["", "a/b", ".", "..", String(repeating: "x", count: 300), "swiftmp-tracker-1"] {
            XCTAssertThrowsError(try SharedMemory(name: bad, create: true, size: 8), bad) {
                XCTAssertEqual(($0 as? SharedMemoryError)?.code, .invalidName, bad)
            }
        }
        XCTAssertThrowsError(try SharedMemory(create: true, size: 0)) {
            XCTAssertEqual(($0 as? SharedMemoryError)?.code, .invalidSize)
        }
        let name = "swiftmp-test-\(getpid())-untracked"
        do {
            let block = try SharedMemory(name: name, create: true, size: 64, track: false)
            XCTAssertThrowsError(try SharedMemory(name: name, create: true, size: 64)) {
                XCTAssertEqual(($0 as? SharedMemoryError)?.code, .exists)
            }
            block.close()
        }
        XCTAssertTrue(exists(name), "an untracked block outlives its handles")
        let again = try SharedMemory(name: name)
        try again.unlink()
        XCTAssertFalse(exists(name))
        XCTAssertThrowsError(try again.unlink()) {
            XCTAssertEqual(($0 as? SharedMemoryError)?.code, .notFound)
        }
    }

    func testDeinitOfLastCreatorHandleUnlinks() throws {
        var name = ""
        do {
            let block = try SharedMemory(create: true, size: 32)
            name = block.name
            XCTAssertTrue(exists(name))
        }
        XCTAssertFalse(exists(name))
    }

    /// A worker opens the block by name (the handle travels as its name).
    func testWorkerAttachesByName() throws {
        try Pool.with(processes: 1, startMethod: .spawn) { pool in
            let block = try SharedMemory(create: true, size: 64)
            block.bytes.storeBytes(of: 21, toByteOffset: 0, as: Int.self)
            XCTAssertEqual(try pool.apply(DoubleInNamedBlock(block: block), 0), 21)
            XCTAssertEqual(block.bytes.load(fromByteOffset: 8, as: Int.self), 42)
            XCTAssertTrue(exists(block.name), "the worker's handle must not unlink the block")
        }
    }

    /// A creator SIGKILLed before closing its block: the tracker removes the block.
    func testBlockOfKilledCreatorIsRemoved() throws {
        let name = "swiftmp-test-\(getpid())-orphan"
        try Pool.with(processes: 1, startMethod: .fork) { pool in
            XCTAssertThrowsError(try pool.apply(CreateBlockAndDie(), name)) {
                XCTAssertTrue($0 is WorkerDied, "\($0)")
            }
        }
        XCTAssertTrue(exists(name), "the killed creator could not unlink its block")
        // Another process of this user may sweep it first; either way it must go.
        for _ in 0..<50 where exists(name) {
            SharedMemory.removeOrphans()
            if exists(name) { usleep(20_000) } // the worker may not be reaped yet
        }
        XCTAssertFalse(exists(name), "the tracker did not remove the block of a dead creator")
        XCTAssertFalse(access(SharedMemoryTracker.directory + "/" + name, F_OK) == 0, "its record stayed")
    }
}
