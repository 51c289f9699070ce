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

/// A block that /dev/shm has no room for is refused when it is created, instead of the first
/// write to it killing the program with SIGBUS (Python's `SharedMemory` has that crash). Run in
/// a copy of this test binary whose /dev/shm is a 2 MiB tmpfs (`unshare -m`, as root).
final class FullDevShmTests: XCTestCase {
    static let innerVariable = "SWIFTMP_TEST_TINY_DEV_SHM"

    func testABlockWithoutRoomIsRefusedNotABusError() throws {
        if getenv(Self.innerVariable) != nil {
            // Inside: /dev/shm holds 2 MiB.
            do {
                let block = try SharedMemory(create: true, size: 8 << 20)
                memset(block.bytes.baseAddress!, 1, block.size) // SIGBUS before the fix
                XCTFail("an 8 MiB block was made in a 2 MiB /dev/shm")
            } catch {
                XCTAssertEqual(error.code, .systemCall, "\(error)")
                XCTAssertTrue("\(error)".contains("No space left on device"), "\(error)")
            }
            // One that fits still works.
            let small = try SharedMemory(create: true, size: 1 << 20)
            memset(small.bytes.baseAddress!, 1, small.size)
            small.close()
            return
        }
        guard getuid() == 0, access("/usr/bin/unshare", X_OK) == 0 else {
            throw XCTSkip("needs root and unshare(1) to give a copy of this test its own small /dev/shm")
        }
        let test = Foundation.Process()
        test.executableURL = URL(fileURLWithPath: "/usr/bin/unshare")
        test.arguments = [
            "-m", "sh", "-c", "mount -t tmpfs -o size=2m tmpfs /dev/shm && exec \"$0\" \"$1\"",
            URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().path,
            "MultiprocessingTests.FullDevShmTests/testABlockWithoutRoomIsRefusedNotABusError",
        ]
        test.environment = ProcessInfo.processInfo.environment.merging([Self.innerVariable: "1"]) { $1 }
        let output = Foundation.Pipe()
        test.standardOutput = output
        test.standardError = output
        try test.run()
        let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        test.waitUntilExit()
        if test.terminationReason == .exit, test.terminationStatus != 0, text.contains("mount:") {
            throw XCTSkip("cannot mount a tmpfs in a new mount namespace here: \(text)")
        }
        XCTAssertEqual(test.terminationReason, .exit, "killed by signal \(test.terminationStatus) (SIGBUS is 7):\n\(text)")
        XCTAssertEqual(test.terminationStatus, 0, text)
        XCTAssertTrue(text.contains("Executed 1 test, with 0 failures"), text)
    }
}

/// Making many blocks does not read every record each time: the automatic sweep for blocks of
/// dead creators runs at most once a second (1 000 blocks took 14 s when each creation swept).
final class SharedMemorySweepTests: XCTestCase {
    func testCreatingManyBlocksSweepsAtMostOnceASecond() throws {
        let start = monotonicNanoseconds()
        let before = SharedMemoryTracker.sweeps.load(ordering: .relaxed)
        var blocks: [SharedMemory] = []
        defer { for block in blocks { block.close() } }
        for _ in 0..<200 { blocks.append(try SharedMemory(create: true, size: 4096)) }
        let seconds = Double(monotonicNanoseconds() - start) / 1e9
        let swept = SharedMemoryTracker.sweeps.load(ordering: .relaxed) - before
        XCTAssertLessThanOrEqual(swept, Int(seconds) + 1, "\(swept) sweeps in \(seconds) s for 200 blocks")
    }
}
