import CSystemShims
import Dispatch
import XCTest

@testable import Multiprocessing

#if canImport(Glibc)
import Glibc
#endif

/// Appends "x\n" to `log` each time it runs, returns x + 1.
struct Counted: ParallelFunction {
    var log: String
    func callAsFunction(_ x: Int) -> Int {
        let fd = open(log, O_WRONLY | O_APPEND | O_CREAT, 0o644)
        if fd >= 0 {
            var line = "\(x)\n"
            line.withUTF8 { _ = write(fd, $0.baseAddress, $0.count) }
            close(fd)
        }
        return x + 1
    }
}

func loggedInputs(_ path: String) -> [Int] {
    guard let data = FileManager.default.contents(atPath: path) else { return [] }
    return String(decoding: data, as: UTF8.self).split(separator: "\n").compactMap { Int($0) }
}

/// Throws for input x while the file `dir/fail-x` exists; returns x + 1.
struct FailWhileFlagged: ParallelFunction {
    var directory: String
    func callAsFunction(_ x: Int) throws -> Int {
        if access("\(directory)/fail-\(x)", F_OK) == 0 { throw Boom(value: x) }
        return x + 1
    }
}

final class CheckpointTests: TimeLimitedTestCase {
    private var directory = ""

    override func setUp() {
        super.setUp()
        var template = Array("/tmp/swiftmp-ckpt-XXXXXX".utf8CString)
        directory = template.withUnsafeMutableBufferPointer { String(cString: mkdtemp($0.baseAddress!)) }
    }

    override func tearDown() {
        _ = try? FileManager.default.removeItem(atPath: directory)
        super.tearDown()
    }

    func testASecondRunRunsNothingAndGivesTheSameResults() throws {
        let journal = directory + "/map.journal"
        let log = directory + "/runs"
        try Pool.with(processes: 2) { pool in
            let first = try pool.map(Counted(log: log), 0..<500, chunkSize: 7, checkpoint: journal)
            XCTAssertEqual(first, (1...500).map { $0 })
            XCTAssertEqual(loggedInputs(log).sorted(), Array(0..<500))
            let second = try pool.map(Counted(log: log), 0..<500, chunkSize: 7, checkpoint: journal)
            XCTAssertEqual(second, first)
            XCTAssertEqual(loggedInputs(log).count, 500, "nothing ran again")
        }
    }

    /// A rerun that finds every result in the journal runs nothing, but a progress callback
    /// still gets its final update (`.callback`: "and at the end"), every input done.
    func testAFullyResumedRunStillReportsItsFinalProgress() throws {
        let journal = directory + "/progress.journal"
        let log = UpdateLog()
        try Pool.with(processes: 2) { pool in
            _ = try pool.map(Square(), 0..<40, chunkSize: 3, checkpoint: journal)
            let again = try pool.map(
                Square(), 0..<40, chunkSize: 3, progress: .callback { log.append($0) }, checkpoint: journal)
            XCTAssertEqual(again, (0..<40).map { $0 * $0 })
        }
        let finals = log.all.filter(\.isFinal)
        XCTAssertEqual(finals.count, 1, "\(log.all)")
        XCTAssertEqual(finals.first?.done, 40)
        XCTAssertEqual(finals.first?.failed, 0)
        XCTAssertEqual(finals.first?.total, 40)
    }

    /// An input that fails in a resumed run is named by its position in the call's inputs,
    /// not among the inputs the journal did not hold.
    func testAFailureInAResumedRunNamesItsInputsPosition() throws {
        let journal = directory + "/failing.journal"
        let function = FailWhileFlagged(directory: directory)
        try Pool.with(processes: 1) { pool in
            close(open(directory + "/fail-3", O_CREAT | O_WRONLY, 0o600))
            XCTAssertThrowsError(try pool.map(function, 0..<40, chunkSize: 1, checkpoint: journal)) { error in
                XCTAssertEqual((error as? RemoteError)?.inputIndex, 3, "\(error)")
            }
            unlink(directory + "/fail-3")
            close(open(directory + "/fail-30", O_CREAT | O_WRONLY, 0o600))
            XCTAssertThrowsError(try pool.map(function, 0..<40, chunkSize: 1, checkpoint: journal)) { error in
                XCTAssertEqual((error as? RemoteError)?.inputIndex, 30, "\(error)")
                XCTAssertEqual((error as? RemoteError)?.message, "\(Boom(value: 30))")
            }
            unlink(directory + "/fail-30")
            XCTAssertEqual(try pool.map(function, 0..<40, chunkSize: 1, checkpoint: journal), Array(1...40))
        }
    }

    /// A journal cut in the middle of a frame (as a kill leaves it), or with a damaged frame:
    /// the whole frames before are kept, the rest runs again.
    func testAPartialJournalRunsOnlyWhatIsMissingAndATornOrDamagedFrameIsDropped() throws {
        let journal = directory + "/partial.journal"
        let log = directory + "/runs"
        try Pool.with(processes: 2) { pool in
            _ = try pool.map(Counted(log: log), 0..<40, chunkSize: 4, checkpoint: journal)
        }
        let bytes = Array(FileManager.default.contents(atPath: journal)!)
        let header = CheckpointJournal.decodeHeader(bytes)!
        let (records, end) = CheckpointJournal.decodeRecords(bytes, from: header.length, count: 40)
        XCTAssertEqual(end, bytes.count)
        XCTAssertEqual(Set(records.flatMap(\.indices)), Set(0..<40))
        XCTAssertEqual(records.flatMap(\.indices).count, 40)
        let first = Array(records[0..<3]), second = Array(records[3..<5]), rest = Array(records[5...])
        let kept = first.flatMap(\.indices)
        let head = Array(bytes[0..<header.length]) + CheckpointJournal.encodeFrame(first)
        var damaged = CheckpointJournal.encodeFrame(second)
        damaged[damaged.count - 3] ^= 0x10
        let torn = CheckpointJournal.encodeFrame(second + rest)
        for (label, contents) in [
            ("torn", head + Array(torn[0..<(torn.count / 2)])),
            ("damaged", head + damaged + CheckpointJournal.encodeFrame(rest)),
        ] {
            XCTAssertTrue(FileManager.default.createFile(atPath: journal, contents: Data(contents)))
            unlink(log)
            try Pool.with(processes: 2) { pool in
                XCTAssertEqual(
                    try pool.map(Counted(log: log), 0..<40, chunkSize: 4, checkpoint: journal), (1...40).map { $0 }, label)
            }
            XCTAssertEqual(Set(loggedInputs(log)), Set(0..<40).subtracting(kept), label)
            XCTAssertEqual(loggedInputs(log).count, 40 - kept.count, label)
            // The journal was cut after the whole frames, then holds the rest.
            let after = Array(FileManager.default.contents(atPath: journal)!)
            let (all, allEnd) = CheckpointJournal.decodeRecords(after, from: header.length, count: 40)
            XCTAssertEqual(allEnd, after.count, label)
            XCTAssertEqual(all.flatMap(\.indices).sorted(), Array(0..<40), label)
            XCTAssertEqual(Array(all[0..<3]), first, label)
        }
    }

    /// The journal's writer thread runs while the pool forks replacement workers (one per
    /// chunk here): no fork may catch it inside the runtime, and no thread may wait for it
    /// while a fork waits for them (`ForkGuard`); then a second run reads every result.
    func testTheWriterThreadAndForksOfReplacementWorkers() throws {
        let journal = directory + "/forks.journal"
        let log = directory + "/runs"
        try Pool.with(processes: 2, startMethod: .fork, maxTasksPerChild: 1) { pool in
            for round in 0..<3 {
                unlink(journal)
                XCTAssertEqual(
                    try pool.map(Counted(log: log), 0..<150, chunkSize: 1, checkpoint: journal),
                    (1...150).map { $0 }, "round \(round)")
            }
            let before = loggedInputs(log).count
            XCTAssertEqual(try pool.map(Counted(log: log), 0..<150, chunkSize: 1, checkpoint: journal), (1...150).map { $0 })
            XCTAssertEqual(loggedInputs(log).count, before, "the journal held every result")
        }
    }

    /// The inputs' hash in place (numbers hashed where they are, the hash streamed over the
    /// count's bytes and theirs) is the hash of their encoding, as a journal's header records it.
    func testInputsHashedInPlaceEqualTheirEncodingsHash() throws {
        var random = SystemRandomNumberGenerator()
        let bytes = (0..<1000).map { _ in UInt8.random(in: 0...255, using: &random) }
        for _ in 0..<100 {
            let cuts = (0..<Int.random(in: 0...6, using: &random)).map { _ in Int.random(in: 0...bytes.count, using: &random) }.sorted()
            var hasher = StripeHasher(seed: 5)
            var start = 0
            bytes.withUnsafeBytes { raw in
                for cut in cuts + [bytes.count] {
                    hasher.add(UnsafeRawBufferPointer(rebasing: raw[start..<cut]))
                    start = cut
                }
            }
            XCTAssertEqual(hasher.finish(), stripeHash(bytes, seed: 5), "cuts \(cuts)")
        }
        func encodedHash<F: ParallelFunction>(_: F.Type, _ inputs: [F.Input]) throws -> UInt64 {
            var writer = WireWriter(capacity: 64)
            try inputs.withUnsafeBufferPointer { try F._encodeInputs($0, into: &writer) }
            return stripeHash(writer.bytes)
        }
        for count in [0, 1, 3, 4, 5, 7, 8, 9, 15, 16, 17, 127, 128, 100_000] {
            let numbers = (0..<count).map { $0 &* 7919 }
            XCTAssertEqual(try rawInputsHash(Square.self, numbers), try encodedHash(Square.self, numbers), "\(count) Ints")
        }
        let bytesInputs = Array(bytes[0..<333])
        XCTAssertEqual(try rawInputsHash(EchoInput<UInt8>.self, bytesInputs), try encodedHash(EchoInput<UInt8>.self, bytesInputs))
        XCTAssertNil(try rawInputsHash(EchoInput<String>.self, ["a", "b"]), "not numbers: encoded and hashed")
    }

    /// The journal's hash sees every bit, in whole stripes, whole words of the last stripe and
    /// its last bytes, and the length (a trailing zero byte, a seed, a swap of two words).
    func testTheJournalsHashSeesEveryBitAndTheLength() {
        var random = SystemRandomNumberGenerator()
        let bytes = (0..<200).map { _ in UInt8.random(in: 0...255, using: &random) }
        for length in [0, 1, 7, 8, 9, 63, 64, 65, 71, 130, 200] {
            let buffer = Array(bytes[0..<length])
            let hash = stripeHash(buffer)
            XCTAssertNotEqual(stripeHash(buffer + [0]), hash, "\(length) bytes and a zero")
            XCTAssertNotEqual(stripeHash(buffer, seed: 1), hash, "\(length) bytes, another seed")
            for bit in 0..<(8 * length) {
                var flipped = buffer
                flipped[bit / 8] ^= UInt8(1) << UInt8(bit % 8)
                XCTAssertNotEqual(stripeHash(flipped), hash, "\(length) bytes, bit \(bit)")
            }
            if length >= 16 {
                let swapped = Array(buffer[8..<16] + buffer[0..<8] + buffer[16...])
                XCTAssertNotEqual(stripeHash(swapped), hash, "\(length) bytes, first two words swapped")
            }
        }
        XCTAssertNotEqual(stripeHash([UInt8](repeating: 0, count: 64)), stripeHash([UInt8](repeating: 0, count: 128)))
    }

    /// A sealed frame's records read back as written; its header carries the payload's length
    /// and checksum.
    func testFramesRoundTrip() {
        let records = [
            CheckpointJournal.Record(indices: [3, 1, 2], outputs: [1, 2, 3, 4, 5]),
            CheckpointJournal.Record(indices: [0], outputs: []),
            CheckpointJournal.Record(indices: [9, 8], outputs: Array(repeating: 7, count: 300)),
        ]
        let header = CheckpointJournal.encodeHeader(CheckpointJournal.Work(typeName: "t", functionHash: 1, inputsHash: 2, count: 10))
        let file = header + CheckpointJournal.encodeFrame(records) + CheckpointJournal.encodeFrame([records[0]])
        XCTAssertEqual(CheckpointJournal.decodeHeader(file)?.length, header.count)
        let (decoded, end) = CheckpointJournal.decodeRecords(file, from: header.count, count: 10)
        XCTAssertEqual(decoded, records + [records[0]])
        XCTAssertEqual(end, file.count)
        let (fewer, _) = CheckpointJournal.decodeRecords(file, from: header.count, count: 9)
        XCTAssertEqual(fewer, [], "an index beyond the inputs: the frame is not read")
        XCTAssertNil(CheckpointJournal.decodeHeader(Array(header.dropLast())), "a torn header")
    }

    /// A new journal's header is the writer's: when the inputs' hash cannot be computed the
    /// journal says so when it closes (the call fails) and writes nothing after it — no
    /// records without a header; the next run finds an empty file and starts afresh.
    func testAHeaderThatCannotBeComputedFailsTheCloseAndWritesNothing() throws {
        struct Unhashable: Error {}
        let path = directory + "/unhashable.journal"
        let (journal, records) = try CheckpointJournal.open(path: path, typeName: "t", functionHash: 1, count: 2) {
            throw Unhashable()
        }
        XCTAssertTrue(records.isEmpty)
        try withUnsafeBytes(of: UInt64(7)) { try journal.append(indices: .range(0..<1), outputs: $0) }
        XCTAssertEqual(journal.close()?.code, .unusable)
        XCTAssertEqual(FileManager.default.contents(atPath: path)?.count, 0, "nothing written")
        let (again, _) = try CheckpointJournal.open(path: path, typeName: "t", functionHash: 1, count: 2) { 3 }
        XCTAssertNil(again.close())
        let header = CheckpointJournal.decodeHeader(Array(FileManager.default.contents(atPath: path)!))
        XCTAssertEqual(header?.work, CheckpointJournal.Work(typeName: "t", functionHash: 1, inputsHash: 3, count: 2))
    }

    /// A journal whose writer thread cannot start is refused with a message saying so, and
    /// leaves the file as it was: nothing written (no header of a journal that never ran),
    /// its descriptor closed once, its lock released, so the next run opens it afresh.
    /// Every buffer the writer wrote comes back to be filled again: one dropped would be made
    /// anew, its huge page zeroed by the pool's thread in the middle of a map (on main the
    /// writer kept two and dropped the rest of what it wrote at once).
    func testEveryWrittenBufferComesBackAsASpare() throws {
        let path = directory + "/spares.journal"
        let descriptor = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        XCTAssertGreaterThanOrEqual(descriptor, 0)
        let writer = JournalWriter(descriptor: descriptor, path: path, size: 0, unsynced: false)
        // The thread runs only once three frames wait: it takes them in one go.
        let go = DispatchSemaphore(value: 0)
        try writer.start { name, body throws(SystemError) in
            try spawnThread(named: name) {
                go.wait()
                body()
            }
        }
        let frames = (0..<3).map { _ in JournalBuffer(capacity: 4096) }
        for frame in frames {
            frame.write(UInt64(7))
            _ = writer.submit(frame)
        }
        go.signal()
        let deadline = monotonicNanoseconds() + 20_000_000_000
        while !writer.isIdle && monotonicNanoseconds() < deadline { usleep(100) }
        XCTAssertTrue(writer.isIdle, "the writer is done in 20 s")
        XCTAssertEqual(writer.spareCount, 3)
        XCTAssertNil(writer.finish(nil))
    }

    /// A journal on a file system that fills up during the map (a 1 MiB tmpfs): the call
    /// fails at once with `CheckpointError(.unusable)` saying the disk is full — no crash, no
    /// hang — and the pool goes on; with room again, the same call over the journal left
    /// behind completes with every result.
    func testADiskThatFillsUpFailsTheCallClearlyAndThePoolGoesOn() throws {
        guard getuid() == 0 else { throw XCTSkip("mounting a small tmpfs needs root") }
        let mountPoint = directory + "/tiny"
        XCTAssertEqual(mkdir(mountPoint, 0o755), 0)
        guard mount("tmpfs", mountPoint, "tmpfs", 0, "size=1m") == 0 else {
            return XCTFail("cannot mount a 1 MiB tmpfs at \(mountPoint): errno \(errno)")
        }
        defer { umount2(mountPoint, Int32(MNT_DETACH)) }
        let journal = mountPoint + "/journal"
        let inputs = Array(0..<400_000)
        try Pool.with(processes: 2) { pool in
            let start = monotonicNanoseconds()
            XCTAssertThrowsError(try pool.map(Square(), inputs, chunkSize: 100, checkpoint: journal)) { error in
                XCTAssertEqual((error as? CheckpointError)?.code, .unusable, "\(error)")
                XCTAssertTrue("\(error)".contains("No space left on device"), "\(error)")
            }
            XCTAssertLessThan(Double(monotonicNanoseconds() - start) / 1e9, 30)
            XCTAssertEqual(try pool.map(Square(), 0..<10), (0..<10).map { $0 * $0 })
            // Room again (the journal's file system grown): the rerun over what was written completes.
            XCTAssertEqual(mount("tmpfs", mountPoint, "tmpfs", UInt(MS_REMOUNT), "size=64m"), 0, "remount: errno \(errno)")
            XCTAssertEqual(try pool.map(Square(), inputs, chunkSize: 100, checkpoint: journal), inputs.map { $0 * $0 })
        }
    }

    func testAWriterThreadThatCannotStartLeavesTheFileAsItWas() throws {
        let path = directory + "/nothread.journal"
        // This process's descriptors (others' pools may close theirs meanwhile, not open any).
        func openDescriptors() -> Set<String> { Set((try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")) ?? []) }
        let failing: JournalWriter.Spawn = { _, _ throws(SystemError) in throw SystemError("pthread_create", errno: EAGAIN) }
        var before = openDescriptors()
        XCTAssertThrowsError(
            try CheckpointJournal.open(path: path, typeName: "t", functionHash: 1, count: 2, spawn: failing) { 3 }
        ) { error in
            XCTAssertEqual((error as? CheckpointError)?.code, .unusable)
            XCTAssertTrue("\(error)".contains("cannot start the thread"), "\(error)")
        }
        XCTAssertEqual(openDescriptors().subtracting(before), [], "the journal's descriptor is closed")
        XCTAssertEqual(FileManager.default.contents(atPath: path)?.count, 0, "nothing written")

        // A journal with records: refused the same way, its bytes unchanged, and still readable.
        let (journal, _) = try CheckpointJournal.open(path: path, typeName: "t", functionHash: 1, count: 2) { 3 }
        try withUnsafeBytes(of: UInt64(7)) { try journal.append(indices: .range(0..<1), outputs: $0) }
        XCTAssertNil(journal.close())
        let written = FileManager.default.contents(atPath: path)
        before = openDescriptors()
        XCTAssertThrowsError(
            try CheckpointJournal.open(path: path, typeName: "t", functionHash: 1, count: 2, spawn: failing) { 3 })
        XCTAssertEqual(openDescriptors().subtracting(before), [], "the journal's descriptor is closed")
        XCTAssertEqual(FileManager.default.contents(atPath: path), written, "nothing written")
        let (again, records) = try CheckpointJournal.open(path: path, typeName: "t", functionHash: 1, count: 2) { 3 }
        XCTAssertEqual(records.map(\.indices), [[0]], "unlocked, and the record kept")
        XCTAssertNil(again.close())
    }

    /// The writer allocates the file's blocks ahead of its writes (cheaper writes on ext4) and
    /// gives them back when the journal closes — and the next run does, after a kill left them.
    func testSpaceAllocatedAheadIsGivenBackOnCloseAndAfterAKill() throws {
        let path = directory + "/ahead.journal"
        func allocated() -> Int {
            var status = stat()
            XCTAssertEqual(stat(path, &status), 0)
            return Int(status.st_blocks) * 512
        }
        // Whether this file system allocates ahead at all (tmpfs, ext4 and XFS do).
        let probe = open(directory + "/probe", O_RDWR | O_CREAT, 0o644)
        XCTAssertGreaterThanOrEqual(probe, 0)
        let allocates = CSystemShims_fallocate_keep_size(probe, 0, 1 << 20) == 0
        close(probe)

        let work = CheckpointJournal.Work(typeName: "t", functionHash: 1, inputsHash: 2, count: 100)
        let (journal, _) = try CheckpointJournal.open(path: path, work: work)
        try withUnsafeBytes(of: UInt64(7)) { try journal.append(indices: .range(0..<1), outputs: $0) }
        try journal.writeNow()
        let deadline = monotonicNanoseconds() + 10_000_000_000
        while (FileManager.default.contents(atPath: path)?.count ?? 0) == 0 && monotonicNanoseconds() < deadline {
            usleep(1000)
        }
        if allocates { XCTAssertGreaterThanOrEqual(allocated(), 4 << 20, "allocated ahead while open") }
        XCTAssertNil(journal.close())
        XCTAssertLessThan(allocated(), 1 << 20, "given back on close")

        // A killed run leaves its allocation: the next run's open gives it back, records kept.
        let size = FileManager.default.contents(atPath: path)!.count
        let fd = open(path, O_RDWR)
        if allocates { XCTAssertEqual(CSystemShims_fallocate_keep_size(fd, Int64(size), 8 << 20), 0) }
        close(fd)
        let (again, records) = try CheckpointJournal.open(path: path, work: work)
        XCTAssertEqual(records.map(\.indices), [[0]])
        XCTAssertLessThan(allocated(), 1 << 20, "given back on open")
        XCTAssertNil(again.close())
        XCTAssertEqual(FileManager.default.contents(atPath: path)!.count, size)
    }

    /// A journal of the first format (per-record checksums) is refused with a message that
    /// says what to do, and left as it is.
    func testAJournalOfTheFirstFormatIsRefusedWithWhatToDo() throws {
        let journal = directory + "/v1.journal"
        let old = Array("SWMPCKP1".utf8) + [UInt8](repeating: 3, count: 40)
        XCTAssertTrue(FileManager.default.createFile(atPath: journal, contents: Data(old)))
        try Pool.with(processes: 1) { pool in
            XCTAssertThrowsError(try pool.map(Square(), 0..<10, checkpoint: journal)) {
                XCTAssertEqual(($0 as? CheckpointError)?.code, .otherWork, "\($0)")
                XCTAssertTrue("\($0)".contains("older version"), "\($0)")
                XCTAssertTrue("\($0)".contains("delete it"), "\($0)")
            }
        }
        XCTAssertEqual(FileManager.default.contents(atPath: journal).map { Array($0) }, old)
    }

    func testAJournalOfOtherWorkOrInUseIsRefused() throws {
        let journal = directory + "/other.journal"
        try Pool.with(processes: 1) { pool in
            _ = try pool.map(Square(), 0..<10, checkpoint: journal)
            XCTAssertThrowsError(try pool.map(Square(), 0..<11, checkpoint: journal)) {
                XCTAssertEqual(($0 as? CheckpointError)?.code, .otherWork, "\($0)")
            }
            // As many inputs, one of them other: only the inputs' hash tells.
            XCTAssertThrowsError(try pool.map(Square(), Array(0..<9) + [100], checkpoint: journal)) {
                XCTAssertEqual(($0 as? CheckpointError)?.code, .otherWork, "\($0)")
            }
            XCTAssertThrowsError(try pool.map(Affine(scale: 2, offset: 0), [1.0], checkpoint: journal)) {
                XCTAssertEqual(($0 as? CheckpointError)?.code, .otherWork, "\($0)")
                // Both types named as written, not as the runtime mangles them (`20Multiprocessing…V`).
                XCTAssertTrue("\($0)".contains("(\(String(reflecting: Square.self)), 10 inputs"), "\($0)")
                XCTAssertTrue("\($0)".contains("(\(String(reflecting: Affine.self)), 1 inputs"), "\($0)")
            }
            XCTAssertThrowsError(try pool.map(Square(), 0..<10, checkpoint: directory + "/missing/dir/journal")) {
                XCTAssertEqual(($0 as? CheckpointError)?.code, .unusable, "\($0)")
            }
        }
        let work = CheckpointJournal.Work(typeName: "t", functionHash: 1, inputsHash: 2, count: 3)
        let (held, _) = try CheckpointJournal.open(path: directory + "/held", work: work)
        XCTAssertThrowsError(try CheckpointJournal.open(path: directory + "/held", work: work)) {
            XCTAssertEqual(($0 as? CheckpointError)?.code, .inUse, "\($0)")
        }
        withExtendedLifetime(held) {}
    }

    /// Function type names as they travel (mangled, or registered) shown as the user wrote
    /// the type; anything else shown as it is, never handed to the demangler when it holds
    /// bytes no mangling has.
    func testTypeNamesInMessagesAreReadable() throws {
        XCTAssertEqual(FunctionIdentity.readableName(try FunctionIdentity.name(of: Square.self)), "MultiprocessingTests.Square")
        XCTAssertEqual(
            FunctionIdentity.readableName(try FunctionIdentity.name(of: EchoInput<Int>.self)),
            "MultiprocessingTests.EchoInput<Swift.Int>")
        XCTAssertEqual(FunctionIdentity.readableName("registered:my square"), "my square")
        for asIs in ["", "xyz", "not a mangling", "\u{1}\u{2}abc", "20MultiprocessingTests6Squa"] {
            XCTAssertEqual(FunctionIdentity.readableName(asIs), asIs)
        }
    }

    /// A path that is not a regular file (a FIFO, a character device) is refused at once:
    /// reading it to its end would wait for ever (a FIFO) or never end (`/dev/zero`).
    func testAJournalPathThatIsNotARegularFileIsRefusedAtOnce() throws {
        let fifo = directory + "/fifo"
        XCTAssertEqual(mkfifo(fifo, 0o600), 0)
        try Pool.with(processes: 1) { pool in
            for path in [fifo, "/dev/zero"] {
                let start = monotonicNanoseconds()
                XCTAssertThrowsError(try pool.map(Square(), 0..<10, checkpoint: path)) {
                    XCTAssertEqual(($0 as? CheckpointError)?.code, .unusable, "\($0)")
                    XCTAssertTrue("\($0)".contains("not a regular file"), "\($0)")
                }
                XCTAssertThrowsError(try pool.imap(Square(), [1, 2], checkpoint: path).map { try $0.get() }) {
                    XCTAssertEqual(($0 as? CheckpointError)?.code, .unusable, "\($0)")
                }
                XCTAssertLessThan(monotonicNanoseconds() - start, 5_000_000_000, path)
            }
        }
    }
}

/// Returns its input (of any type): for the inputs' hash of several element types.
struct EchoInput<Value: Codable & Sendable>: ParallelFunction {
    func callAsFunction(_ x: Value) -> Value { x }
}

/// Outputs that are large arrays themselves (travelling as a reference to the worker's memory).
struct LargeRowOf: ParallelFunction {
    func callAsFunction(_ x: Int) -> [Double] { Array(repeating: Double(x), count: 40_000) }
}

extension CheckpointTests {
    /// A checkpointed map whose chunks' outputs are read from the worker's memory (large
    /// plain chunks, and outputs that are large arrays): the journal holds the outputs, not
    /// the message's unfilled place for them — a second run returns them from the journal.
    /// With `process_vm_readv` and with it refused (the memfd).
    func testLargeOutputsReadFromTheWorkerAreJournaledAsThemselves() throws {
        for refused in [false, true] {
            RemoteTransfer.probeFailsForTesting = refused
            defer { RemoteTransfer.probeFailsForTesting = false }
            let inputs = Array(1...400_000)
            let squares = inputs.map { $0 * $0 }
            let rows = Array(1...8)
            let remoteBefore = RemoteTransfer.receivedForTesting
            defer {
                // Without `process_vm_readv` here, nothing came from the worker's memory: the
                // case this test is about did not happen.
                if !refused && RemoteTransfer.enabledByEnvironment && RemoteTransfer.receivedForTesting == remoteBefore {
                    XCTFail("no result was read from a worker's memory (process_vm_readv refused here?)")
                }
            }
            try Pool.with(processes: 2, startMethod: .fork) { pool in
                let plain = directory + "/plain-\(refused).journal"
                XCTAssertTrue(try pool.map(Square(), inputs, chunkSize: 200_000, checkpoint: plain) == squares)
                let again = try pool.map(Square(), inputs, chunkSize: 200_000, checkpoint: plain)
                XCTAssertTrue(
                    again == squares,
                    "refused: \(refused), from the journal: first wrong at \(String(describing: again.indices.first { again[$0] != squares[$0] }))")
                let nested = directory + "/nested-\(refused).journal"
                XCTAssertTrue(try pool.map(LargeRowOf(), rows, chunkSize: 4, checkpoint: nested) == rows.map { LargeRowOf()($0) })
                let rowsAgain = try pool.map(LargeRowOf(), rows, chunkSize: 4, checkpoint: nested)
                XCTAssertTrue(rowsAgain == rows.map { LargeRowOf()($0) }, "refused: \(refused): \(rowsAgain.map { $0.prefix(2) })")
            }
        }
    }
}

extension CheckpointTests {
    /// A partly resumed run reports the progress of the whole call: the inputs the journal
    /// gave are done (and counted in `resumed`), the total is every input (not only those
    /// left: "10/786" for a call of 2 000), and the rate is this run's own. For a map and
    /// for a checkpointed stream.
    func testAPartlyResumedRunsProgressCountsTheWholeCall() throws {
        let function = FailWhileFlagged(directory: directory)
        let flag = directory + "/fail-30"
        let logs = [false: UpdateLog(), true: UpdateLog()]
        try Pool.with(processes: 1) { pool in
            for streamed in [false, true] {
                let journal = directory + "/partial-progress-\(streamed).journal"
                close(open(flag, O_CREAT | O_WRONLY, 0o600))
                if streamed {
                    let first = Array(try pool.imap(function, Array(0..<40), checkpoint: journal))
                    XCTAssertEqual(first.filter { (try? $0.get()) == nil }.count, 1)
                } else {
                    XCTAssertThrowsError(try pool.map(function, 0..<40, chunkSize: 1, checkpoint: journal))
                }
                unlink(flag)
                let log = logs[streamed]!
                let progress = ProgressReport.callback { log.append($0) }
                let results =
                    streamed
                    ? try pool.imap(function, Array(0..<40), progress: progress, checkpoint: journal).map { try $0.get() }
                    : try pool.map(function, 0..<40, chunkSize: 1, progress: progress, checkpoint: journal)
                XCTAssertEqual(results, Array(1...40), "streamed \(streamed)")
            }
        }
        // The final update may come after the call returned: read them once the pool ended.
        for (streamed, log) in logs {
            let updates = log.all
            let final = try XCTUnwrap(updates.last, "streamed \(streamed)")
            XCTAssertTrue(final.isFinal, "streamed \(streamed): \(updates)")
            XCTAssertEqual(final.done, 40, "streamed \(streamed): \(final)")
            XCTAssertEqual(final.total, 40, "streamed \(streamed): \(final)")
            XCTAssertGreaterThanOrEqual(final.resumed, 30, "streamed \(streamed): \(final)")
            XCTAssertLessThan(final.resumed, 40, "streamed \(streamed): \(final)")
            let line = final.line(label: "p")
            XCTAssertTrue(line.hasPrefix("p: 40/40 (100.0%), \(final.resumed) from the checkpoint"), line)
            for update in updates {
                XCTAssertGreaterThanOrEqual(update.done, update.resumed, "\(update)")
                if let total = update.total { XCTAssertEqual(total, 40, "streamed \(streamed): \(update)") }
            }
            if !streamed { XCTAssertTrue(updates.allSatisfy { $0.total == 40 && $0.resumed == final.resumed }, "\(updates)") }
        }
    }
}

extension CheckpointTests {
    /// An input whose retries run out in a resumed run (map) or a checkpointed stream is
    /// named by its position in the call in everything `RetriesExhausted` holds: its index,
    /// every attempt's description (`failures`, the lines of its description) and
    /// `lastError` — not by its position among the inputs the journal lacked.
    func testRetriesExhaustedInAResumedRunNamesTheCallersInputInEveryAttempt() throws {
        let function = FailWhileFlagged(directory: directory)
        close(open(directory + "/fail-30", O_CREAT | O_WRONLY, 0o600))
        let retry = RetryPolicy(attempts: 2, on: [.threw])
        func check(_ error: any Error, _ label: String) {
            guard let exhausted = error as? RetriesExhausted else { return XCTFail("\(label): \(error)") }
            XCTAssertEqual(exhausted.inputIndex, 30, label)
            XCTAssertEqual((exhausted.lastError as? RemoteError)?.inputIndex, 30, "\(label): \(exhausted.lastError)")
            XCTAssertEqual(exhausted.failures.count, 2, label)
            XCTAssertTrue(exhausted.failures.allSatisfy { $0.hasPrefix("input 30 threw") }, "\(label): \(exhausted.failures)")
            XCTAssertFalse("\(exhausted)".contains("input 0 "), "\(label): \(exhausted)")
        }
        try Pool.with(processes: 1) { pool in
            let journal = directory + "/retried.journal"
            XCTAssertThrowsError(try pool.map(function, 0..<40, chunkSize: 1, checkpoint: journal))
            XCTAssertThrowsError(try pool.map(function, 0..<40, chunkSize: 1, retry: retry, checkpoint: journal)) {
                check($0, "map")
            }
            let streamJournal = directory + "/retried-stream.journal"
            _ = Array(try pool.imap(function, Array(0..<40), checkpoint: streamJournal))
            let again = Array(try pool.imap(function, Array(0..<40), retry: retry, checkpoint: streamJournal))
            XCTAssertEqual(again.count, 40)
            guard case .failure(let error) = again[30] else { return XCTFail("input 30 should fail: \(again[30])") }
            check(error, "stream")
        }
    }
}
