import Benchmark
import Multiprocessing // re-exports Wire

/// A small fixed-size value, as a task's argument often is.
struct Point: Codable, Equatable {
    var x: Double
    var y: Double
    var label: Int32
}

/// A nested record: strings, an optional, an array of structs.
struct Order: Codable, Equatable {
    struct Line: Codable, Equatable {
        var sku: String
        var quantity: Int
        var price: Double
    }
    var id: Int
    var customer: String
    var tags: [String]
    var lines: [Line]
    var note: String?
}

let integers = Array(0..<25_000)
let point = Point(x: 1.5, y: -2.25, label: 7)
let order = Order(
    id: 42, customer: "Ada Lovelace", tags: ["priority", "export"],
    lines: (0..<8).map { Order.Line(sku: "SKU-\($0)", quantity: $0 + 1, price: Double($0) * 9.99) },
    note: nil)

/// A decode that did not give back the encoded value.
struct RoundTripMismatch: Error, CustomStringConvertible {
    var what: String
    var description: String { "decoding \(what) did not give back the encoded value" }
}

/// Decodes `bytes` and throws unless the result is `value`.
func checkRoundTrip<T: Codable & Equatable>(_ value: T, _ bytes: [UInt8], _ what: String) throws {
    guard try Wire.decode(T.self, from: bytes) == value else { throw RoundTripMismatch(what: what) }
}

/// Encode and decode benchmarks for each value; each decode checks its result once per run.
let benchmarks: @Sendable () -> Void = {
    let configuration = Benchmark.Configuration(
        metrics: [.wallClock, .throughput, .mallocCountTotal],
        maxDuration: .seconds(2)
    )
    Benchmark("encode [Int] 25000", configuration: configuration) { benchmark in
        for _ in benchmark.scaledIterations { blackHole(try Wire.encode(integers)) }
    }
    Benchmark("decode [Int] 25000", configuration: configuration) { benchmark in
        let bytes = try Wire.encode(integers)
        for _ in benchmark.scaledIterations { blackHole(try Wire.decode([Int].self, from: bytes)) }
        try checkRoundTrip(integers, bytes, "[Int]")
    }
    Benchmark("encode small struct", configuration: configuration) { benchmark in
        for _ in benchmark.scaledIterations { blackHole(try Wire.encode(point)) }
    }
    Benchmark("decode small struct", configuration: configuration) { benchmark in
        let bytes = try Wire.encode(point)
        for _ in benchmark.scaledIterations { blackHole(try Wire.decode(Point.self, from: bytes)) }
        try checkRoundTrip(point, bytes, "the small struct")
    }
    Benchmark("encode nested record", configuration: configuration) { benchmark in
        for _ in benchmark.scaledIterations { blackHole(try Wire.encode(order)) }
    }
    Benchmark("decode nested record", configuration: configuration) { benchmark in
        let bytes = try Wire.encode(order)
        for _ in benchmark.scaledIterations { blackHole(try Wire.decode(Order.self, from: bytes)) }
        try checkRoundTrip(order, bytes, "the nested record")
    }
}
