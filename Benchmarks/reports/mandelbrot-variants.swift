// Mandelbrot 1600 × 1200 × 256 variants rendered into one kept buffer, interleaved in one
// process (each round runs every variant once), thread CPU time; every run's Σn checked.
// Prints per variant the median [min–max] milliseconds and the median [min–max] of the
// per-round ratio to the first variant. Used for Benchmarks/reports/kernels-best-c-2.md,
// "Session 13: Mandelbrot", with copies of Sources/Kernels/Mandelbrot.swift whose struct is
// renamed (one copy per variant; `import KernelsSupport` dropped, the header given instead):
//
//   git show 1a46614:Sources/Kernels/Mandelbrot.swift | sed -e '/^import KernelsSupport/d' \
//       -e 's/struct Mandelbrot:/struct Before:/' > Before.swift
//   sed -e '/^import KernelsSupport/d' -e 's/struct Mandelbrot:/struct After:/' \
//       Sources/Kernels/Mandelbrot.swift > After.swift
//   swiftc -O -target-cpu native -parse-as-library \
//       -import-objc-header Sources/KernelsSupport/include/KernelsSupport.h \
//       Benchmarks/reports/mandelbrot-variants.swift Before.swift After.swift -o variants
//   nice -n -10 ./variants 15
//
// (`-import-objc-header` compiles the header of the checkout for both copies: Before uses
// none of what After added.) Another variant: one more copy, one more line in `variants`.
import Glibc

func cpuSeconds() -> Double {
    var ts = timespec()
    guard clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) == 0 else { fatalError("clock_gettime") }
    return Double(ts.tv_sec) + 1e-9 * Double(ts.tv_nsec)
}

@_optimize(none) func opaque<T>(_ value: T) -> T { value }

/// Renders into the kept buffer and returns nil, or returns a new array (then checked
/// instead of the buffer).
typealias Render = (UnsafeMutableBufferPointer<UInt16>) -> [UInt16]?
let variants: [(String, Render)] = [
    (
        "before",
        {
            opaque(Before()).render(0..<1200, into: $0); return nil
        }
    ),
    (
        "after",
        {
            opaque(After()).render(0..<1200, into: $0); return nil
        }
    ),
    // A new array each run, the previous one freed after the next is made (as
    // kernels-bench keeps its last result): past the first runs malloc hands out memory it
    // had, whose pages are mapped already.
    ("after, new array", { _ in opaque(After()).serial() }),
]

@main
struct MandelbrotVariants {
    static func main() {
        let rounds = CommandLine.arguments.dropFirst().first.flatMap { Int($0) } ?? 15
        let image = UnsafeMutableBufferPointer<UInt16>.allocate(capacity: 1600 * 1200)
        image.initialize(repeating: 0)
        var times: [String: [Double]] = [:]
        var kept: [String: [UInt16]] = [:]
        for _ in 0..<rounds {
            for (name, render) in variants {
                let start = cpuSeconds()
                let array = render(image)
                times[name, default: []].append(cpuSeconds() - start)
                let sum =
                    if let array { array.reduce(0) { $0 &+ Int($1) } } else { image.reduce(0) { $0 &+ Int($1) } }
                kept[name] = array
                precondition(sum == 113_169_525, "\(name): Σn = \(sum)")
            }
        }
        func rounded(_ x: Double) -> Double { (x * 1000).rounded() / 1000 }
        let base = times[variants[0].0]!
        for (name, _) in variants {
            let t = times[name]!.sorted()
            let r = zip(times[name]!, base).map { $0 / $1 }.sorted()
            print(
                "\(name): \(rounded(t[t.count / 2] * 1e3)) ms [\(rounded(t[0] * 1e3))–\(rounded(t[t.count - 1] * 1e3))],",
                "ratio \(rounded(r[r.count / 2])) [\(rounded(r[0]))–\(rounded(r[r.count - 1]))]")
        }
    }
}
