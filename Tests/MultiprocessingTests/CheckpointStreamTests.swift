import XCTest

@testable import Multiprocessing

#if canImport(Glibc)
import Glibc
#endif

/// Throws for input `bad` (a failure in a checkpointed stream is not recorded).
struct CountedFailingAt: ParallelFunction {
    var log: String
    var bad: Int
    func callAsFunction(_ x: Int) throws -> Int {
        _ = Counted(log: log)(x)
        if x == bad { throw Boom(value: x) }
        return x + 1
    }
}

/// `imap` / `imapUnordered` with `checkpoint:`: a stream stopped midway and run again hands
/// back what it had received without running it, in input order, and runs the rest.
final class CheckpointStreamTests: TimeLimitedTestCase {
    private var directory = ""

    override func setUp() {
        super.setUp()
        var template = Array("/tmp/swiftmp-ckpt-stream-XXXXXX".utf8CString)
        directory = template.withUnsafeMutableBufferPointer { String(cString: mkdtemp($0.baseAddress!)) }
    }

    override func tearDown() {
        _ = try? FileManager.default.removeItem(atPath: directory)
        super.tearDown()
    }

    func testAStoppedStreamResumesWithoutRunningWhatItReceived() throws {
        for ordered in [true, false] {
            let journal = directory + "/stream-\(ordered).journal"
            let log = directory + "/runs-\(ordered)"
            let function = Counted(log: log)
            try Pool.with(processes: 2, backend: .local) { pool in
                // The first run stops after 30 results (a kill would lose at most the last 0.1 s).
                var received: [Int] = []
                do {
                    let stream =
                        ordered
                        ? try pool.imap(function, 0..<100, chunkSize: 3, checkpoint: journal)
                        : try pool.imapUnordered(function, 0..<100, chunkSize: 3, checkpoint: journal)
                    for result in stream.prefix(30) { received.append(try result.get()) }
                }
                if ordered { XCTAssertEqual(received, Array(1...30)) }
                let runsBefore = loggedInputs(log)
                // The second run: the same results, in input order (imap), without running the 30 again.
                let stream =
                    ordered
                    ? try pool.imap(function, 0..<100, chunkSize: 3, checkpoint: journal)
                    : try pool.imapUnordered(function, 0..<100, chunkSize: 3, checkpoint: journal)
                let all = try stream.map { try $0.get() }
                if ordered {
                    XCTAssertEqual(all, Array(1...100))
                } else {
                    XCTAssertEqual(all.sorted(), Array(1...100))
                }
                let runsAfter = Array(loggedInputs(log).dropFirst(runsBefore.count))
                let receivedInputs = Set(received.map { $0 - 1 })
                XCTAssertTrue(receivedInputs.isDisjoint(with: runsAfter), "ordered \(ordered): ran again \(receivedInputs.intersection(runsAfter))")
                // Everything else ran: also inputs that had run but whose results were not received.
                XCTAssertEqual(Set(runsAfter), Set(0..<100).subtracting(receivedInputs), "ordered \(ordered)")
                // A third run runs nothing.
                let third = try pool.imap(function, 0..<100, chunkSize: 3, checkpoint: journal).map { try $0.get() }
                XCTAssertEqual(third, Array(1...100))
                XCTAssertEqual(loggedInputs(log).count, runsBefore.count + runsAfter.count, "ordered \(ordered): nothing ran")
            }
        }
    }

    func testFailuresAreNotRecordedAndNameTheCallersPosition() throws {
        let journal = directory + "/failing.journal"
        let log = directory + "/runs"
        try Pool.with(processes: 2, backend: .local) { pool in
            let function = CountedFailingAt(log: log, bad: 7)
            let first = Array(try pool.imap(function, 0..<10, checkpoint: journal))
            XCTAssertEqual((first[7].failure as? RemoteError)?.inputIndex, 7)
            // Run again: only the failed input runs (and fails again, named by its position).
            let second = Array(try pool.imap(function, 0..<10, checkpoint: journal))
            XCTAssertEqual(second.compactMap { try? $0.get() }, [1, 2, 3, 4, 5, 6, 7, 9, 10], "\(second)")
            XCTAssertEqual((second[7].failure as? RemoteError)?.inputIndex, 7, "\(second[7])")
            XCTAssertEqual(loggedInputs(log).count, 11, "the second run ran input 7 only")
        }
    }

    func testAnotherInputAtARecordedPositionOrAMapJournalIsRefused() throws {
        let journal = directory + "/other.journal"
        try Pool.with(processes: 2, backend: .local) { pool in
            let function = Counted(log: directory + "/runs")
            XCTAssertEqual(try pool.imap(function, [1, 2, 3], checkpoint: journal).map { try $0.get() }, [2, 3, 4])
            let changed = Array(try pool.imap(function, [1, 5, 3], checkpoint: journal))
            XCTAssertEqual(try changed[0].get(), 2)
            XCTAssertEqual((changed.last?.failure as? CheckpointError)?.code, .otherWork, "\(changed)")
            XCTAssertEqual(changed.count, 2, "the stream ends at the changed input")
            let mapJournal = directory + "/map.journal"
            _ = try pool.map(function, [1, 2], checkpoint: mapJournal)
            XCTAssertThrowsError(try pool.imap(function, [1, 2], checkpoint: mapJournal)) { error in
                XCTAssertEqual((error as? CheckpointError)?.code, .otherWork, "\(error)")
                // Each side's work as a reader can tell it: a map's count, a stream as a stream.
                XCTAssertTrue("\(error)".contains("2 inputs"), "\(error)")
                XCTAssertTrue("\(error)".contains("an imap stream"), "\(error)")
                XCTAssertFalse("\(error)".contains("\(Int.max)"), "\(error)")
            }
            XCTAssertThrowsError(try pool.map(function, [1, 2, 3], checkpoint: journal)) { error in
                XCTAssertEqual((error as? CheckpointError)?.code, .otherWork, "\(error)")
                XCTAssertTrue("\(error)".contains("an imap stream"), "\(error)")
                XCTAssertFalse("\(error)".contains("\(Int.max)"), "\(error)")
            }
        }
    }
}

extension Result {
    var failure: Failure? {
        if case .failure(let error) = self { return error }
        return nil
    }
}
