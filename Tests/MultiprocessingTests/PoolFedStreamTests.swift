import Foundation
import Synchronization
import XCTest

@testable import Multiprocessing

#if canImport(Glibc)
import Glibc
#endif

/// `imap`/`imapUnordered` over a sequence that is not `Sendable` (`Pool.fedStream`): read on
/// the thread that iterates the results, at most the stream's window ahead — an endless
/// `lazy.map` is fine, and the pool's thread never runs the sequence's code.
final class PoolFedStreamTests: XCTestCase {
    /// Records the threads a sequence's closure ran on, and how many elements it made.
    private final class Reads: @unchecked Sendable {
        private let state = Mutex<(threads: Set<UInt>, count: Int)>(([], 0))
        func note() {
            let me = UInt(pthread_self())
            state.withLock {
                $0.threads.insert(me)
                $0.count += 1
            }
        }
        var threads: Set<UInt> { state.withLock { $0.threads } }
        var count: Int { state.withLock { $0.count } }
    }

    private var thisThread: UInt { UInt(pthread_self()) }

    /// An endless `lazy.map` (the README's trap: the compiler used to take the eager `map`,
    /// which never returned): the first 200 results come in order, the sequence was read on
    /// this thread only and no further than the window ahead of them.
    func testAnEndlessLazyMapIsReadOnTheIteratingThreadWithinTheWindow() throws {
        try Pool.with(processes: 2) { pool in
            let reads = Reads()
            let stream = try pool.imap(
                Square(),
                (0...).lazy.map { x -> Int in
                    reads.note()
                    return 2 * x
                })
            var results: [Int] = []
            for result in stream {
                results.append(try result.get())
                if results.count == 200 { break }
            }
            XCTAssertEqual(results, (0..<200).map { (2 * $0) * (2 * $0) })
            XCTAssertEqual(reads.threads, [thisThread], "the sequence was read on another thread")
            // Window: (8 × 2 workers + 16) chunks of 1 ahead of what was consumed.
            XCTAssertLessThanOrEqual(reads.count, 200 + 32)
            stream.cancel()
        }
    }

    /// A finite `lazy.filter` and `lazy.map` through `imapUnordered` and `imap` with chunks:
    /// every input once, then the end; results equal a plain map's; a failing input costs
    /// only itself.
    func testFiniteSequencesThatAreNotSendableGiveEveryResultOnce() throws {
        try Pool.with(processes: 2) { pool in
            let reads = Reads()
            let evens = (0..<3000).lazy.filter { x -> Bool in
                reads.note()
                return x % 2 == 0
            }
            let unordered = try pool.imapUnordered(Square(), evens, chunkSize: 7).map { try $0.get() }
            XCTAssertEqual(unordered.sorted(), stride(from: 0, to: 3000, by: 2).map { $0 * $0 })
            XCTAssertEqual(reads.count, 3000)
            XCTAssertEqual(reads.threads, [thisThread])
            let failing = try pool.imap(FailOnSeven(), (0..<20).lazy.map { $0 }, chunkSize: 3)
            var outcomes: [String] = []
            for result in failing {
                switch result {
                case .success(let value): outcomes.append(String(value))
                case .failure: outcomes.append("failed")
                }
            }
            XCTAssertEqual(outcomes, (0..<20).map { $0 == 7 ? "failed" : String($0) })
            XCTAssertEqual(try pool.imap(Square(), (0..<0).lazy.map { $0 }).map { try $0.get() }, [])
        }
    }

    /// `for try await` over `.values`: the sequence is read in the iterating task, not on the
    /// thread that waits for the results.
    func testAsyncIterationReadsTheSequenceWhereItIterates() async throws {
        let pool = try Pool(processes: 2)
        defer { pool.terminate() }
        let reads = Reads()
        let stream = try pool.imap(
            Square(),
            (1...500).lazy.map { x -> Int in
                reads.note()
                return x
            }, chunkSize: 10)
        var sum = 0
        for try await value in stream.values { sum += value }
        XCTAssertEqual(sum, (1...500).reduce(0) { $0 + $1 * $1 })
        XCTAssertEqual(reads.count, 500)
        XCTAssertFalse(reads.threads.isEmpty)
    }

    /// `imap` over a `lazy.map`, then `close()` and `join()` before any result is read (the
    /// fault probe found it hanging for ever): `join()` reads the sequence itself, on its own
    /// thread, and returns; every result is there afterwards, once.
    func testJoinAfterCloseReadsAFedStreamNobodyIterates() throws {
        let pool = try Pool(processes: 2)
        defer { pool.terminate() }
        let reads = Reads()
        let stream = try pool.imap(
            Square(),
            (0..<2000).lazy.map { x -> Int in
                reads.note(); return x
            })
        pool.close()
        let joined = DispatchSemaphore(value: 0)
        let joiner = Thread {
            try? pool.join(); joined.signal()
        }
        joiner.start()
        XCTAssertEqual(joined.wait(timeout: .now() + 30), .success, "join() after close() waited for the stream's consumer")
        XCTAssertEqual(reads.count, 2000)
        XCTAssertEqual(Array(stream).map { try? $0.get() }, (0..<2000).map { $0 * $0 })
    }
}

/// Throws for input 7; returns the others as they are.
struct FailOnSeven: ParallelFunction {
    struct Seven: Error {}
    func callAsFunction(_ x: Int) throws -> Int {
        if x == 7 { throw Seven() }
        return x
    }
}
