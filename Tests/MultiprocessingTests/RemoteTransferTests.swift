import Wire
import XCTest

@testable import Multiprocessing

#if canImport(Glibc)
import Glibc
#endif

/// Kills its worker once it has its (large) input.
struct CrashWithLargeInput: ParallelFunction {
    func callAsFunction(_ input: [UInt8]) -> Int {
        if input.count > 1 << 20 { kill(getpid(), SIGKILL) }
        return input.count
    }
}

/// Large messages between a pool and its workers read with process_vm_readv from the
/// sender's memory (`RemoteTransfer`), and the memfd when that is not permitted.
final class RemoteTransferTests: XCTestCase {
    override func tearDown() {
        RemoteTransfer.probeFailsForTesting = false
        RemoteTransfer.awaitSenderExitForTesting = false
        OutOfBand.exitAfterSendingDescriptor = false
        super.tearDown()
    }

    func checkResult(_ bytes: [UInt8], count: Int, _ what: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(bytes.count, count, what, file: file, line: line)
        let wrong = Patterned.firstWrongBlock(bytes, seed: 2)
        XCTAssertNil(wrong, "\(what): the result's block at \(wrong ?? -1) is wrong", file: file, line: line)
    }

    /// A large argument is read by the worker from the pool's memory and a large result by the
    /// pool from the worker's, every byte checked, with each start method; no memfd either
    /// way; then several at once on two workers, and a small one after them.
    func testLargeMessagesAreReadFromTheSenderOnEveryStartMethod() throws {
        let count = (24 << 20) + 4099
        let input = Patterned.make(count, seed: 1)
        for method in [StartMethod.fork, .spawn, .forkserver] {
            try Pool.with(processes: 2, startMethod: method) { pool in
                _ = try pool.apply(CheckAndMakeBytes(resultSize: 1), [1], timeout: 60)
                // Both workers have probed the pool's memory (at their start; under load the
                // second was once still starting when the map below sent it a large input, which
                // then took the memfd, as it should).
                let local = try XCTUnwrap(pool.engine.backend as? LocalBackend)
                let end = monotonicNanoseconds() + 20_000_000_000
                while !(0..<2).allSatisfy(local.hasProbedRemoteTransfer) && monotonicNanoseconds() < end { usleep(1_000) }
                XCTAssertTrue((0..<2).allSatisfy(local.hasProbedRemoteTransfer), "\(method): the workers did not start")
                let received = RemoteTransfer.receivedForTesting
                let report = try pool.apply(CheckAndMakeBytes(resultSize: count - 17), input, timeout: 60)
                XCTAssertEqual(report.count, count, "\(method)")
                XCTAssertNil(report.firstWrong, "\(method): the input's block at \(report.firstWrong ?? -1) arrived wrong")
                XCTAssertTrue(report.readRemote, "\(method): the worker did not read the input from the pool's memory")
                XCTAssertFalse(report.mappedHere, "\(method): the input came in a memfd")
                checkResult(report.bytes, count: count - 17, "\(method)")
                XCTAssertEqual(RemoteTransfer.receivedForTesting, received + 1, "\(method): the result was not read from the worker")

                let sizes = [(3 << 20) + 1, 5 << 20, (2 << 20) + 77, 4 << 20]
                let reports = try pool.map(
                    CheckAndMakeBytes(resultSize: 6 << 20), sizes.map { Patterned.make($0, seed: 1) }, chunkSize: 1,
                    timeout: 60)
                for (size, report) in zip(sizes, reports) {
                    XCTAssertEqual(report.count, size, "\(method)")
                    XCTAssertNil(report.firstWrong, "\(method)")
                    XCTAssertTrue(report.readRemote, "\(method)")
                    checkResult(report.bytes, count: 6 << 20, "\(method)")
                }
                let small = try pool.apply(CheckAndMakeBytes(resultSize: 10), Patterned.make(1000, seed: 1), timeout: 60)
                XCTAssertNil(small.firstWrong, "\(method)")
                XCTAssertFalse(small.readRemote, "\(method): a 1000-byte input was read remote")
            }
            XCTAssertEqual(outOfBandTraces(), [], "\(method)")
            XCTAssertTrue(WireRemoteRanges.isEmpty, "\(method): a remote message stays registered in the pool's process")
        }
    }

    /// When process_vm_readv is not permitted (the probes fail, as under Yama's ptrace_scope),
    /// large messages take the memfd both ways, intact.
    func testLargeMessagesTakeTheMemfdWhenTheSenderCannotBeRead() throws {
        RemoteTransfer.probeFailsForTesting = true
        for method in [StartMethod.fork, .spawn] {
            try Pool.with(processes: 1, startMethod: method) { pool in
                _ = try pool.apply(CheckAndMakeBytes(resultSize: 1), [1], timeout: 60)
                let received = RemoteTransfer.receivedForTesting
                let count = (9 << 20) + 5
                let report = try pool.apply(CheckAndMakeBytes(resultSize: count), Patterned.make(count, seed: 1), timeout: 60)
                XCTAssertNil(report.firstWrong, "\(method)")
                XCTAssertFalse(report.readRemote, "\(method): the input was read remote although not permitted")
                XCTAssertTrue(report.mappedHere, "\(method): the input did not come in a memfd")
                checkResult(report.bytes, count: count, "\(method)")
                XCTAssertEqual(RemoteTransfer.receivedForTesting, received, "\(method): the result was read remote")
            }
        }
    }

    /// A worker that ends after sending a large result and before the pool read it: the call
    /// fails with WorkerDied (nothing hangs), and the replacement worker moves large values.
    func testWorkerEndingBeforeItsLargeResultIsReadReportsWorkerDied() throws {
        try Pool.with(processes: 1, startMethod: .fork) { pool in
            _ = try pool.apply(CheckAndMakeBytes(resultSize: 1), [1], timeout: 60)
            RemoteTransfer.awaitSenderExitForTesting = true
            XCTAssertThrowsError(try pool.apply(ExitAfterLargeResultDescriptor(), 16 << 20, timeout: 60)) { error in
                XCTAssertTrue(error is WorkerDied, "\(error)")
            }
            RemoteTransfer.awaitSenderExitForTesting = false
            let report = try pool.apply(CheckAndMakeBytes(resultSize: 3 << 20), Patterned.make(2 << 20, seed: 1), timeout: 60)
            XCTAssertNil(report.firstWrong)
            XCTAssertTrue(report.readRemote)
            checkResult(report.bytes, count: 3 << 20, "after the replacement")
        }
        XCTAssertTrue(WireRemoteRanges.isEmpty)
    }

    /// The pool keeps a large argument only until its worker has read it, or dies: the caller's
    /// memory goes down by the argument once it drops it, after a call that succeeded and after
    /// one whose worker was killed holding it.
    func testPoolLetsGoOfALargeArgumentOnceReadOrWhenTheWorkerDies() throws {
        let count = 160 << 20
        try Pool.with(processes: 1, startMethod: .fork) { pool in
            _ = try pool.apply(TakeBytes(), [1], timeout: 60)
            for crash in [false, true] {
                var bytes = [UInt8](repeating: 3, count: count)
                let before = LargeItemPeakProbe.status("VmRSS:")
                if crash {
                    XCTAssertThrowsError(try pool.apply(CrashWithLargeInput(), bytes, timeout: 60)) { error in
                        XCTAssertTrue(error is WorkerDied, "\(error)")
                    }
                } else {
                    XCTAssertEqual(try pool.apply(TakeBytes(), bytes, timeout: 60), count + 6)
                }
                bytes = []
                // The pool's thread lets go at its next look at the worker: bounded wait.
                var freed = false
                for _ in 0..<200 {
                    if before - LargeItemPeakProbe.status("VmRSS:") > Double(count / 2) {
                        freed = true
                        break
                    }
                    usleep(10_000)
                    _ = try? pool.apply(TakeBytes(), [2], timeout: 60)
                }
                XCTAssertTrue(freed, "crash \(crash): the caller still holds the \(count)-byte argument after dropping it")
            }
        }
    }
}

/// `WireRemoteRanges` on its own: a large array whose bytes are a registered remote range is
/// read through the range's fetch, straight into the new array; a fetch that fails makes the
/// decoding throw.
final class WireRemoteRangesTests: XCTestCase {
    func testALargeArrayInARemoteRangeIsReadThroughItsFetch() throws {
        let count = 1 << 20
        var writer = WireWriter()
        try writer.encodeArray([UInt8](repeating: 0, count: count)) // placeholder bytes
        let source = Patterned.make(count, seed: 4)
        try writer.bytes.withUnsafeBytes { message in
            let start = message.count - count // after the varint count
            let range = UnsafeRawBufferPointer(rebasing: message[start...])
            var calls = 0
            WireRemoteRanges.register(range) { destination, offset, length in
                calls += 1
                source.withUnsafeBytes { destination.copyMemory(from: $0.baseAddress! + offset, byteCount: length) }
                return 0
            }
            var reader = WireReader(message)
            let decoded = try reader.decodeArray(UInt8.self)
            WireRemoteRanges.unregister(inside: message)
            XCTAssertEqual(calls, 1)
            XCTAssertEqual(decoded, source, "the array was not read through the fetch")

            WireRemoteRanges.register(range) { _, _, _ in EPERM }
            defer { WireRemoteRanges.unregister(inside: message) }
            var failing = WireReader(message)
            XCTAssertThrowsError(try failing.decodeArray(UInt8.self)) { error in
                XCTAssertTrue("\(error)".contains("cannot read"), "\(error)")
            }
        }
        XCTAssertTrue(WireRemoteRanges.isEmpty)
    }
}
