// kernels-bench: each serial kernel at its reference size; one JSON line per kernel with the
// checksum(s) and the median, min and max wall time of the runs.
//
//   kernels-bench [--runs N] [--png PATH] [pi] [mandelbrot] [matmul] [nbody]
//
// With no kernel named, all four run. `--png` also writes the Mandelbrot image.
import Kernels

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The calling thread's CPU time in seconds: on a shared machine, the time the scheduler gave
/// a run (reported as "cpu" beside the wall times, like the C references).
func cpuSeconds() -> Double {
    var ts = timespec()
    guard clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) == 0 else {
        fatalError("clock_gettime(CLOCK_THREAD_CPUTIME_ID) failed: errno \(errno)")
    }
    return Double(ts.tv_sec) + 1e-9 * Double(ts.tv_nsec)
}

/// Runs `body` `runs` times; the result of the last run, the sorted wall times and the sorted
/// CPU times in seconds.
func timed<R>(runs: Int, _ body: () -> R) -> (result: R, times: [Double], cpu: [Double]) {
    var times: [Double] = [], cpu: [Double] = []
    var result: R? = nil
    let clock = ContinuousClock()
    for _ in 0..<runs {
        let start = clock.now, cpuStart = cpuSeconds()
        result = body()
        let elapsed = clock.now - start
        cpu.append(cpuSeconds() - cpuStart)
        let (seconds, attoseconds) = elapsed.components
        times.append(Double(seconds) + Double(attoseconds) * 1e-18)
    }
    return (result!, times.sorted(), cpu.sorted())
}

/// Hides `value` from the optimiser, so a run cannot be hoisted out of the timing loop.
@_optimize(none)
func opaque<T>(_ value: T) -> T { value }

func median(_ sorted: [Double]) -> Double {
    let count = sorted.count
    return count % 2 == 1 ? sorted[count / 2] : 0.5 * (sorted[count / 2 - 1] + sorted[count / 2])
}

func report(_ kernel: String, _ fields: String, _ times: [Double], cpu: [Double]) {
    print(
        "{\"kernel\":\"\(kernel)\",\"impl\":\"swift\",\(fields),"
            + "\"median\":\(median(times)),\"min\":\(times[0]),\"max\":\(times[times.count - 1]),"
            + "\"runs\":\(times.count),\"cpu\":\(median(cpu))}")
}

var runs = 5
var pngPath: String? = nil
var kernels: [String] = []
var arguments = CommandLine.arguments.dropFirst().makeIterator()
while let argument = arguments.next() {
    switch argument {
    case "--runs":
        guard let value = arguments.next().flatMap({ Int($0) }), value > 0 else {
            fatalError("--runs needs a positive integer")
        }
        runs = value
    case "--png":
        pngPath = arguments.next()
    case "pi", "mandelbrot", "matmul", "nbody":
        kernels.append(argument)
    default:
        fatalError("unknown argument \(argument); kernels: pi mandelbrot matmul nbody")
    }
}
if kernels.isEmpty { kernels = ["pi", "mandelbrot", "matmul", "nbody"] }

for kernel in kernels {
    switch kernel {
    case "pi":
        let problem = MonteCarloPi(samples: 20_000_000, seed: 12345)
        let (hits, times, cpu) = timed(runs: runs) { opaque(problem).serial() }
        report(kernel, "\"hits\":\(hits),\"pi\":\(problem.estimate(hits: hits))", times, cpu: cpu)
    case "mandelbrot":
        let problem = Mandelbrot(width: 1600, height: 1200, maxIterations: 256)
        let (counts, times, cpu) = timed(runs: runs) { opaque(problem).serial() }
        report(kernel, "\"sum\":\(Mandelbrot.checksum(counts))", times, cpu: cpu)
        if let pngPath {
            let rgb = MandelbrotColorMap.rgb(counts, maxIterations: problem.maxIterations)
            do {
                try PNGImage.write(
                    width: problem.width, height: problem.height, pixels: rgb,
                    to: pngPath)
            } catch {
                fatalError("\(error)")
            }
        }
    case "matmul":
        let n = 1024
        let problem = MatrixMultiply.reference(n: n)
        let (c, times, cpu) = timed(runs: runs) { opaque(problem).serial() }
        let (sum, weighted) = MatrixMultiply.checksums(c, n: n)
        let gflops = 2.0 * Double(n * n * n) / times[times.count / 2] * 1e-9
        report(kernel, "\"sum\":\(Int(sum)),\"weighted\":\(Int(weighted)),\"gflops\":\(gflops)", times, cpu: cpu)
    case "nbody":
        let problem = NBody(bodyCount: 4096, steps: 10)
        let (state, times, cpu) = timed(runs: runs) { opaque(problem).serial() }
        report(kernel, "\"kinetic\":\(state.kineticEnergy),\"squares\":\(state.sumOfSquaredPositions)", times, cpu: cpu)
    default:
        break
    }
}
