import Multiprocessing
import XCTest

#if canImport(Glibc)
import Glibc
#endif

struct Square: ParallelFunction {
    func callAsFunction(_ x: Int) -> Int { x * x }
}

struct Affine: ParallelFunction {
    var scale: Double
    var offset: Double
    func callAsFunction(_ x: Double) -> Double { x * scale + offset }
}

struct Boom: Error, CustomStringConvertible {
    var value: Int
    var description: String { "boom at \(value)" }
}

/// Throws for inputs divisible by `divisor`.
struct FailOnMultiple: ParallelFunction {
    var divisor: Int
    func callAsFunction(_ x: Int) throws -> Int {
        if x % divisor == 0 { throw Boom(value: x) }
        return x + 1
    }
}

/// Kills its own process for input `victim` (signal, trap or exit).
struct DieOn: ParallelFunction {
    enum Way: String, Codable { case sigkill, segfault, fatal, exit, raiseSegv }
    var victim: Int
    var way: Way
    /// If set, the victim writes the monotonic time (ns) to this file just before it dies.
    var stamp: String? = nil
    func callAsFunction(_ x: Int) -> Int {
        if x == victim {
            if let stamp, let file = fopen(stamp, "w") {
                var now = timespec()
                clock_gettime(CLOCK_MONOTONIC, &now)
                fputs(String(UInt64(now.tv_sec) * 1_000_000_000 + UInt64(now.tv_nsec)), file)
                fclose(file)
            }
            switch way {
            case .sigkill: kill(getpid(), SIGKILL)
            case .segfault: UnsafeMutablePointer<Int>(bitPattern: 16)!.pointee = 1
            case .fatal: fatalError("deliberate crash in a test worker")
            case .exit: _exit(3)
            case .raiseSegv: raise(SIGSEGV) // sent, not a fault: nothing happens again on return
            }
        }
        return x
    }
}

struct Sleep: ParallelFunction {
    var seconds: Double
    func callAsFunction(_ x: Int) -> Int {
        usleep(UInt32(seconds * 1_000_000))
        return x
    }
}

struct WorkerPID: ParallelFunction {
    func callAsFunction(_ x: Int) -> Int32 { getpid() }
}

struct Record: Codable, Equatable, Sendable {
    var name: String
    var values: [Double]
    var tag: Tag?
    enum Tag: Codable, Equatable, Sendable { case small, labelled(String), pair(Int, Int) }
}

struct Describe: ParallelFunction {
    func callAsFunction(_ r: Record) -> Record {
        Record(name: r.name.uppercased(), values: r.values.map { $0 * 2 }, tag: r.tag)
    }
}

struct NoResult: ParallelFunction {
    func callAsFunction(_ x: Int) {}
}

nonisolated(unsafe) var workerGlobal = 0

struct SetGlobal: ParallelFunction {
    var value: Int
    func callAsFunction(_: Void) throws {
        if value < 0 { throw Boom(value: value) }
        workerGlobal = value
    }
}

struct ReadGlobal: ParallelFunction {
    func callAsFunction(_ x: Int) -> Int { workerGlobal + x }
}

struct Add: ParallelFunction {
    func callAsFunction(_ args: Arguments<Int, Int>) -> Int {
        let (a, b) = args.values
        return a + b
    }
}

struct Label: ParallelFunction {
    func callAsFunction(_ args: Arguments<String, Int, Double>) -> String {
        let (name, count, weight) = args.values
        return "\(name):\(count):\(weight)"
    }
}

/// A sequence that counts how many elements were taken from it.
final class CountingSequence: Sequence, @unchecked Sendable {
    let lock = NSLockLike()
    private(set) var taken = 0
    let limit: Int?
    init(limit: Int? = nil) { self.limit = limit }
    func makeIterator() -> AnyIterator<Int> {
        var next = 0
        return AnyIterator { [self] in
            if let limit, next >= limit { return nil }
            lock.withLock { taken += 1 }
            defer { next += 1 }
            return next
        }
    }
    var count: Int { lock.withLock { taken } }
}

final class NSLockLike: @unchecked Sendable {
    private var mutex = pthread_mutex_t()
    init() { pthread_mutex_init(&mutex, nil) }
    func withLock<T>(_ body: () -> T) -> T {
        pthread_mutex_lock(&mutex)
        defer { pthread_mutex_unlock(&mutex) }
        return body()
    }
}

/// Writes input² into slot `input` of a shared segment and returns what it read there first.
struct WriteSquareIntoSegment: ParallelFunction {
    var segment: SharedSegment
    func callAsFunction(_ i: Int) -> Int {
        let before = segment.base.load(fromByteOffset: i * 8, as: Int.self)
        segment.base.storeBytes(of: i * i, toByteOffset: i * 8, as: Int.self)
        return before
    }
}

/// Reads slot `input` of a segment passed as an input rather than a property.
struct ReadSegmentInput: ParallelFunction {
    func callAsFunction(_ input: Arguments<SharedSegment, Int>) -> Int {
        let (segment, i) = input.values
        return segment.base.load(fromByteOffset: i * 8, as: Int.self)
    }
}

/// Reports whether the worker sees an environment variable.
struct SeesVariable: ParallelFunction {
    var name: String
    func callAsFunction(_: Int) -> Bool { getenv(name) != nil }
}

/// A value whose encoding always fails.
struct Unencodable: Codable, Sendable {
    struct Refused: Error, CustomStringConvertible { var description: String { "refused to encode" } }
    init() {}
    init(from decoder: any Decoder) throws {}
    func encode(to encoder: any Encoder) throws { throw Refused() }
}

struct TakesUnencodable: ParallelFunction {
    func callAsFunction(_ x: Unencodable) -> Int { 1 }
}

struct ReturnsUnencodable: ParallelFunction {
    func callAsFunction(_ x: Int) -> Unencodable { Unencodable() }
}

/// A base class that kills the test process if one test runs for more than two minutes,
/// so that a hang fails CI at once instead of at its deadline.
class TimeLimitedTestCase: XCTestCase {
    override func setUp() {
        super.setUp()
        alarm(120)
    }

    override func tearDown() {
        alarm(0)
        super.tearDown()
    }
}

/// Counts bytes and sums a sample of them.
struct ByteStats: ParallelFunction {
    func callAsFunction(_ bytes: [UInt8]) -> [Int] {
        var sample = 0
        for i in stride(from: 0, to: bytes.count, by: 4096) { sample &+= Int(bytes[i]) }
        return [bytes.count, sample]
    }
}

/// Makes `count` bytes, byte i = i mod 251.
struct MakeBytes: ParallelFunction {
    func callAsFunction(_ count: Int) -> [UInt8] {
        (0..<count).map { UInt8($0 % 251) }
    }
}

/// The whole text of a file, read with read(2) until its end. For /proc files: they report
/// size 0, and Foundation's `String(contentsOfFile:)` returns only their first ~4 KiB — in a
/// process with many mappings (late in the suite) /proc/self/maps is far longer, and a test
/// that looked for a mapping there did not find it.
func wholeFile(_ path: String) -> String? {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { return nil }
    defer { close(fd) }
    var bytes: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 1 << 16)
    while true {
        let count = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress!, $0.count) }
        if count < 0 && errno == EINTR { continue }
        guard count >= 0 else { return nil }
        if count == 0 { return String(decoding: bytes, as: UTF8.self) }
        bytes += buffer[..<count]
    }
}
