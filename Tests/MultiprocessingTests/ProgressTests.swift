import XCTest

@testable import Multiprocessing

#if canImport(Glibc)
import Glibc
#endif

// Glibc's module leaves the pseudo-terminal calls out (they need _XOPEN_SOURCE).
@_silgen_name("posix_openpt") private func openPseudoTerminal(_ flags: Int32) -> Int32
@_silgen_name("grantpt") private func grantPseudoTerminal(_ fd: Int32) -> Int32
@_silgen_name("unlockpt") private func unlockPseudoTerminal(_ fd: Int32) -> Int32
@_silgen_name("ptsname") private func pseudoTerminalName(_ fd: Int32) -> UnsafeMutablePointer<CChar>?

final class UpdateLog: @unchecked Sendable {
    private let lock = NSLockLike()
    private var updates: [ProgressUpdate] = []
    func append(_ update: ProgressUpdate) { lock.withLock { updates.append(update) } }
    var all: [ProgressUpdate] { lock.withLock { updates } }
    func removeAll() { lock.withLock { updates.removeAll() } }
}

/// Runs `body` with standard error sent to `descriptor`; returns when it returns.
private func withStandardError<R>(_ descriptor: Int32, _ body: () throws -> R) rethrows -> R {
    let saved = dup(2)
    dup2(descriptor, 2)
    defer {
        dup2(saved, 2)
        close(saved)
    }
    return try body()
}

private func readAll(_ descriptor: Int32) -> String {
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 4096)
    while true {
        let n = read(descriptor, &chunk, chunk.count)
        if n <= 0 { break }
        bytes += chunk[0..<n]
    }
    return String(decoding: bytes, as: UTF8.self)
}

final class ProgressTests: TimeLimitedTestCase {
    func testCallbackSeesEveryInputSettledAndAFinalUpdate() throws {
        let log = UpdateLog()
        try Pool.with(processes: 2) { pool in
            XCTAssertThrowsError(
                try pool.map(
                    FailOnMultiple(divisor: 100), 1..<400, chunkSize: 7,
                    progress: .callback { log.append($0) }))
            _ = try pool.map(Square(), 0..<300, chunkSize: 7, progress: .callback { log.append($0) })
            let streamed = Array(try pool.imapUnordered(Square(), Array(0..<50), progress: .callback { log.append($0) }))
            XCTAssertEqual(streamed.count, 50)
        }
        let finals = log.all.filter(\.isFinal)
        XCTAssertEqual(finals.count, 3, "\(finals)")
        XCTAssertEqual(finals[1].done, 300)
        XCTAssertEqual(finals[1].total, 300)
        XCTAssertEqual(finals[2].done, 50)
        XCTAssertEqual(finals[2].total, 50, "an imap's total is known once its sequence ends")
        let second = log.all.filter { $0.total == 300 }
        XCTAssertEqual(second.map(\.done), second.map(\.done).sorted(), "done never goes back")
    }

    /// The last report is out before the call returns (as a bar's last line is before the
    /// program's next one): the soak run saw `isFinal` arrive after `map` returned in a
    /// quarter to two thirds of its rounds.
    func testTheFinalReportComesBeforeTheCallReturns() throws {
        let log = UpdateLog()
        try Pool.with(processes: 2) { pool in
            for round in 0..<40 {
                _ = try pool.map(Square(), 0..<200, chunkSize: 10, progress: .callback { log.append($0) })
                XCTAssertEqual(log.all.filter(\.isFinal).count, 1, "round \(round): map returned before its final report")
                _ = try pool.mapAsync(Square(), 0..<50, progress: .callback { log.append($0) }).get(timeout: 30)
                XCTAssertEqual(log.all.filter(\.isFinal).count, 2, "round \(round): mapAsync's get returned first")
                log.removeAll()
            }
        }
    }

    func testLinesInAFileAndABarOnATerminal() throws {
        // Lines: standard error to a file (a batch log).
        let path = "/tmp/swiftmp-progress-\(getpid()).log"
        let file = open(path, O_CREAT | O_TRUNC | O_RDWR, 0o600)
        XCTAssertGreaterThanOrEqual(file, 0)
        defer { close(file); unlink(path) }
        try withStandardError(file) {
            try Pool.with(processes: 2) { pool in
                _ = try pool.map(
                    SleepMilliseconds(), Array(repeating: 20, count: 30), chunkSize: 1,
                    progress: .automatic(label: "sweep", every: 0.1))
            }
        }
        lseek(file, 0, SEEK_SET)
        let lines = readAll(file).split(separator: "\n")
        XCTAssertGreaterThanOrEqual(lines.count, 2, "\(lines)")
        XCTAssertFalse(lines.joined().contains("\r"), "no terminal control in a file")
        XCTAssertTrue(lines.allSatisfy { $0.hasPrefix("sweep: ") && $0.contains("/30") }, "\(lines)")
        XCTAssertTrue(lines.last!.hasPrefix("sweep: 30/30 (100.0%)") && lines.last!.contains("done in"), "\(lines)")

        // A bar: standard error to a terminal (a pseudo-terminal here).
        let master = openPseudoTerminal(O_RDWR | O_NOCTTY)
        XCTAssertGreaterThanOrEqual(master, 0)
        defer { close(master) }
        XCTAssertEqual(grantPseudoTerminal(master), 0)
        XCTAssertEqual(unlockPseudoTerminal(master), 0)
        let terminal = open(String(cString: pseudoTerminalName(master)!), O_RDWR | O_NOCTTY)
        XCTAssertGreaterThanOrEqual(terminal, 0)
        defer { close(terminal) }
        try withStandardError(terminal) {
            try Pool.with(processes: 2) { pool in
                _ = try pool.map(
                    SleepMilliseconds(), Array(repeating: 50, count: 50), chunkSize: 1,
                    progress: .automatic(label: "sweep"))
            }
        }
        let flags = fcntl(master, F_GETFL)
        _ = fcntl(master, F_SETFL, flags | O_NONBLOCK)
        let screen = readAll(master)
        XCTAssertTrue(screen.contains("\r"), "a bar redraws in place: \(screen.debugDescription)")
        XCTAssertTrue(screen.contains("█"), screen)
        XCTAssertTrue(screen.contains("sweep: 50/50 (100.0%)"), screen)
    }

    func testMeterWithAHandDrivenClock() {
        var now: UInt64 = 0
        var printed: [String] = []
        let meter = ProgressMeter(.lines(label: "job", every: 10), total: 100, clock: { now }, output: { printed.append($0) })
        meter.advance(done: 10)
        now = 5_000_000_000
        meter.advance(done: 10)
        XCTAssertEqual(printed, [], "nothing before the first interval")
        now = 10_000_000_000
        meter.advance(done: 20, failed: 1)
        XCTAssertEqual(printed, ["job: 41/100 (41.0%), 1 failed, 4/s, ETA 14s\n"])
        now = 12_000_000_000
        meter.advance(done: 59)
        XCTAssertEqual(printed.count, 1, "at most one line per interval")
        meter.finish()
        XCTAssertEqual(printed.last, "job: 100/100 (100.0%), 1 failed, 8/s, done in 12s\n")
        XCTAssertEqual(ProgressUpdate.duration(3725), "1h2m")
        XCTAssertEqual(ProgressUpdate.rate(3_210_000), "3.21M/s")
    }
}
