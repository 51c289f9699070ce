import Kernels

/// Each kernel run serially at its reference size (`Benchmarks/README.md`), timed
/// `repetitions` times; the median wall time is the figure and every run's checksum is
/// verified against the reference, so a fast wrong kernel fails instead of reporting.
///
/// Names: `kernels.pi.20000000`, `kernels.mandelbrot.1600x1200x256` (and `.into`: into a
/// buffer kept across the runs, as the C references write theirs), `kernels.matmul.1024`,
/// `kernels.nbody.4096x10`, in seconds, with `min`, `max`, `runs` and the checksums.
struct KernelBenchmarks {
    var repetitions = 5

    func run(_ emit: (Figure) -> Void) throws {
        let pi = MonteCarloPi(samples: 20_000_000, seed: 12345)
        let piTimes = try timed(
            "pi", compute: { Measure.opaque(pi).serial() },
            verify: { hits in try expect(Double(hits) == 15_710_491, "pi: \(hits) hits instead of 15710491") })
        emit(figure("kernels.pi.20000000", piTimes, exact: ["hits": 15_710_491]))

        let mandelbrot = Mandelbrot(width: 1600, height: 1200, maxIterations: 256)
        let mandelbrotTimes = try timed(
            "mandelbrot", compute: { Measure.opaque(mandelbrot).serial() },
            verify: { counts in
                let sum = Mandelbrot.checksum(counts)
                try expect(sum == 113_169_525, "mandelbrot: Σn = \(sum) instead of 113169525")
            })
        emit(figure("kernels.mandelbrot.1600x1200x256", mandelbrotTimes, exact: ["sum": 113_169_525]))
        // The same into one buffer kept across the runs, as the C references write theirs.
        let image = UnsafeMutableBufferPointer<UInt16>.allocate(capacity: 1600 * 1200)
        defer { image.deallocate() }
        let mandelbrotIntoTimes = try timed(
            "mandelbrot into a kept buffer", compute: { Measure.opaque(mandelbrot).render(0..<1200, into: image) },
            verify: {
                let sum = image.reduce(0) { $0 &+ Int($1) }
                try expect(sum == 113_169_525, "mandelbrot into a kept buffer: Σn = \(sum) instead of 113169525")
            })
        emit(figure("kernels.mandelbrot.1600x1200x256.into", mandelbrotIntoTimes, exact: ["sum": 113_169_525]))

        let n = 1024
        let matmul = MatrixMultiply.reference(n: n)
        let matmulTimes = try timed(
            "matmul", compute: { Measure.opaque(matmul).serial() },
            verify: { product in
                let sums = MatrixMultiply.checksums(product, n: n)
                try expect(
                    sums.sum == 4_294_950_921 && sums.weighted == 6_594_902_263_792,
                    "matmul: checksums \(sums) instead of (4294950921, 6594902263792)")
            })
        var matmulFigure = figure(
            "kernels.matmul.1024", matmulTimes,
            exact: ["sum": 4_294_950_921, "weighted": 6_594_902_263_792])
        matmulFigure.extra["gflops"] = 2 * Double(n * n * n) / matmulFigure.value / 1e9
        emit(matmulFigure)

        let nbody = NBody(bodyCount: 4096, steps: 10)
        var energies = (kinetic: 0.0, squares: 0.0)
        let nbodyTimes = try timed(
            "nbody", compute: { Measure.opaque(nbody).serial() },
            verify: { state in
                energies = (state.kineticEnergy, state.sumOfSquaredPositions)
                try expect(
                    Self.close(energies.kinetic, 1.8135481578192069e-4)
                        && Self.close(energies.squares, 1023.5783750684968),
                    "nbody: checksums \(energies) outside 1e-9 of the reference")
            })
        emit(
            figure(
                "kernels.nbody.4096x10", nbodyTimes,
                exact: ["kinetic": energies.kinetic, "squares": energies.squares]))
    }

    /// Wall times in seconds of `repetitions` runs of `compute`, each result checked by `verify`
    /// outside the timed part (as the C references time the kernel alone).
    private func timed<R>(_ kernel: String, compute: () -> R, verify: (R) throws -> Void) throws -> [Double] {
        try (0..<repetitions).map { _ in
            let start = Measure.now()
            let result = compute()
            let time = Measure.now() - start
            try verify(result)
            return time
        }
    }

    private func figure(_ name: String, _ times: [Double], exact: [String: Double]) -> Figure {
        Figure(
            name: name, value: Measure.median(times), unit: "s",
            extra: ["min": times.min() ?? .nan, "max": times.max() ?? .nan, "runs": Double(times.count)],
            exact: exact)
    }

    private func expect(_ condition: Bool, _ message: @autoclosure () -> String) throws {
        if !condition { throw BenchmarkError.checksumMismatch(message()) }
    }

    /// Equal within the reference's relative tolerance, 1e−9.
    static func close(_ value: Double, _ reference: Double) -> Bool {
        abs(value - reference) <= 1e-9 * abs(reference)
    }
}
