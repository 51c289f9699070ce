import Logging
import XCTest

@testable import Multiprocessing

#if canImport(Glibc)
import Glibc
#endif

/// What the test process's handler received.
final class CapturedRecords: @unchecked Sendable {
    static let shared = CapturedRecords()
    private let lock = NSLockLike()
    private var records: [(message: String, metadata: Logger.Metadata)] = []
    func append(_ message: String, _ metadata: Logger.Metadata) { lock.withLock { records.append((message, metadata)) } }
    func matching(_ text: String) -> [Logger.Metadata] { lock.withLock { records.filter { $0.message.contains(text) }.map(\.metadata) } }
}

struct CapturingHandler: LogHandler {
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .info
    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }
    func log(event: LogEvent) {
        CapturedRecords.shared.append(event.message.description, event.metadata ?? [:])
    }
}

/// Logs "<tag> <x>" and, for `crash`, dies right after.
struct LogThenMaybeCrash: ParallelFunction {
    var tag: String
    var crash: Int
    func callAsFunction(_ x: Int) -> Int {
        Logger(label: "test").info("\(tag) \(x)", metadata: ["input": "\(x)"])
        if x == crash { kill(getpid(), SIGKILL) }
        return x
    }
}

/// The test process bootstraps swift-log once (a process can only do it once).
private let bootstrapped: Void = WorkerLogging.bootstrap { _ in CapturingHandler() }

final class WorkerLoggingTests: TimeLimitedTestCase {
    func testATaskLoggerReachesThisProcessTaggedOnEveryStartMethodAndSurvivesACrash() throws {
        _ = bootstrapped
        for method in [StartMethod.fork, .forkserver, .spawn] {
            let tag = "hello-\(method.rawValue)"
            try Pool.with(processes: 2, startMethod: method) { pool in
                XCTAssertThrowsError(try pool.map(LogThenMaybeCrash(tag: tag, crash: 3), 0..<4, chunkSize: 1))
                _ = try pool.map(LogThenMaybeCrash(tag: tag, crash: -1), 4..<6)
            }
            for input in 0..<6 {
                let seen = CapturedRecords.shared.matching("\(tag) \(input)")
                XCTAssertEqual(seen.count, 1, "\(method): record of input \(input) (the crashing input is 3)")
                guard let metadata = seen.first else { continue }
                XCTAssertEqual(metadata["input"]?.description, "\(input)", "\(method)")
                guard let pid = metadata["pid"].flatMap({ Int32($0.description) }) else {
                    XCTFail("\(method): no pid in \(metadata)")
                    continue
                }
                XCTAssertNotEqual(pid, getpid(), "\(method): logged in a worker")
                XCTAssertNotNil(metadata["host"], "\(method)")
            }
        }
        // Logged here, not in a worker: no worker tags.
        Logger(label: "test").info("from the test process")
        XCTAssertNil(CapturedRecords.shared.matching("from the test process").first?["pid"])
    }
}
