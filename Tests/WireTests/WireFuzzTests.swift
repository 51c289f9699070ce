import Wire
import XCTest

/// Seeded SplitMix64, so that failures reproduce.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

final class WireFuzzTests: XCTestCase {
    /// Decodes `bytes` as every sample type; each attempt must throw or return, never trap.
    /// Returns how many attempts threw.
    @discardableResult
    func decodeAll(_ bytes: [UInt8]) -> Int {
        var failures = 0
        func attempt<T: Decodable>(_ type: T.Type) {
            do { _ = try Wire.decode(T.self, from: bytes) } catch { failures += 1 }
        }
        attempt(Everything.self)
        attempt(Point.self)
        attempt(Shape.self)
        attempt(Dog.self)
        attempt(Custom.self)
        attempt(Tree.self)
        attempt([Double].self)
        attempt([String: [Int?]].self)
        attempt(String.self)
        return failures
    }

    func testTruncationAtEveryLengthThrows() throws {
        let samples: [[UInt8]] = [
            try Wire.encode(Everything()),
            try Wire.encode(Shape.group([.labeled("x", 1), .maybe(.empty)])),
            try Wire.encode(Custom(values: [1, 2, 3], label: "c")),
        ]
        for sample in samples {
            for length in 0..<sample.count {
                let prefix = Array(sample.prefix(length))
                XCTAssertThrowsError(try Wire.decode(Everything.self, from: prefix))
                decodeAll(prefix)
            }
        }
        // The sample types really decode from their own encodings.
        XCTAssertEqual(try Wire.decode(Everything.self, from: samples[0]), Everything())
    }

    func testRandomCorruptionsNeverCrash() throws {
        var random = SplitMix64(state: 0x5EED)
        let samples: [[UInt8]] = [
            try Wire.encode(Everything()),
            try Wire.encode(Point(x: 1, y: 2, z: 3)),
            try Wire.encode(Shape.group([.circle(radius: 1), .maybe(nil)])),
            try Wire.encode(Dog(name: "a", breed: "b", friend: Dog(name: "c", breed: "d"))),
            try Wire.encode(Custom(values: [7, 8], label: "q")),
            try Wire.encode(Tree.chain(depth: 5)),
            try Wire.encode(["k": [1, nil, 3]] as [String: [Int?]]),
        ]
        let deadline = ContinuousClock.now + .seconds(5)
        var threw = 0
        for round in 0..<1_000 {
            var bytes = samples[round % samples.count]
            switch round % 5 {
            case 0: // flip a few bits
                for _ in 0...Int.random(in: 0...3, using: &random) {
                    let index = Int.random(in: 0..<bytes.count, using: &random)
                    bytes[index] ^= 1 << UInt8.random(in: 0...7, using: &random)
                }
            case 1: // truncate
                bytes.removeLast(Int.random(in: 1...bytes.count, using: &random))
            case 2: // a huge varint length or count somewhere
                let index = Int.random(in: 0..<bytes.count, using: &random)
                let huge: [UInt8] = [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F]
                bytes.replaceSubrange(index..<min(index + 2, bytes.count), with: huge)
            case 3: // random byte strings
                bytes = (0..<Int.random(in: 0...64, using: &random)).map { _ in UInt8.random(in: 0...255, using: &random) }
            default: // overwrite a byte with an edge value
                let index = Int.random(in: 0..<bytes.count, using: &random)
                bytes[index] = [0, 1, 0x7F, 0x80, 0xFF].randomElement(using: &random)!
            }
            threw += decodeAll(bytes)
            XCTAssertLessThan(ContinuousClock.now, deadline, "fuzzing is too slow (round \(round))")
            if ContinuousClock.now > deadline { break }
        }
        // Most corrupted messages are rejected (a decode that succeeds is allowed).
        XCTAssertGreaterThan(threw, 1_000 * 9 / 2)
    }
}
