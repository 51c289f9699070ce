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

    func testAPartialJournalRunsOnlyWhatIsMissingAndATornRecordIsDropped() throws {
        let journal = directory + "/partial.journal"
        let log = directory + "/runs"
        try Pool.with(processes: 2) { pool in
            _ = try pool.map(Counted(log: log), 0..<40, chunkSize: 4, checkpoint: journal)
        }
        // Keep the header and the first three records; then half a record, as a kill leaves it.
        let bytes = FileManager.default.contents(atPath: journal)!
        let header = CheckpointJournal.decodeHeader(Array(bytes))!
        var offset = header.length
        var kept: [Int] = []
        for _ in 0..<3 {
            let (record, next) = CheckpointJournal.decodeRecord(Array(bytes), at: offset, count: 40)!
            kept += record.indices
            offset = next
        }
        let torn = Array(bytes[0..<offset]) + Array(bytes[offset..<(offset + 10)])
        XCTAssertTrue(FileManager.default.createFile(atPath: journal, contents: Data(torn)))
        unlink(log)
        try Pool.with(processes: 2) { pool in
            XCTAssertEqual(try pool.map(Counted(log: log), 0..<40, chunkSize: 4, checkpoint: journal), (1...40).map { $0 })
        }
        XCTAssertEqual(Set(loggedInputs(log)), Set(0..<40).subtracting(kept))
        XCTAssertEqual(loggedInputs(log).count, 40 - kept.count)
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
        for _ in 0..<50 {
            let cuts = (0..<Int.random(in: 0...6, using: &random)).map { _ in Int.random(in: 0...bytes.count, using: &random) }.sorted()
            var hasher = FNV1aHasher()
            var start = 0
            bytes.withUnsafeBytes { raw in
                for cut in cuts + [bytes.count] {
                    hasher.add(UnsafeRawBufferPointer(rebasing: raw[start..<cut]))
                    start = cut
                }
            }
            XCTAssertEqual(hasher.finish(), fnv1a(bytes), "cuts \(cuts)")
        }
        func encodedHash<F: ParallelFunction>(_: F.Type, _ inputs: [F.Input]) throws -> UInt64 {
            var writer = WireWriter(capacity: 64)
            try inputs.withUnsafeBufferPointer { try F._encodeInputs($0, into: &writer) }
            return fnv1a(writer.bytes)
        }
        for count in [0, 1, 3, 4, 5, 127, 128, 100_000] {
            let numbers = (0..<count).map { $0 &* 7919 }
            XCTAssertEqual(try rawInputsHash(Square.self, numbers), try encodedHash(Square.self, numbers), "\(count) Ints")
        }
        let bytesInputs = Array(bytes[0..<333])
        XCTAssertEqual(try rawInputsHash(EchoInput<UInt8>.self, bytesInputs), try encodedHash(EchoInput<UInt8>.self, bytesInputs))
        XCTAssertNil(try rawInputsHash(EchoInput<String>.self, ["a", "b"]), "not numbers: encoded and hashed")
    }

    /// The writer seals records with the checksum `fnv1a` of each payload: four of a length
    /// side by side, others alone.
    func testSealedRecordsCarryEachPayloadsChecksum() {
        var random = SystemRandomNumberGenerator()
        var bytes: [UInt8] = []
        var payloads: [(offset: Int, length: Int)] = []
        for length in [805, 805, 805, 805, 805, 13, 805, 805, 805, 805, 0, 0, 0, 0, 7, 64, 64, 64, 64] {
            bytes += [0x52, 0x45, 0x43, 0x44] + withUnsafeBytes(of: UInt32(length).littleEndian) { Array($0) }
            payloads.append((bytes.count, length))
            bytes += (0..<length).map { _ in UInt8.random(in: 0...255, using: &random) }
            bytes += [UInt8](repeating: 0, count: 8)
        }
        CheckpointJournal.sealRecords(&bytes)
        for (offset, length) in payloads {
            let checksum = bytes.withUnsafeBytes { UInt64(littleEndian: $0.loadUnaligned(fromByteOffset: offset + length, as: UInt64.self)) }
            XCTAssertEqual(checksum, fnv1a(Array(bytes[offset..<(offset + length)])), "payload of \(length) bytes at \(offset)")
        }
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
}

/// Returns its input (of any type): for the inputs' hash of several element types.
struct EchoInput<Value: Codable & Sendable>: ParallelFunction {
    func callAsFunction(_ x: Value) -> Value { x }
}
