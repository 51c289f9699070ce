// kernels-bench: each serial kernel at its reference size; one JSON line per kernel with the
// checksum(s) and the median, min and max wall time of the runs.
//
//   kernels-bench [--runs N] [--png PATH] [pi] [mandelbrot] [matmul] [nbody]
//
// With no kernel named, all four run. `--png` also writes the Mandelbrot image.
import Kernels

/// Runs `body` `runs` times; the result of the last run and the sorted wall times in seconds.
func timed<R>(runs: Int, _ body: () -> R) -> (result: R, times: [Double]) {
    var times: [Double] = []
    var result: R? = nil
    let clock = ContinuousClock()
    for _ in 0..<runs {
        let start = clock.now
        result = body()
        let elapsed = clock.now - start
        let (seconds, attoseconds) = elapsed.components
        times.append(Double(seconds) + Double(attoseconds) * 1e-18)
    }
    return (result!, times.sorted())
}

/// Hides `value` from the optimiser, so a run cannot be hoisted out of the timing loop.
@_optimize(none)
func opaque<T>(_ value: T) -> T { value }

func report(_ kernel: String, _ fields: String, _ times: [Double]) {
    let count = times.count
    let median = count % 2 == 1 ? times[count / 2] : 0.5 * (times[count / 2 - 1] + times[count / 2])
    print("{\"kernel\":\"\(kernel)\",\"impl\":\"swift\",\(fields),"
        + "\"median\":\(median),\"min\":\(times[0]),\"max\":\(times[count - 1]),\"runs\":\(count)}")
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
        let (hits, times) = timed(runs: runs) { opaque(problem).serial() }
        report(kernel, "\"hits\":\(hits),\"pi\":\(problem.estimate(hits: hits))", times)
    case "mandelbrot":
        let problem = Mandelbrot(width: 1600, height: 1200, maxIterations: 256)
        let (counts, times) = timed(runs: runs) { opaque(problem).serial() }
        report(kernel, "\"sum\":\(Mandelbrot.checksum(counts))", times)
        if let pngPath {
            let rgb = MandelbrotColorMap.rgb(counts, maxIterations: problem.maxIterations)
            do {
                try PNGImage.write(width: problem.width, height: problem.height, pixels: rgb,
                                   to: pngPath)
            } catch {
                fatalError("\(error)")
            }
        }
    case "matmul":
        let n = 1024
        let problem = MatrixMultiply.reference(n: n)
        let (c, times) = timed(runs: runs) { opaque(problem).serial() }
        let (sum, weighted) = MatrixMultiply.checksums(c, n: n)
        let gflops = 2.0 * Double(n * n * n) / times[times.count / 2] * 1e-9
        report(kernel, "\"sum\":\(Int(sum)),\"weighted\":\(Int(weighted)),\"gflops\":\(gflops)", times)
    case "nbody":
        let problem = NBody(bodyCount: 4096, steps: 10)
        let (state, times) = timed(runs: runs) { opaque(problem).serial() }
        report(kernel, "\"kinetic\":\(state.kineticEnergy),\"squares\":\(state.sumOfSquaredPositions)", times)
    default:
        break
    }
}
