import CSystemShims
import XCTest

@testable import Multiprocessing

#if canImport(Glibc)
import Glibc
#endif

/// A map's journal written around the page cache (`O_DIRECT`, `JournalWriter`) where the file
/// system offers it, through it where it does not or refuses a write after all; the format on
/// disk is the same either way.
final class CheckpointDirectWriteTests: TimeLimitedTestCase {
    private var directory = ""
    private let work = CheckpointJournal.Work(typeName: "t", functionHash: 1, inputsHash: 2, count: 1000)

    override func setUp() {
        super.setUp()
        var template = Array("/tmp/swiftmp-ckpt-direct-XXXXXX".utf8CString)
        directory = template.withUnsafeMutableBufferPointer { String(cString: mkdtemp($0.baseAddress!)) }
    }

    override func tearDown() {
        _ = try? FileManager.default.removeItem(atPath: directory)
        super.tearDown()
    }

    /// Whether files in `directory` take direct writes (ext4 and XFS do; tmpfs does not).
    private func offersDirectWrites(_ directory: String) -> Bool {
        let probe = open(directory + "/probe", O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        XCTAssertGreaterThanOrEqual(probe, 0)
        defer {
            close(probe)
            unlink(directory + "/probe")
        }
        return CSystemShims_enable_direct_io(probe) > 0
    }

    /// Records of sizes that fall anywhere in a block: outputs of 1…~9000 bytes, positions
    /// `first..<first + count` one each.
    private func records(_ first: Int, _ count: Int) -> [CheckpointJournal.Record] {
        (first..<(first + count)).map { index -> CheckpointJournal.Record in
            let length: Int = (index * 3_719) % 9_001 + 1
            let outputs: [UInt8] = (0..<length).map { (byte: Int) -> UInt8 in UInt8(truncatingIfNeeded: byte &* 31 &+ index) }
            return CheckpointJournal.Record(indices: [index], outputs: outputs)
        }
    }

    /// Appends `records`, handing them to the writer `perFrame` at a time.
    private func append(_ records: [CheckpointJournal.Record], to journal: CheckpointJournal, perFrame: Int) throws {
        for (position, record) in records.enumerated() {
            try record.outputs.withUnsafeBytes { try journal.append(indices: .list(record.indices), outputs: $0, checkingTime: false) }
            if position % perFrame == perFrame - 1 { try journal.writeNow() }
        }
        try journal.writeNow()
    }

    private func contents(_ path: String) -> [UInt8] { Array(FileManager.default.contents(atPath: path) ?? Data()) }

    /// What the file at `path` holds as a journal: its records and where they end.
    private func decoded(_ path: String) -> (records: [CheckpointJournal.Record], end: Int, size: Int)? {
        let bytes = contents(path)
        guard let header = CheckpointJournal.decodeHeader(bytes) else { return nil }
        let (records, end) = CheckpointJournal.decodeRecords(bytes, from: header.length, count: work.count)
        return (records, end, bytes.count)
    }

    /// Waits until the writer wrote `count` records to `path` (the journal still open).
    private func waitForRecords(_ count: Int, at path: String) -> (records: [CheckpointJournal.Record], end: Int, size: Int)? {
        let deadline = monotonicNanoseconds() + 20_000_000_000
        while monotonicNanoseconds() < deadline {
            if let found = decoded(path), found.records.count >= count { return found }
            usleep(2000)
        }
        XCTFail("the writer did not write \(count) records in 20 s")
        return nil
    }

    /// Direct writes where offered: while the journal is open, the file is whole blocks (the
    /// last one ends in zeros, which a reader drops as a torn frame); closed, it is cut to the
    /// journal. A copy taken while it was open (what a kill leaves) opens with every record,
    /// is cut to them, and takes more records after them, directly again, and the last ones
    /// through the page cache when it closes.
    func testAMapsJournalIsWrittenAroundThePageCacheWhereOfferedAndKeepsItsFormat() throws {
        let offered = offersDirectWrites(directory)
        let path = directory + "/direct.journal"
        let first = records(0, 300), second = records(300, 200)
        let (journal, found) = try CheckpointJournal.open(path: path, work: work, directWrites: true)
        XCTAssertTrue(found.isEmpty)
        XCTAssertEqual(journal.writesDirectly, offered)
        try append(Array(first[0..<7]), to: journal, perFrame: 7)
        try append(Array(first[7...]), to: journal, perFrame: 29)
        guard let open = waitForRecords(first.count, at: path) else { return }
        XCTAssertEqual(open.records, first)
        if offered {
            XCTAssertEqual(open.size % 4096, 0, "whole blocks while open")
            XCTAssertLessThan(open.end, open.size, "zeros after the journal while open")
            XCTAssertTrue(contents(path)[open.end...].allSatisfy { $0 == 0 })
        }
        let killed = directory + "/killed.journal"
        XCTAssertTrue(FileManager.default.createFile(atPath: killed, contents: Data(contents(path))))
        XCTAssertNil(journal.close())
        XCTAssertEqual(decoded(path)?.records, first)
        XCTAssertEqual(decoded(path)?.end, decoded(path)?.size, "cut to the journal when closed")

        let (resumed, kept) = try CheckpointJournal.open(path: killed, work: work, directWrites: true)
        XCTAssertEqual(kept, first)
        XCTAssertEqual(contents(killed).count, open.end, "cut to the records on open")
        XCTAssertEqual(resumed.writesDirectly, offered)
        try append(second, to: resumed, perFrame: 13)
        // Records still waiting when the journal closes: the closing thread writes them after
        // the direct writes, through the page cache.
        let third = records(500, 37)
        for record in third {
            try record.outputs.withUnsafeBytes { try resumed.append(indices: .list(record.indices), outputs: $0, checkingTime: false) }
        }
        XCTAssertNil(resumed.close())
        XCTAssertEqual(decoded(killed)?.records, first + second + third)
        XCTAssertEqual(decoded(killed)?.end, decoded(killed)?.size)
        let (_, all) = try CheckpointJournal.open(path: killed, work: work, directWrites: true)
        XCTAssertEqual(all, first + second + third)
    }

    /// Where direct writes are not offered (tmpfs: /dev/shm), the journal goes through the page
    /// cache, and a checkpointed map resumes there as anywhere.
    func testWhereDirectWritesAreNotOfferedTheJournalGoesThroughThePageCache() throws {
        var template = Array("/dev/shm/swiftmp-ckpt-XXXXXX".utf8CString)
        guard let made = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else {
            throw XCTSkip("no /dev/shm here: \(String(cString: strerror(errno)))")
        }
        let shm = String(cString: made)
        defer { _ = try? FileManager.default.removeItem(atPath: shm) }
        let offered = offersDirectWrites(shm)
        let path = shm + "/buffered.journal"
        let all = records(0, 200)
        let (journal, _) = try CheckpointJournal.open(path: path, work: work, directWrites: true)
        XCTAssertEqual(journal.writesDirectly, offered)
        if offered { print("note: \(shm) offers direct writes: the page cache path is tested by the refusal test only") }
        try append(all, to: journal, perFrame: 17)
        XCTAssertNil(journal.close())
        XCTAssertEqual(decoded(path)?.records, all)
        XCTAssertEqual(decoded(path)?.end, decoded(path)?.size)

        let log = shm + "/runs"
        let mapJournal = shm + "/map.journal"
        try Pool.with(processes: 2) { pool in
            XCTAssertEqual(try pool.map(Counted(log: log), 0..<300, chunkSize: 7, checkpoint: mapJournal), Array(1...300))
            XCTAssertEqual(try pool.map(Counted(log: log), 0..<300, chunkSize: 7, checkpoint: mapJournal), Array(1...300))
        }
        XCTAssertEqual(loggedInputs(log).sorted(), Array(0..<300), "the second run ran nothing")
    }

    /// A file system that refuses a direct write after all (`EINVAL`) — the header's, the
    /// first frame's, a later one's —: that write and the rest go through the page cache, in
    /// place, and the journal reads back whole.
    func testADirectWriteRefusedAfterAllGoesThroughThePageCache() throws {
        guard offersDirectWrites(directory) else { throw XCTSkip("\(directory) does not offer direct writes") }
        for refusedAfter in [0, 1, 3] {
            let path = directory + "/refused-\(refusedAfter).journal"
            let first = records(0, 120), second = records(120, 80)
            let (journal, _) = try CheckpointJournal.open(
                path: path, typeName: work.typeName, functionHash: work.functionHash, count: work.count, directWrites: true,
                refusingDirectWritesAfter: refusedAfter
            ) { [work] in work.inputsHash }
            // (Refused at once: the writer may have written the header already.)
            if refusedAfter > 0 { XCTAssertTrue(journal.writesDirectly) }
            try append(first, to: journal, perFrame: 11)
            guard waitForRecords(first.count, at: path) != nil else { return }
            XCTAssertFalse(journal.writesDirectly, "refused after \(refusedAfter)")
            try append(second, to: journal, perFrame: 11)
            XCTAssertNil(journal.close())
            XCTAssertEqual(decoded(path)?.records, first + second, "refused after \(refusedAfter)")
            XCTAssertEqual(decoded(path)?.end, decoded(path)?.size, "refused after \(refusedAfter)")
        }
    }

    /// A frame torn at a block boundary (a direct write cut short by a power loss: the blocks
    /// after the cut hold zeros, or are missing) is dropped with what follows it; the frames
    /// before are kept, and the next records go after them.
    func testAFrameTornAtABlockBoundaryIsDroppedWithWhatFollows() throws {
        let path = directory + "/torn.journal"
        let first = records(0, 40), second = records(40, 60), third = records(100, 30)
        let (journal, _) = try CheckpointJournal.open(path: path, work: work, directWrites: true)
        try append(first, to: journal, perFrame: first.count)
        try append(second, to: journal, perFrame: second.count)
        try append(third, to: journal, perFrame: third.count)
        XCTAssertNil(journal.close())
        let bytes = contents(path)
        let header = try XCTUnwrap(CheckpointJournal.decodeHeader(bytes), "a header, then frames")
        let firstEnd = header.length + CheckpointJournal.encodeFrame(first).count
        let secondEnd = firstEnd + CheckpointJournal.encodeFrame(second).count
        XCTAssertEqual(decoded(path)?.records, first + second + third)
        // Cut at the first block boundary inside the second frame, past its header.
        let cut = roundedUp(firstEnd + CheckpointJournal.frameHeaderSize + 1, to: 4096)
        XCTAssertLessThan(cut, secondEnd, "the second frame spans a block boundary")
        for (label, torn) in [
            ("missing", Array(bytes[..<cut])),
            ("zeros", Array(bytes[..<cut]) + [UInt8](repeating: 0, count: 4096 + bytes.count - cut)),
        ] {
            XCTAssertTrue(FileManager.default.createFile(atPath: path, contents: Data(torn)))
            let (again, kept) = try CheckpointJournal.open(path: path, work: work, directWrites: true)
            XCTAssertEqual(kept, first, label)
            XCTAssertEqual(contents(path).count, firstEnd, label)
            try append(third, to: again, perFrame: 7)
            XCTAssertNil(again.close())
            XCTAssertEqual(decoded(path)?.records, first + third, label)
            XCTAssertEqual(decoded(path)?.end, decoded(path)?.size, label)
        }
    }

    /// A map's journal told how many inputs the run records (`expect`) hands its frames to the
    /// writer as the end nears — each once it holds as many inputs as are still to come, and
    /// the writer is idle —, without a clock or a full frame: by the time every record is
    /// appended, all but the last `tailFrameBytes` or so are written, and the thread closing
    /// the journal writes only that (on main, all 1.6 MB waited for the close).
    func testFramesShrinkTowardsTheEndSoTheLastWriteIsShort() throws {
        let count = 200_000, perRecord = 100
        let tailWork = CheckpointJournal.Work(typeName: "t", functionHash: 1, inputsHash: 2, count: count)
        let path = directory + "/tail.journal"
        let (journal, _) = try CheckpointJournal.open(path: path, work: tailWork, directWrites: true)
        journal.expect(inputs: count)
        let outputs = [UInt8](repeating: 7, count: 8 * perRecord)
        let deadline = monotonicNanoseconds() + 20_000_000_000
        /// The writer is done with what it was handed (a frame near the end waits for that).
        func waitForTheWriter() {
            while !journal.writerIsIdle && monotonicNanoseconds() < deadline { usleep(100) }
            XCTAssertTrue(journal.writerIsIdle, "the writer is done in 20 s")
        }
        for first in stride(from: 0, to: count, by: perRecord) {
            try outputs.withUnsafeBytes {
                try journal.append(indices: .range(first..<(first + perRecord)), outputs: $0, checkingTime: false)
            }
            waitForTheWriter()
        }
        let bytes = contents(path)
        let header = try XCTUnwrap(CheckpointJournal.decodeHeader(bytes))
        let written = CheckpointJournal.decodeRecords(bytes, from: header.length, count: count).records
            .reduce(0) { $0 + $1.indices.count }
        let frames = frameLengths(bytes, from: header.length)
        // The last frame holds less than `tailFrameBytes` and one record.
        let lastFrameInputs = (CheckpointJournal.tailFrameBytes / (25 + outputs.count) + 1) * perRecord
        XCTAssertGreaterThanOrEqual(written, count - lastFrameInputs, "written before the close")
        XCTAssertLessThan(written, count, "the last frame is the closing thread's")
        XCTAssertGreaterThanOrEqual(frames.count, 4, "\(frames)")
        for (earlier, later) in zip(frames, frames.dropFirst()) {
            XCTAssertLessThanOrEqual(
                later, max(earlier / 2, CheckpointJournal.tailFrameBytes) + 25 + outputs.count,
                "each frame about half the one before, or tailFrameBytes: \(frames)")
        }
        XCTAssertNil(journal.close())
        let closed = contents(path)
        let all = CheckpointJournal.decodeRecords(closed, from: header.length, count: count)
        XCTAssertEqual(all.records.count, count / perRecord)
        XCTAssertTrue(all.records.map { $0.indices.first! } == Array(stride(from: 0, to: count, by: perRecord)))
        XCTAssertEqual(all.end, closed.count)
    }

    /// The payload lengths of the intact frames from `offset` on.
    private func frameLengths(_ bytes: [UInt8], from offset: Int) -> [Int] {
        var lengths: [Int] = []
        var offset = offset
        while offset + CheckpointJournal.frameHeaderSize <= bytes.count {
            let length = bytes[(offset + 4)..<(offset + 12)].reversed().reduce(0) { $0 << 8 | Int($1) }
            let end = offset + CheckpointJournal.frameHeaderSize + length
            guard length > 0, end <= bytes.count,
                CheckpointJournal.decodeRecords(Array(bytes[..<end]), from: offset, count: Int.max).end == end
            else { break }
            lengths.append(length)
            offset = end
        }
        return lengths
    }
}
