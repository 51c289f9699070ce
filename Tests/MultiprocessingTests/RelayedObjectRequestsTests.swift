import XCTest

@testable import Multiprocessing

/// A worker rank's account of the object requests it relays (`RelayedObjectRequests`), driven
/// directly: which answers go to a local worker, which go back to rank 0 because the process
/// that asked ended before it read them, and which are dropped.
final class RelayedObjectRequestsTests: XCTestCase {
    private var requests = RelayedObjectRequests()

    private func send(pool: UInt16 = 1, index: Int, _ request: [UInt8]) -> UInt32 {
        request.withUnsafeBytes { requests.send(pool: pool, index: index, request: $0) }
    }

    func testAnAnswerGoesToTheLiveWorkerThatAsked() {
        let first = send(index: 0, [1])
        let second = send(index: 1, [2])
        XCTAssertNotEqual(first, second, "two processes, two names")
        XCTAssertEqual(RelayedObjectRequests.pool(of: first), 1)
        XCTAssertEqual(requests.answered(second, ok: true), .deliver(index: 1, request: [2]))
        XCTAssertEqual(requests.answered(first, ok: false), .deliver(index: 0, request: [1]))
        XCTAssertEqual(requests.answered(first, ok: true), .drop, "one answer per request")
        XCTAssertEqual(send(index: 0, [3]), first, "the same process keeps its name")
    }

    func testAnAnswerToAnEndedProcessGoesBackAndItsReplacementIsAnotherProcess() {
        let dead = send(index: 0, [7])
        let ended = requests.ended(pool: 1, index: 0, readPosition: 0)
        XCTAssertEqual(ended.local, dead)
        XCTAssertNil(ended.unread)
        let replacement = send(index: 0, [8])
        XCTAssertNotEqual(replacement, dead)
        // Rank 0 may answer the replacement first (the dead one's request was parked).
        XCTAssertEqual(requests.answered(replacement, ok: true), .deliver(index: 0, request: [8]))
        XCTAssertEqual(requests.answered(dead, ok: true), .giveBack(request: [7]))
        // A `.failed` answer (rank 0 dropped the request) handed nothing over.
        let other = send(index: 1, [9])
        _ = requests.ended(pool: 1, index: 1, readPosition: 0)
        XCTAssertEqual(requests.answered(other, ok: false), .drop)
        XCTAssertNil(requests.ended(pool: 1, index: 2, readPosition: 0).local, "never asked: unknown to rank 0")
    }

    func testAnAnswerWrittenButNeverReadGoesBack() {
        let local = send(index: 0, [1])
        XCTAssertEqual(requests.answered(local, ok: true), .deliver(index: 0, request: [1]))
        requests.delivered(local, index: 0, end: 100, request: [1], answer: [42])
        XCTAssertTrue(requests.hasUnread)
        requests.confirmRead(pool: 1) { _ in 99 }
        XCTAssertTrue(requests.hasUnread, "one byte of it still unread")
        let ended = requests.ended(pool: 1, index: 0, readPosition: 99)
        XCTAssertEqual(ended.local, local)
        XCTAssertEqual(ended.unread?.request, [1])
        XCTAssertEqual(ended.unread?.answer, [42])
        XCTAssertFalse(requests.hasUnread)
    }

    func testAnAnswerReadIsForgotten() {
        let local = send(index: 0, [1])
        _ = requests.answered(local, ok: true)
        requests.delivered(local, index: 0, end: 100, request: [1], answer: [42])
        requests.confirmRead(pool: 1) { _ in 100 }
        XCTAssertFalse(requests.hasUnread)
        XCTAssertNil(requests.ended(pool: 1, index: 0, readPosition: 0).unread)
        // Read, or asked again (it asks again only after reading its answer): forgotten.
        let next = send(index: 1, [2])
        _ = requests.answered(next, ok: true)
        requests.delivered(next, index: 1, end: 50, request: [2], answer: [43])
        _ = send(index: 1, [3])
        XCTAssertFalse(requests.hasUnread)
        XCTAssertNil(requests.ended(pool: 1, index: 1, readPosition: 0).unread)
    }

    func testLargeRequestsAreNotKeptAndClosedPoolsDropTheirAnswers() {
        let large = send(index: 0, [UInt8](repeating: 1, count: RelayedObjectRequests.keptRequestLimit + 1))
        XCTAssertEqual(requests.answered(large, ok: true), .deliver(index: 0, request: nil))
        let dead = send(index: 0, [UInt8](repeating: 1, count: RelayedObjectRequests.keptRequestLimit + 1))
        _ = requests.ended(pool: 1, index: 0, readPosition: 0)
        XCTAssertEqual(requests.answered(dead, ok: true), .drop, "nothing kept to give back (a put)")
        let closing = send(pool: 2, index: 0, [1])
        let staying = send(pool: 3, index: 0, [1])
        requests.closed(pool: 2)
        XCTAssertEqual(requests.answered(closing, ok: true), .drop)
        XCTAssertEqual(requests.answered(staying, ok: true), .deliver(index: 0, request: [1]))
    }
}
