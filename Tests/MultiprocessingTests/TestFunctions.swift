import Multiprocessing
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
    enum Way: String, Codable { case sigkill, segfault, fatal, exit }
    var victim: Int
    var way: Way
    func callAsFunction(_ x: Int) -> Int {
        if x == victim {
            switch way {
            case .sigkill: kill(getpid(), SIGKILL)
            case .segfault: raise(SIGSEGV)
            case .fatal: fatalError("deliberate crash in a test worker")
            case .exit: _exit(3)
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
