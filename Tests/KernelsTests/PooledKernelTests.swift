import Kernels
import Multiprocessing
import XCTest

/// Every kernel through a pool at 1, 2 and 3 workers gives the reference checksums
/// (bit-exact for π, Mandelbrot and matmul; N-body identical to the serial run).
final class PooledKernelTests: XCTestCase {
    func testKernelsThroughPoolsMatchReferences() throws {
        let serialBodies = NBody(bodyCount: 256, steps: 2).serial()
        for workers in 1...3 {
            try Pool.with(processes: workers, startMethod: workers == 2 ? .spawn : .automatic) { pool in
                let pi = MonteCarloPi(samples: 1_000_000)
                XCTAssertEqual(try pi.hits(on: pool, tasks: 7), pi.serial(), "π, \(workers) workers")

                let image = try Mandelbrot(width: 400, height: 300, maxIterations: 256).render(on: pool, rowsPerTask: 7)
                XCTAssertEqual(image.count, 400 * 300)
                XCTAssertEqual(Mandelbrot.checksum(image), 7_077_920, "Mandelbrot, \(workers) workers")

                let c = try MatrixMultiply.reference(n: 256).product(on: pool)
                let sums = MatrixMultiply.checksums(c, n: 256)
                XCTAssertEqual(sums.sum, 67_109_448, "matmul, \(workers) workers")
                XCTAssertEqual(sums.weighted, 25_738_373_806, "matmul, \(workers) workers")

                let bodies = try NBody(bodyCount: 256, steps: 2).simulate(on: pool, tasksPerStep: 5)
                XCTAssertEqual(bodies, serialBodies, "N-body, \(workers) workers")
            }
        }
    }
}
