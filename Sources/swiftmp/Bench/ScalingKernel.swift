import Kernels
import Multiprocessing

/// A kernel of the scaling suite: run serially or through a pool, reduced to one checksum
/// so the parallel result can be checked against the serial one (they must be equal: both
/// kernels are bit-exact under any split).
enum ScalingKernel {
    /// Monte Carlo π; the checksum is the hit count.
    case pi(MonteCarloPi)
    /// Mandelbrot; the checksum is Σn over the image.
    case mandelbrot(Mandelbrot)

    /// The name used in figure names: `pi` or `mandelbrot`.
    var name: String {
        switch self {
        case .pi: return "pi"
        case .mandelbrot: return "mandelbrot"
        }
    }

    /// The problem's size, printed with the figures.
    var size: [String: Double] {
        switch self {
        case .pi(let kernel):
            return ["samples": Double(kernel.samples)]
        case .mandelbrot(let kernel):
            return [
                "width": Double(kernel.width), "height": Double(kernel.height),
                "max_iterations": Double(kernel.maxIterations),
            ]
        }
    }

    /// The checksum computed in this process, in one chunk.
    func serial() -> Int {
        switch self {
        case .pi(let kernel): return Measure.opaque(kernel).serial()
        case .mandelbrot(let kernel): return Mandelbrot.checksum(Measure.opaque(kernel).serial())
        }
    }

    /// The checksum computed by `pool`'s workers with the kernels' default splits.
    func parallel(on pool: Pool) throws -> Int {
        switch self {
        case .pi(let kernel): return try kernel.hits(on: pool)
        case .mandelbrot(let kernel): return Mandelbrot.checksum(try kernel.render(on: pool))
        }
    }
}
