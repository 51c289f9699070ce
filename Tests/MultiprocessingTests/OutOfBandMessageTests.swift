import Wire
import XCTest

@testable import Multiprocessing

#if canImport(Glibc)
import Glibc
#endif

/// `count` bytes in 64 KiB blocks: each block the same pattern (from `seed`), its first 8
/// bytes replaced by its index mixed with `seed` — a block out of place or a byte changed
/// shows. Built and checked with `memcpy`/`memcmp` (fast in debug builds too).
enum Patterned {
    static let block = 1 << 16

    static func pattern(_ seed: UInt8) -> [UInt8] {
        (0..<block).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ Int(seed) &+ ($0 >> 8)) }
    }

    static func tag(_ index: Int, _ seed: UInt8) -> UInt64 { UInt64(index) &* 0x9E37_79B9_7F4A_7C15 ^ UInt64(seed) }

    static func make(_ count: Int, seed: UInt8) -> [UInt8] {
        let pattern = Patterned.pattern(seed)
        return [UInt8](unsafeUninitializedCapacity: count) { buffer, initialized in
            let base = UnsafeMutableRawPointer(buffer.baseAddress!)
            for (index, start) in stride(from: 0, to: count, by: block).enumerated() {
                let length = min(block, count - start)
                pattern.withUnsafeBytes { (base + start).copyMemory(from: $0.baseAddress!, byteCount: length) }
                if length >= 8 { (base + start).storeBytes(of: tag(index, seed), toByteOffset: 0, as: UInt64.self) }
            }
            initialized = count
        }
    }

    /// The offset of the first block that differs from `make(bytes.count, seed:)`, or nil.
    static func firstWrongBlock(_ bytes: [UInt8], seed: UInt8) -> Int? {
        let pattern = Patterned.pattern(seed)
        return bytes.withUnsafeBytes { raw in
            pattern.withUnsafeBytes { expected in
                for (index, start) in stride(from: 0, to: raw.count, by: block).enumerated() {
                    let length = min(block, raw.count - start)
                    if length >= 8 {
                        if raw.loadUnaligned(fromByteOffset: start, as: UInt64.self) != tag(index, seed) { return start }
                        if memcmp(raw.baseAddress! + start + 8, expected.baseAddress! + 8, length - 8) != 0 { return start }
                    } else if memcmp(raw.baseAddress! + start, expected.baseAddress!, length) != 0 {
                        return start
                    }
                }
                return nil
            }
        }
    }
}

/// Lines of /proc/self/maps and the targets of /proc/self/fd naming the memfds of large messages.
func outOfBandTraces() -> [String] {
    var traces: [String] = []
    if let maps = wholeFile("/proc/self/maps") {
        traces += maps.split(separator: "\n").filter { $0.contains("swiftmp-message") }.map(String.init)
    }
    if let directory = opendir("/proc/self/fd") {
        defer { closedir(directory) }
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            var target = [CChar](repeating: 0, count: 512)
            let n = readlink("/proc/self/fd/" + name, &target, target.count - 1)
            if n > 0 {
                let text = String(decoding: target.prefix(n).map { UInt8(bitPattern: $0) }, as: UTF8.self)
                if text.contains("swiftmp-message") { traces.append("fd \(name) -> \(text)") }
            }
        }
    }
    return traces
}

/// The machine's shared memory in use (Shmem of /proc/meminfo), bytes.
func machineShmem() -> Int {
    guard let text = try? String(contentsOfFile: "/proc/meminfo", encoding: .utf8),
        let line = text.split(separator: "\n").first(where: { $0.hasPrefix("Shmem:") }),
        let kib = Int(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "")
    else { return 0 }
    return kib * 1024
}

/// Checks every byte of its input (`Patterned`, seed 1), reports whether the input's large
/// array was read from the pool's memory (`WireRemoteRanges`: registered while the function
/// runs) or mapped out of band (a memfd) here, and returns `resultSize` bytes (`Patterned`,
/// seed 2).
struct CheckAndMakeBytes: ParallelFunction {
    var resultSize: Int
    struct Report: Codable, Sendable {
        var count: Int
        var firstWrong: Int?
        var readRemote: Bool
        var mappedHere: Bool
        var bytes: [UInt8]
    }
    func callAsFunction(_ input: [UInt8]) -> Report {
        Report(
            count: input.count, firstWrong: Patterned.firstWrongBlock(input, seed: 1),
            readRemote: !WireRemoteRanges.isEmpty, mappedHere: !outOfBandTraces().isEmpty,
            bytes: Patterned.make(resultSize, seed: 2))
    }
}

/// Kills its worker while the large input is mapped there.
struct CrashHoldingLargeInput: ParallelFunction {
    func callAsFunction(_ input: [UInt8]) -> Int {
        if input.count > 1 << 20 && !outOfBandTraces().isEmpty { kill(getpid(), SIGKILL) }
        return input.count
    }
}

/// Returns `count` bytes from a worker that exits right after sending their descriptor,
/// before the reference reaches the ring.
struct ExitAfterLargeResultDescriptor: ParallelFunction {
    func callAsFunction(_ count: Int) -> [UInt8] {
        OutOfBand.exitAfterSendingDescriptor = true
        return [UInt8](repeating: 3, count: count)
    }
}

/// Messages over `OutOfBand.threshold` travel in a memfd of their own, not through the ring
/// (when their large arrays cannot be read from the sender: `RemoteTransferTests`).
final class OutOfBandMessageTests: XCTestCase {
    override func setUp() {
        super.setUp()
        RemoteTransfer.probeFailsForTesting = true
    }

    override func tearDown() {
        RemoteTransfer.probeFailsForTesting = false
        super.tearDown()
    }

    func makeInput(_ count: Int) -> [UInt8] { Patterned.make(count, seed: 1) }

    func checkResult(_ bytes: [UInt8], count: Int, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(bytes.count, count, file: file, line: line)
        let wrong = Patterned.firstWrongBlock(bytes, seed: 2)
        XCTAssertNil(wrong, "the result's block at \(wrong ?? -1) is wrong", file: file, line: line)
    }

    /// 64 MiB each way, every byte checked, and the input was mapped in the worker (so it did
    /// not come through the ring); then several large messages in flight at once on two
    /// workers, each with its own descriptor; then a small one after them.
    func testLargeInputsAndResultsTravelOutOfBandIntact() throws {
        try Pool.with(processes: 2, startMethod: .fork) { pool in
            let count = (64 << 20) + 4099
            let report = try pool.apply(CheckAndMakeBytes(resultSize: count - 17), makeInput(count))
            XCTAssertEqual(report.count, count)
            XCTAssertNil(report.firstWrong, "the input's block at \(report.firstWrong ?? -1) arrived wrong")
            XCTAssertTrue(report.mappedHere, "a 64 MiB input was not mapped out of band in the worker")
            checkResult(report.bytes, count: count - 17)

            let sizes = [(3 << 20) + 1, 5 << 20, (2 << 20) + 77, 4 << 20]
            let reports = try pool.map(CheckAndMakeBytes(resultSize: 6 << 20), sizes.map(makeInput), chunkSize: 1)
            for (size, report) in zip(sizes, reports) {
                XCTAssertEqual(report.count, size)
                XCTAssertNil(report.firstWrong)
                XCTAssertTrue(report.mappedHere)
                checkResult(report.bytes, count: 6 << 20)
            }
            let small = try pool.apply(CheckAndMakeBytes(resultSize: 10), makeInput(1000))
            XCTAssertNil(small.firstWrong)
            XCTAssertFalse(small.mappedHere, "a 1000-byte input went out of band")
            checkResult(small.bytes, count: 10)
            XCTAssertEqual(outOfBandTraces(), [], "the pool's process keeps a large message open or mapped")
        }
    }

    /// Spawned workers and fork-server workers receive their control socket otherwise than
    /// forked ones: large messages reach them and come back too.
    func testLargeMessagesWithSpawnedAndForkServerWorkers() throws {
        for method in [StartMethod.spawn, .forkserver] {
            try Pool.with(processes: 1, startMethod: method) { pool in
                let report = try pool.apply(CheckAndMakeBytes(resultSize: 9 << 20), makeInput(7 << 20), timeout: 60)
                XCTAssertEqual(report.count, 7 << 20, "\(method)")
                XCTAssertNil(report.firstWrong, "\(method)")
                XCTAssertTrue(report.mappedHere, "\(method)")
                checkResult(report.bytes, count: 9 << 20)
            }
        }
    }

    /// A worker killed while it holds a large input: the pool reports it, keeps nothing of the
    /// message (no descriptor, no mapping, the machine's shared memory back where it was),
    /// and the replacement worker takes large inputs again.
    func testWorkerCrashHoldingLargeInputLeaksNothing() throws {
        try Pool.with(processes: 1, startMethod: .fork) { pool in
            let count = 128 << 20
            XCTAssertEqual(try pool.apply(CrashHoldingLargeInput(), [1, 2, 3]), 3)
            let before = machineShmem()
            XCTAssertThrowsError(try pool.apply(CrashHoldingLargeInput(), [UInt8](repeating: 1, count: count), timeout: 60))
            XCTAssertEqual(outOfBandTraces(), [])
            let report = try pool.apply(CheckAndMakeBytes(resultSize: 3 << 20), makeInput(2 << 20), timeout: 60)
            XCTAssertNil(report.firstWrong)
            checkResult(report.bytes, count: 3 << 20)
            XCTAssertLessThan(machineShmem() - before, count / 2, "the crashed worker's large input is still in memory")
        }
    }

    /// A worker that dies between sending a large result's descriptor and its reference: the
    /// call fails, and the descriptor waiting in the pool's control socket goes with the
    /// socket when the worker is replaced.
    func testWorkerCrashInTheMiddleOfALargeResultLeaksNothing() throws {
        try Pool.with(processes: 1, startMethod: .fork) { pool in
            let count = 128 << 20
            XCTAssertEqual(try pool.apply(CrashHoldingLargeInput(), [1]), 1)
            let before = machineShmem()
            XCTAssertThrowsError(try pool.apply(ExitAfterLargeResultDescriptor(), count, timeout: 60))
            do {
                let report = try pool.apply(CheckAndMakeBytes(resultSize: 3 << 20), makeInput(2 << 20), timeout: 60)
                XCTAssertNil(report.firstWrong)
                checkResult(report.bytes, count: 3 << 20)
            }
            // Looked at once the report is gone: its 3 MiB may live in a mapped message while it lives.
            XCTAssertEqual(outOfBandTraces(), [])
            XCTAssertLessThan(machineShmem() - before, count / 2, "the dead worker's large result is still in memory")
        }
    }
}

/// A worker's channel reading ahead while the current message is still in use.
final class WorkerChannelReadAheadTests: XCTestCase {
    /// `WorkerChannel.receiveCopy` (a task's object request, read while its chunk's inputs are
    /// still being read: `ObjectRequestRelay`) must leave the message `receive` returned as it
    /// is — also when the next frame is remote, whose description it reads.
    func testReceiveCopyOfARemoteFrameKeepsTheCurrentInlineMessage() throws {
        let ringCapacity = 1 << 20
        let region = try SharedRegion(size: PoolRegion.byteCount(slots: 1, ringCapacity: ringCapacity))
        let layout = PoolRegion.format(region, slots: 1, ringCapacity: ringCapacity)
        let ring = layout.taskRing(0)
        // The current frame: inline, 1000 bytes of 0xAB.
        var current = WireWriter()
        current.write(UInt64(1000))
        [UInt8](repeating: 0xAB, count: 1000).withUnsafeBytes { current.writeRaw($0) }
        // The next: remote, one block of 300 000 bytes of this process (RemoteTransfer's frame).
        let block = [UInt8](repeating: 0x5C, count: 300_000)
        var payload = WireWriter()
        payload.write(UInt64(7)) // token
        payload.write(UInt64(300_000 + 16)) // the message's full size
        payload.write(UInt32(1))
        payload.write(UInt32(0))
        payload.write(UInt64(16)) // the block's position
        block.withUnsafeBytes { payload.write(UInt64(UInt(bitPattern: $0.baseAddress!))) }
        payload.write(UInt64(300_000))
        [UInt8](repeating: 0x11, count: 16).withUnsafeBytes { payload.writeRaw($0) }
        var next = WireWriter()
        next.write(RemoteTransfer.flag | UInt64(payload.count))
        payload.bytes.withUnsafeBytes { next.writeRaw($0) }
        for frame in [current, next] { frame.bytes.withUnsafeBytes { XCTAssertEqual(ring.write($0), $0.count) } }
        let channel = WorkerChannel(
            tasks: ring, results: layout.resultRing(0), doorbell: layout.doorbell, parent: getppid(), control: -1,
            inbox: DescriptorInbox(socket: -1), transfer: layout.transfer(0), pool: getpid())
        let view = try XCTUnwrap(channel.receive())
        XCTAssertEqual(Array(view), [UInt8](repeating: 0xAB, count: 1000))
        let copy = try XCTUnwrap(channel.receiveCopy())
        XCTAssertEqual(copy.count, 300_016)
        XCTAssertTrue(Array(copy[16...]) == block, "the remote block read from where it is")
        withExtendedLifetime(block) {}
        XCTAssertTrue(view.allSatisfy { $0 == 0xAB }, "the current message is as it was: \(Array(view.prefix(16)))")
    }
}
