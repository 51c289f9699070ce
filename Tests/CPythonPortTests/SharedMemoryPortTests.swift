// Ports of CPython's shared-memory tests (Lib/test/_test_multiprocessing.py: _TestSharedMemory)
// and more of _TestArray / _TestValue, the child on every start method.
//
// CPython test                                                   → Swift test (SharedMemoryPortTests)
// _TestSharedMemory.test_shared_memory_basics                    → testSharedMemoryBasics
// _TestSharedMemory.test_invalid_shared_memory_cration           → testInvalidSharedMemoryCreation
// _TestSharedMemory.test_shared_memory_basics (double unlink)    → testUnlinkTwiceThrowsNotFound
// _TestSharedMemory.test_shared_memory_across_processes          → testSharedMemoryAcrossProcesses
// _TestSharedMemory.test_shared_memory_cleaned_after_process_termination
//                                                                → testBlockOfATerminatedCreatorIsRemoved
// _TestArray.test_array (slices, arr[:])                         → testArraySlicesAndSnapshots
// _TestValue.test_getobj_getlock (get_lock() by many processes)  → testIncrementsUnderTheLockFromManyChildren
//
// Not applicable: test_shared_memory_recreate (no _make_filename to mock), the repr checks,
// OptionalAttachSharedMemory (no O_CREAT-or-attach mode), SharedMemoryManager and ShareableList
// (not in the API — a gap).
//
// Differences from Python, checked as documented: ValueError is `.invalidSize` /
// `.invalidName`, FileExistsError `.exists`, FileNotFoundError `.notFound`. A block whose
// creator died is removed when a process next creates or opens one (no tracker process).

import Dispatch
import Multiprocessing
import XCTest

#if canImport(Glibc)
import Glibc
#endif

/// CPython's `_attach_existing_shmem_then_write`: opens the block by name (or uses the
/// handle it was given) and writes `bytes` at its start.
struct AttachThenWrite: ParallelFunction {
    var name: String?
    var block: SharedMemory?
    var bytes: [UInt8]
    func callAsFunction(_: Void) throws {
        let memory = try block ?? SharedMemory(name: name!)
        for (i, byte) in bytes.enumerated() { memory.bytes[i] = byte }
        memory.close()
    }
}

/// Creates a tracked block, sends its name, and sleeps (CPython's subprocess in
/// test_shared_memory_cleaned_after_process_termination).
struct CreateBlockAndSleep: ParallelFunction {
    var report: Queue<String>
    func callAsFunction(_: Void) throws {
        let block = try SharedMemory(create: true, size: 10)
        try report.put(block.name)
        sleep(100)
        withExtendedLifetime(block) {}
    }
}

/// Adds 1 to the value 200 times under its lock, and to the array's first element under
/// the array's lock.
struct IncrementUnderLock: ParallelFunction {
    var value: SharedValue<Int64>
    var array: SharedArray<Int64>
    func callAsFunction(_: Void) {
        for _ in 0..<200 {
            value.withLock { $0 += 1 }
            array.withLock { $0[0] += 1 }
        }
    }
}

/// Writes -1 into the slice 2..<5 of the array under its lock.
struct OverwriteSlice: ParallelFunction {
    var array: SharedArray<Int32>
    func callAsFunction(_: Void) {
        array.withLock { buffer in for i in 2..<5 { buffer[i] = -1 } }
    }
}

final class SharedMemoryPortTests: PortTestCase {
    private func uniqueName(_ tag: String) -> String { "cpyport_\(tag)_\(getpid())_\(UInt32.random(in: 0...UInt32.max))" }

    /// test_shared_memory_basics: name and size, bytes written are seen by a second handle
    /// opened by name, a size given when opening is ignored, creating an existing name
    /// throws `.exists`, opening a missing one `.notFound`, opening without a name
    /// `.invalidName`.
    func testSharedMemoryBasics() throws {
        let name = uniqueName("basics")
        let block = try SharedMemory(name: name, create: true, size: 512)
        defer { block.close() }
        XCTAssertEqual(block.name, name)
        XCTAssertGreaterThanOrEqual(block.size, 512)
        XCTAssertGreaterThanOrEqual(block.bytes.count, block.size)
        block.bytes[0] = 42
        XCTAssertEqual(block.bytes[0], 42)
        let also = try SharedMemory(name: name)
        XCTAssertEqual(also.bytes[0], 42)
        XCTAssertEqual(also.size, block.size)
        also.close()
        let same = try SharedMemory(name: name, size: 20 * block.size)
        XCTAssertLessThan(same.size, 20 * block.size, "the size is ignored when opening")
        same.close()
        XCTAssertThrowsError(try SharedMemory(create: true, size: -2)) {
            XCTAssertEqual(($0 as? SharedMemoryError)?.code, .invalidSize, "\($0)")
        }
        XCTAssertThrowsError(try SharedMemory(create: false)) {
            XCTAssertEqual(($0 as? SharedMemoryError)?.code, .invalidName, "\($0)")
        }
        XCTAssertThrowsError(try SharedMemory(name: name, create: true, size: 512)) {
            XCTAssertEqual(($0 as? SharedMemoryError)?.code, .exists, "\($0)")
        }
        XCTAssertThrowsError(try SharedMemory(name: uniqueName("notthere"))) {
            XCTAssertEqual(($0 as? SharedMemoryError)?.code, .notFound, "\($0)")
        }
        XCTAssertEqual(block.bytes[0], 42, "the failed creation left the block alone")
    }

    /// test_invalid_shared_memory_cration: a negative size, size 0 and no size are refused.
    func testInvalidSharedMemoryCreation() throws {
        for size in [-1, 0, Int.min] {
            XCTAssertThrowsError(try SharedMemory(create: true, size: size)) {
                XCTAssertEqual(($0 as? SharedMemoryError)?.code, .invalidSize, "size \(size): \($0)")
            }
        }
        XCTAssertThrowsError(try SharedMemory(create: true)) {
            XCTAssertEqual(($0 as? SharedMemoryError)?.code, .invalidSize, "\($0)")
        }
    }

    /// test_shared_memory_basics' double unlink: a second handle unlinks the name; the
    /// creator's own unlink then throws FileNotFoundError (`.notFound`); both close fine.
    func testUnlinkTwiceThrowsNotFound() throws {
        let name = uniqueName("dblunlink")
        let first = try SharedMemory(name: name, create: true, size: 5000, track: false)
        XCTAssertGreaterThanOrEqual(first.size, 5000)
        let second = try SharedMemory(name: name)
        try second.unlink()
        second.close()
        XCTAssertThrowsError(try first.unlink()) { XCTAssertEqual(($0 as? SharedMemoryError)?.code, .notFound, "\($0)") }
        first.close()
        XCTAssertThrowsError(try SharedMemory(name: name)) {
            XCTAssertEqual(($0 as? SharedMemoryError)?.code, .notFound, "\($0)")
        }
    }

    /// test_shared_memory_across_processes: a child opens the block by name and writes; then
    /// a child given the handle itself writes; the parent sees both writes.
    func testSharedMemoryAcrossProcesses() throws {
        try forEachMethod { method in
            let block = try SharedMemory(create: true, size: 512)
            defer { block.close() }
            let byName = try started(AttachThenWrite(name: block.name, block: nil, bytes: Array("howdy".utf8)), method)
            try joinOrKill(byName)
            XCTAssertEqual(byName.exitCode, 0, "\(method)")
            XCTAssertEqual(Array(block.bytes[0..<5]), Array("howdy".utf8), "\(method)")
            let byHandle = try started(AttachThenWrite(name: nil, block: block, bytes: Array("HELLO".utf8)), method)
            try joinOrKill(byHandle)
            XCTAssertEqual(byHandle.exitCode, 0, "\(method)")
            XCTAssertEqual(Array(block.bytes[0..<5]), Array("HELLO".utf8), "\(method)")
            XCTAssertNoThrow(try SharedMemory(name: block.name).close(), "\(method): the child's close unlinked the block")
        }
    }

    /// test_shared_memory_cleaned_after_process_termination: a child creates a block and is
    /// terminated; the block does not outlive it (opening it soon fails with `.notFound`).
    func testBlockOfATerminatedCreatorIsRemoved() throws {
        try forEachMethod { method in
            let report = try Queue<String>()
            let p = try started(CreateBlockAndSleep(report: report), method)
            let name = try report.get(timeout: 30)
            try p.terminate()
            try joinOrKill(p)
            XCTAssertEqual(p.exitCode, -SIGTERM)
            let gone = eventually(within: 10) {
                do {
                    try SharedMemory(name: name).close()
                    return false
                } catch {
                    return (error as? SharedMemoryError)?.code == .notFound
                }
            }
            XCTAssertTrue(gone, "\(method): the block \(name) of a terminated creator was leaked")
        }
    }

    /// test_array's slices: a slice and `snapshot()` read the shared elements; a child's
    /// write to a slice is seen here; a raw array too.
    func testArraySlicesAndSnapshots() throws {
        try forEachMethod { method in
            let array = try SharedArray<Int32>((0..<10).map(Int32.init))
            XCTAssertEqual(Array(array[2..<5]), [2, 3, 4])
            XCTAssertEqual(array.snapshot(), (0..<10).map(Int32.init))
            XCTAssertEqual(Array(array), array.snapshot())
            let p = try started(OverwriteSlice(array: array), method)
            try joinOrKill(p)
            XCTAssertEqual(p.exitCode, 0)
            XCTAssertEqual(array.snapshot(), [0, 1, -1, -1, -1, 5, 6, 7, 8, 9], "\(method)")
            XCTAssertEqual(Array(array[1..<6]), [1, -1, -1, -1, 5])
            XCTAssertEqual(array.count, 10)
            let raw = try RawSharedArray<Int32>(count: 4)
            XCTAssertEqual(Array(raw), [0, 0, 0, 0])
            raw[1] = 9
            XCTAssertEqual(Array(raw[1..<3]), [9, 0])
        }
    }

    /// get_lock() used by several processes at once: 4 children add 200 each under the
    /// value's and the array's lock; nothing is lost.
    func testIncrementsUnderTheLockFromManyChildren() throws {
        try forEachMethod { method in
            let value = try SharedValue<Int64>(0)
            let array = try SharedArray<Int64>(repeating: 0, count: 3)
            let children = try (0..<4).map { _ in try started(IncrementUnderLock(value: value, array: array), method) }
            for p in children { try joinOrKill(p) }
            XCTAssertEqual(children.map(\.exitCode), [0, 0, 0, 0])
            XCTAssertEqual(value.value, 800, "\(method)")
            XCTAssertEqual(array.snapshot(), [800, 0, 0], "\(method)")
        }
    }
}
