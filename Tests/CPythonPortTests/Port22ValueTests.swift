// Round 22: values of every kind arrive as they were sent (CPython's _TestRemoteManager.test_remote
// values — None, True, 2.25, non-ASCII text, bytes — and _TestConnection.test_connection's
// [1, 2.25, None]), through a Pipe, a Queue, a SimpleQueue and a manager's queue and dict, sent
// by a child on every start method, with the values Swift adds: nested optionals, NaN and
// −0.0, extreme integers, empty and large collections, enums with payloads.
//
// CPython test                                          → Swift test (Port22ValueTests)
// _TestRemoteManager.test_remote / test_connection
//   (a value sent by a child is received equal)          → testEdgeValuesThroughPipesAndQueues
//                                                          testEdgeValuesThroughManagerContainers

import Foundation
import Multiprocessing
import XCTest

#if canImport(Glibc)
import Glibc
#endif

enum Port22Shape: Codable, Equatable, Sendable {
    case none
    case point(x: Double, y: Double)
    case named(String, [Int?])
    indirect case nested(Port22Shape?)
}

final class Port22Box2: Codable, Equatable, @unchecked Sendable {
    var value: Int?
    var children: [Port22Box2]
    init(value: Int?, children: [Port22Box2]) { self.value = value; self.children = children }
    static func == (a: Port22Box2, b: Port22Box2) -> Bool { a.value == b.value && a.children == b.children }
}

struct Port22Values: Codable, Equatable, Sendable {
    var doubleOptional: [Int??] = [.some(nil), nil, .some(.some(1)), .some(.some(0))]
    var tripleOptional: String??? = .some(.some(nil))
    var optionalString: String? = nil
    var emptyString = ""
    var nul = "a\0b\0"
    var unicode = ["hallå världen", "привіт світ", "🇸🇪👩‍👩‍👧", "e\u{301}"]
    var bytes: [UInt8] = Array("hallå världen".utf8) + [0, 255]
    var extremes: [Int] = [Int.min, Int.max, 0, -1]
    var unsigned: [UInt64] = [UInt64.max, 0]
    var smalls: [Int8] = [Int8.min, Int8.max]
    var int16s: [Int16] = [Int16.min, -1, Int16.max]
    var doubles: [Double] = [2.25, -0.0, .infinity, -.infinity, .leastNonzeroMagnitude, .greatestFiniteMagnitude]
    var nanBits: UInt64 = Double.nan.bitPattern
    var floats: [Float] = [1.5, -0.0, .infinity]
    var bools: [Bool] = [true, false, true]
    var optionalBools: [Bool?] = [true, nil, false]
    var optionalDoubles: [Double?] = [nil, 2.25, nil]
    var dict: [Int: String] = [1: "one", -5: "", Int.max: "max"]
    var stringKeys: [String: [Int]] = ["": [], "a": [1, 2]]
    var set: Set<String> = ["x", "y", ""]
    var emptyArray: [Int] = []
    var emptyDict: [String: Int] = [:]
    var nestedEmpty: [[Int]] = [[], [1], []]
    var shapes: [Port22Shape] = [.none, .point(x: 1, y: -0.0), .named("n", [nil, 1]), .nested(.nested(nil)), .nested(Port22Shape.none)]
    var tree = Port22Box2(value: nil, children: [Port22Box2(value: 1, children: []), Port22Box2(value: nil, children: [])])
    var big: [Int32] = Array(0..<300_000)
    var bigStrings: [String] = (0..<2000).map { String(repeating: "s", count: $0 % 17) }
    var date = Date(timeIntervalSince1970: 1_234_567_890.125)
    var data = Data([0, 1, 2, 255])
    var url = URL(string: "https://example.com/a?b=c")!
    var decimal = Decimal(string: "3.14159265358979323846")!
    var uuid = UUID(uuidString: "E621E1F8-C36C-495A-93FC-0C247A3E6E5F")!
}

/// Sends the values through every channel it is given.
struct Port22SendValues: ParallelFunction {
    var connection: Connection
    var queue: Queue<Port22Values>
    var simple: SimpleQueue<Port22Values>
    var managerQueue: QueueProxy<Port22Values>
    var managerDict: DictProxy<String, Port22Values>
    var managerList: ListProxy<Int??>
    func callAsFunction(_: Void) throws {
        let values = Port22Values()
        try connection.send(values)
        try queue.put(values)
        try simple.put(values)
        try managerQueue.put(values)
        try managerDict.set("v", values)
        for v in values.doubleOptional { try managerList.append(v) }
    }
}

final class Port22ValueTests: PortTestCase {
    func testEdgeValuesThroughPipesAndQueues() throws {
        let manager = try Manager()
        defer { manager.shutdown() }
        // Here, in this process, first.
        let local = Port22Values()
        let (a, b) = try Pipe()
        let sender = TestThread { try a.send(local) } // larger than the pipe's buffer
        let back = try b.recv(Port22Values.self)
        XCTAssertTrue(try sender.wait(30))
        XCTAssertEqual(back, local, "round trip in this process")
        XCTAssertEqual(back.doubleOptional.map { $0.map { $0 == nil } }, local.doubleOptional.map { $0.map { $0 == nil } })
        XCTAssertEqual(back.doubleOptional.count, 4)
        XCTAssertEqual(back.tripleOptional.map { $0.map { $0 == nil } }, .some(.some(true)), "String??? .some(.some(nil))")
        XCTAssertEqual(back.doubles.map(\.bitPattern), local.doubles.map(\.bitPattern))
        try forEachMethod { method in
            let (mine, theirs) = try Pipe()
            let target = Port22SendValues(
                connection: theirs, queue: try Queue<Port22Values>(bufferSize: 8 << 20),
                simple: try SimpleQueue<Port22Values>(bufferSize: 8 << 20),
                managerQueue: try manager.queue(of: Port22Values.self),
                managerDict: try manager.dict(String.self, Port22Values.self),
                managerList: try manager.list(of: Int??.self))
            let p = try started(target, method)
            defer { if p.isAlive { try? p.kill() }; _ = try? p.join(timeout: 20) }
            XCTAssertTrue(try mine.poll(timeout: 60), "\(method): nothing on the pipe")
            let received: [(String, Port22Values?)] = [
                ("pipe", try mine.recv(Port22Values.self)),
                ("queue", try target.queue.get(timeout: 60)),
                ("simple", try target.simple.get(timeout: 60)),
                ("managerQueue", try target.managerQueue.get(timeout: 60)),
            ]
            try joinOrKill(p)
            XCTAssertEqual(p.exitCode, 0, "\(method)")
            let all = received + [("managerDict", try target.managerDict.get("v"))]
            for (channel, value) in all {
                guard let value else { XCTFail("\(method) \(channel): nil"); continue }
                XCTAssertEqual(value, local, "\(method) \(channel)")
                XCTAssertEqual(value.doubleOptional.count, 4, "\(method) \(channel)")
                XCTAssertEqual(
                    value.doubleOptional.map { $0.map { $0 == nil } }, [.some(true), nil, .some(false), .some(false)],
                    "\(method) \(channel): Int?? values")
                XCTAssertEqual(value.tripleOptional.map { $0.map { $0 == nil } }, .some(.some(true)), "\(method) \(channel): String???")
                XCTAssertTrue(Double(bitPattern: value.nanBits).isNaN)
                XCTAssertEqual(value.doubles.map(\.bitPattern), local.doubles.map(\.bitPattern), "\(method) \(channel): -0.0 etc.")
            }
            let list = try target.managerList.items()
            XCTAssertEqual(list.count, 4, "\(method) managerList")
            XCTAssertEqual(list.map { $0.map { $0 == nil } }, [.some(true), nil, .some(false), .some(false)], "\(method) managerList Int?? items: \(list)")
        }
    }
}
