// Differences from Python found by the fifth round of ports of CPython's
// Lib/test/_test_multiprocessing.py: each test states what should be true and what Python
// does. It failed before its fix (SharedMemoryMapping unlinks the name only while it still
// names the block it created) and now guards it.
//
// CPython test                                           → Swift test (Port5DifferenceTests)
// _TestSharedMemory.test_shared_memory_basics /
//   test_shared_memory_recreate (a name unlinked and
//   created again; the first creator's close())          → testClosingAStaleCreatorHandleLeavesANewBlockOfTheSameName

import Foundation
import Multiprocessing
import XCTest

#if canImport(Glibc)
import Glibc
#endif

final class Port5DifferenceTests: PortTestCase {
    /// A tracked block is unlinked by another handle (`unlink()`, which any process may call),
    /// and a new block is created under the same name. The first creator's `close()` must
    /// leave the new block alone: its name now means another block.
    ///
    /// Python: `close()` only unmaps (and its resource tracker unregisters a name on
    /// `unlink()`), so the new block stays openable by name. Here the first creator's
    /// `close()` calls `shm_unlink` on the name, which removes the NEW block (and its tracker
    /// record): opening it by name then throws `.notFound` while its creator still uses it.
    func testClosingAStaleCreatorHandleLeavesANewBlockOfTheSameName() throws {
        let name = "port5_recreated_\(getpid())"
        let thread = TestThread {
            let first = try SharedMemory(name: name, create: true, size: 64)
            let other = try SharedMemory(name: name)
            try other.unlink()
            other.close()
            let second = try SharedMemory(name: name, create: true, size: 128)
            defer {
                second.close()
                _ = try? SharedMemory(name: name).unlink()
            }
            second.bytes.storeBytes(of: 42, as: Int.self)
            first.close()
            do {
                let again = try SharedMemory(name: name)
                XCTAssertEqual(again.size, 128)
                XCTAssertEqual(again.bytes.load(as: Int.self), 42)
                again.close()
            } catch {
                XCTFail("the block created second is gone after the first creator's close(): \(error)")
            }
        }
        XCTAssertTrue(try thread.wait(5), "hung")
    }
}
