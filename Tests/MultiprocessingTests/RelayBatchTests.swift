#if MPI
import Wire
import XCTest
@testable import Multiprocessing

/// The batches of relay messages between rank 0 and a worker rank (`RelayBatch`), without MPI:
/// what goes in comes out in order and byte for byte, a lone message travels as itself, the
/// limit is kept, and a damaged batch is refused rather than read past its end.
final class RelayBatchTests: XCTestCase {
    private func message(_ kind: UInt8, local: Int, body: [UInt8]) -> [UInt8] {
        var writer = WireWriter()
        writer.write(RelayEnvelope.word(kind, pool: 7, local: local))
        body.withUnsafeBytes { writer.writeRaw($0) }
        return writer.bytes
    }

    private func sent(_ batch: inout RelayBatch) -> [[UInt8]] {
        var out: [[UInt8]] = []
        batch.flush { out.append(Array($0)) }
        return out
    }

    private func unpacked(_ bytes: [UInt8]) throws -> [[UInt8]] {
        var parts: [[UInt8]] = []
        try bytes.withUnsafeBytes { raw in try RelayBatch.forEach(in: raw) { parts.append(Array($0)) } }
        return parts
    }

    func testMessagesComeOutInOrderByteForByte() throws {
        var batch = RelayBatch(pool: 7, limit: 4096)
        let messages = (0..<20).map { message(RelayEnvelope.Up.message.rawValue, local: $0 % 3, body: Array(repeating: UInt8($0), count: $0)) }
        for message in messages { message.withUnsafeBytes { batch.append($0) } }
        XCTAssertEqual(batch.count, 20)
        let out = sent(&batch)
        XCTAssertEqual(out.count, 1, "one MPI message for the whole round")
        XCTAssertEqual(RelayEnvelope.read(out[0].withUnsafeBytes { UnsafeRawBufferPointer(rebasing: $0[...]) })?.kind, RelayBatch.kind)
        XCTAssertEqual(out[0].withUnsafeBytes { RelayEnvelope.read($0)?.pool }, 7)
        XCTAssertEqual(try unpacked(out[0]), messages)
        XCTAssertTrue(batch.isEmpty, "a flush empties the batch")
        XCTAssertEqual(sent(&batch).count, 0, "an empty batch sends nothing")
    }

    func testEnvelopeAndBodyAppendEqualsWholeMessage() throws {
        var batch = RelayBatch(pool: 7, limit: 4096)
        let body: [UInt8] = [1, 2, 3, 4, 5]
        body.withUnsafeBytes { batch.append(envelope: RelayEnvelope.word(RelayEnvelope.Up.message.rawValue, pool: 7, local: 2), body: $0) }
        message(RelayEnvelope.Up.ended.rawValue, local: 1, body: [9]).withUnsafeBytes { batch.append($0) }
        XCTAssertEqual(
            try unpacked(sent(&batch)[0]),
            [
                message(RelayEnvelope.Up.message.rawValue, local: 2, body: body),
                message(RelayEnvelope.Up.ended.rawValue, local: 1, body: [9]),
            ])
    }

    func testALoneMessageTravelsAsItself() {
        var batch = RelayBatch(pool: 7, limit: 4096)
        let lone = message(RelayEnvelope.Down.forward.rawValue, local: 1, body: [MasterMessage.chunk.rawValue, 42])
        lone.withUnsafeBytes { batch.append($0) }
        XCTAssertEqual(sent(&batch), [lone], "no batch envelope around a single message: the latency path is unchanged")
    }

    func testOverflowIsAnnouncedBeforeTheLimit() {
        var batch = RelayBatch(pool: 7, limit: 100)
        XCTAssertFalse(batch.wouldOverflow(adding: 500), "a first message never overflows: it is sent alone")
        let part = message(RelayEnvelope.Up.message.rawValue, local: 0, body: Array(repeating: 1, count: 30))
        part.withUnsafeBytes { batch.append($0) }
        part.withUnsafeBytes { batch.append($0) }
        XCTAssertTrue(batch.wouldOverflow(adding: part.count), "8 + 2 × (4 + 38) + 4 + 38 > 100")
        XCTAssertEqual(sent(&batch).first?.count, 8 + 2 * (4 + part.count))
    }

    func testDamagedBatchIsRefused() throws {
        var batch = RelayBatch(pool: 7, limit: 4096)
        for local in 0..<3 { message(RelayEnvelope.Up.message.rawValue, local: local, body: [1, 2, 3]).withUnsafeBytes { batch.append($0) } }
        let whole = sent(&batch)[0]
        XCTAssertThrowsError(try unpacked(Array(whole.dropLast(2)))) { XCTAssertTrue("\($0)".contains("ends inside a message")) }
        var lying = whole
        lying.withUnsafeMutableBytes { $0.storeBytes(of: UInt32(1_000).littleEndian, toByteOffset: 8, as: UInt32.self) }
        XCTAssertThrowsError(try unpacked(lying))
    }

    func testMessagesCanBeChangedInPlace() throws {
        // The rank turns each forwarded message's envelope into its local ring's frame header.
        var batch = RelayBatch(pool: 7, limit: 4096)
        for local in 0..<2 { message(RelayEnvelope.Down.forward.rawValue, local: local, body: [3, 4]).withUnsafeBytes { batch.append($0) } }
        var whole = sent(&batch)[0]
        try whole.withUnsafeMutableBytes { raw in
            try RelayBatch.forEach(in: raw) { $0.storeBytes(of: UInt64($0.count - 8).littleEndian, toByteOffset: 0, as: UInt64.self) }
        }
        XCTAssertEqual(try unpacked(whole), Array(repeating: [2, 0, 0, 0, 0, 0, 0, 0, 3, 4], count: 2))
    }

    /// No message kind is the batch's: a rank's first `notStarted` (given kind 6 at first) was read
    /// by rank 0 as a broken batch, which ended the pool.
    func testNoMessageKindIsTheBatchKind() {
        for kind in UInt8.min...UInt8.max where RelayEnvelope.Up(rawValue: kind) != nil || RelayEnvelope.Down(rawValue: kind) != nil {
            XCTAssertNotEqual(kind, RelayBatch.kind)
        }
    }

    func testARefusedStartCarriesItsErrnoAndWhy() throws {
        var writer = WireWriter()
        RelayEnvelope.notStarted(pool: 3, local: 2, errno: EAGAIN, why: "cannot start a replacement worker on rank 1: fork", into: &writer)
        let (kind, local, refusal) = writer.bytes.withUnsafeBytes { raw in
            let envelope = RelayEnvelope.read(raw)
            return (envelope?.kind, envelope?.local, RelayEnvelope.readRefusal(UnsafeRawBufferPointer(rebasing: raw[RelayEnvelope.size...])))
        }
        XCTAssertEqual(kind, RelayEnvelope.Up.notStarted.rawValue)
        XCTAssertEqual(local, 2)
        XCTAssertEqual(refusal.errno, EAGAIN)
        XCTAssertEqual(refusal.why, "cannot start a replacement worker on rank 1: fork")
        XCTAssertTrue(PoolEngine.mayPass(RemoteStartFailure(errno: refusal.errno, description: refusal.why)))
        XCTAssertFalse(PoolEngine.mayPass(RemoteStartFailure(errno: 0, description: "no such program")))
        XCTAssertFalse(PoolEngine.mayPass(RemoteStartFailure(errno: ENOEXEC, description: "not a program")))
    }
}
#endif
