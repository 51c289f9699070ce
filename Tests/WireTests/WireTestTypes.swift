import Wire

struct Point: Codable, Hashable {
    var x: Int
    var y: Int
    var z: Int
}

enum Color: String, Codable, Equatable {
    case red, green
}

indirect enum Shape: Codable, Equatable {
    case empty
    case circle(radius: Double)
    case rect(width: Double, height: Double)
    case labeled(String, Int)
    case group([Shape])
    case maybe(Shape?)
}

struct Everything: Codable, Equatable {
    var int = -42
    var int8: Int8 = -8
    var int16: Int16 = -1600
    var int32: Int32 = .min
    var int64: Int64 = .max
    var uint: UInt = .max
    var uint8: UInt8 = 255
    var uint16: UInt16 = 65535
    var uint32: UInt32 = 123_456
    var uint64: UInt64 = 1 << 63
    var float: Float = 3.5
    var double: Double = -.pi
    var yes = true
    var no = false
    var text = "héllo, 世界 👩‍👩‍👧 \u{0}end"
    var empty = ""
    var some: Int? = 7
    var none: Int? = nil
    var nested: Int?? = .some(nil)
    var nestedSome: String?? = "deep"
    var doubles: [Double] = [1.5, -0.0, .infinity]
    var bools: [Bool] = [true, false, true]
    var optionals: [Int?] = [1, nil, 3, nil]
    var strings: [String] = ["a", "", "ß"]
    var bytes: [UInt8] = [0, 1, 255]
    var floats: ContiguousArray<Float> = [1, 2, 3]
    var byName: [String: Int] = ["one": 1, "two": 2, "": 0]
    var byNumber: [Int: String] = [1: "one", -2: "minus two"]
    var byPoint: [Point: [Int]] = [Point(x: 1, y: 2, z: 3): [4, 5]]
    var set: Set<String> = ["x", "y"]
    var point = Point(x: 1, y: -2, z: 3)
    var points = [Point(x: 0, y: 0, z: 0), Point(x: .max, y: .min, z: 9)]
    var shapes: [Shape] = [
        .empty, .circle(radius: 2), .rect(width: 3, height: 4), .labeled("l", 5),
        .group([.empty, .maybe(nil), .maybe(.circle(radius: 1))]),
    ]
    var color = Color.green
    var matrix: [[Double]] = [[1, 2], [], [3]]
}

class Animal: Codable {
    var name: String
    init(name: String) { self.name = name }
}

final class Dog: Animal, Equatable {
    var breed: String
    var friend: Dog?

    init(name: String, breed: String, friend: Dog? = nil) {
        self.breed = breed
        self.friend = friend
        super.init(name: name)
    }

    enum CodingKeys: String, CodingKey { case breed, friend }

    required init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        breed = try container.decode(String.self, forKey: .breed)
        friend = try container.decodeIfPresent(Dog.self, forKey: .friend)
        try super.init(from: container.superDecoder())
    }

    override func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(breed, forKey: .breed)
        try container.encodeIfPresent(friend, forKey: .friend)
        try super.encode(to: container.superEncoder())
    }

    static func == (a: Dog, b: Dog) -> Bool {
        a.name == b.name && a.breed == b.breed && a.friend == b.friend
    }
}

/// Hand-written coding with nested keyed and unkeyed containers and an integer key.
struct Custom: Codable, Equatable {
    var values: [Int]
    var label: String

    enum Keys: Int, CodingKey { case values = 1, meta = -7 }
    enum MetaKeys: String, CodingKey { case label }

    init(values: [Int], label: String) {
        self.values = values
        self.label = label
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: Keys.self)
        var list = container.nestedUnkeyedContainer(forKey: .values)
        for value in values { try list.encode(value) }
        var meta = container.nestedContainer(keyedBy: MetaKeys.self, forKey: .meta)
        try meta.encode(label, forKey: .label)
    }

    init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: Keys.self)
        var list = try container.nestedUnkeyedContainer(forKey: .values)
        var values: [Int] = []
        while !list.isAtEnd { values.append(try list.decode(Int.self)) }
        self.values = values
        let meta = try container.nestedContainer(keyedBy: MetaKeys.self, forKey: .meta)
        label = try meta.decode(String.self, forKey: .label)
    }
}

/// A recursive type, to test the nesting limit.
struct Tree: Codable, Equatable {
    var children: [Tree]

    static func chain(depth: Int) -> Tree {
        var tree = Tree(children: [])
        for _ in 0..<depth { tree = Tree(children: [tree]) }
        return tree
    }
}

struct UserError: Error, Equatable {}

struct FailsToEncode: Encodable {
    func encode(to encoder: any Encoder) throws { throw UserError() }
}

struct Wrapper<T: Codable & Equatable>: Codable, Equatable {
    var before = 1
    var value: T
    var after = "after"
}
