import XCTest

@testable import Multiprocessing

/// A decode context made once and entered for each chunk (`AttachmentContext.Receiver`, a
/// worker's `WorkerRuntime`) answers as a fresh `receiving` context does, every time, nested
/// or not, and leaves no context behind.
final class AttachmentReceiverTests: XCTestCase {
    func testAReceiverAnswersEachTimeItIsEnteredAndLeavesNothingBehind() throws {
        let asked = SegmentID(high: 7, low: 9)
        let receiver = AttachmentContext.Receiver { id in id == asked ? 42 : nil }
        XCTAssertNil(try AttachmentContext.descriptor(for: asked), "a context before any was entered")
        for _ in 0..<3 {
            XCTAssertEqual(try receiver.run { try AttachmentContext.descriptor(for: asked) }, 42)
            XCTAssertNil(try AttachmentContext.descriptor(for: asked), "the receiver's context outlived its run")
        }
        // Entered inside another context (a decode inside a task), then that one again.
        let other: (SegmentID) throws -> Int32? = { _ in 5 }
        let inner = try AttachmentContext.receiving(other) {
            try receiver.run { try AttachmentContext.descriptor(for: asked) }
        }
        XCTAssertEqual(inner, 42)
        let outer = try receiver.run {
            try AttachmentContext.receiving(other) { try AttachmentContext.descriptor(for: asked) }
        }
        XCTAssertEqual(outer, 5)
        let after = try receiver.run {
            _ = try AttachmentContext.receiving(other) { try AttachmentContext.descriptor(for: asked) }
            return try AttachmentContext.descriptor(for: asked)
        }
        XCTAssertEqual(after, 42, "the receiver's context was not restored after a nested one")
    }
}
