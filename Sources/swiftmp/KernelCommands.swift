import ArgumentParser
import Kernels
import Multiprocessing

struct MandelbrotCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mandelbrot",
        abstract: "Render the Mandelbrot set on the pool's workers, optionally to a PNG.",
        discussion:
            "Rows are handed out a few at a time as workers free up (rows cost very different amounts). Reference: 1600×1200, 256 iterations → Σn = 113 169 525."
    )

    @Option(help: "Image width in pixels.") var width = 1600
    @Option(help: "Image height in pixels.") var height = 1200
    @Option(help: "Iteration limit per pixel (1–65535).") var maxIterations = 256
    @Option(help: "Rows per task.") var rowsPerTask = 8
    @Option(name: [.short, .long], help: "Write the image to this PNG file.") var output: String?
    @OptionGroup var options: PoolOptions

    func validate() throws {
        guard (1...65_536).contains(width), (1...65_536).contains(height) else {
            throw ValidationError("--width and --height must be between 1 and 65536 (got \(width)×\(height)).")
        }
        guard width * height <= 1 << 30 else { throw ValidationError("the image is too large (over 2^30 pixels).") }
        guard (1...65_535).contains(maxIterations) else {
            throw ValidationError("--max-iterations must be between 1 and 65535 (got \(maxIterations)).")
        }
        guard rowsPerTask >= 1 else { throw ValidationError("--rows-per-task must be at least 1 (got \(rowsPerTask)).") }
    }

    func run() throws {
        let pool = try options.makePool()
        defer { pool.close(); try? pool.join() }
        let kernel = Mandelbrot(width: width, height: height, maxIterations: maxIterations)
        let pieces = Chunks.split(0..<height, size: rowsPerTask)
        let start = Measure.now()
        var counts: [UInt16] = []
        counts.reserveCapacity(width * height)
        for rows in try pool.imap(kernel, pieces, progress: options.json ? nil : .automatic(label: "mandelbrot")) {
            counts += try rows.get()
        }
        let seconds = Measure.now() - start
        let checksum = Mandelbrot.checksum(counts)
        if let output {
            let pixels = MandelbrotColorMap.rgb(counts, maxIterations: maxIterations)
            try PNGImage(width: width, height: height, colorType: .rgb, pixels: pixels).write(to: output)
        }
        if options.json {
            print(
                JSONLine([
                    ("command", .string("mandelbrot")), ("width", .int(width)), ("height", .int(height)),
                    ("max_iterations", .int(maxIterations)), ("checksum", .int(checksum)),
                    ("workers", .int(pool.processes)), ("seconds", .double(seconds)),
                    ("output", .string(output ?? "")),
                ]).text)
        } else {
            print("mandelbrot \(width)×\(height), \(maxIterations) iterations: Σn = \(checksum)")
            if let output { print("wrote \(output)") }
            print("\(count(pool.processes, "worker")) (\(pool.backendSummary)), \(count(pieces.count, "task")), \(formatSeconds(seconds))")
        }
    }
}

struct MatmulCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "matmul",
        abstract: "Multiply two n×n float64 matrices on the pool's workers (rows of C per task).",
        discussion: "A[i][j] = ((3i + 7j) mod 11) − 3, B[i][j] = ((5i + 3j) mod 13) − 4; n = 1024 → ΣC = 4 294 950 921."
    )

    @Option(help: "Matrix size.") var n = 1024
    @Option(help: "Rows of C per task (default: 2 tasks per worker).") var rowsPerTask: Int?
    @OptionGroup var options: PoolOptions

    func validate() throws {
        guard (1...8192).contains(n) else { throw ValidationError("--n must be between 1 and 8192 (got \(n)).") }
        if let rowsPerTask, rowsPerTask < 1 { throw ValidationError("--rows-per-task must be at least 1.") }
    }

    func run() throws {
        let pool = try options.makePool()
        defer { pool.close(); try? pool.join() }
        let kernel = MatrixMultiply.reference(n: n)
        let start = Measure.now()
        let c = try kernel.product(on: pool, rowsPerTask: rowsPerTask)
        let seconds = Measure.now() - start
        let sums = MatrixMultiply.checksums(c, n: n)
        let gflops = 2 * Double(n) * Double(n) * Double(n) / seconds / 1e9
        if options.json {
            print(
                JSONLine([
                    ("command", .string("matmul")), ("n", .int(n)), ("sum", .double(sums.sum)),
                    ("weighted_sum", .double(sums.weighted)), ("workers", .int(pool.processes)),
                    ("seconds", .double(seconds)), ("gflops", .double(gflops)),
                ]).text)
        } else {
            print("matmul n=\(n): ΣC = \(Int(sums.sum)), Σ C[i][j]·(i+2j+1) = \(Int(sums.weighted))")
            print("\(count(pool.processes, "worker")) (\(pool.backendSummary)), \(formatSeconds(seconds)), \((gflops * 10).rounded() / 10) GFLOP/s")
        }
    }
}

struct NBodyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "nbody",
        abstract: "All-pairs gravitational N-body: each step's forces on the pool's workers.",
        discussion: "N = 4096, 10 steps → ½Σmv² = 1.8135481578192069e−4, Σ|p|² = 1023.5783750684968 (rel. 1e−9)."
    )

    @Option(help: "Number of bodies.") var bodies = 4096
    @Option(help: "Number of time steps.") var steps = 10
    @Option(help: "Tasks per step (default: 2 per worker).") var tasksPerStep: Int?
    @OptionGroup var options: PoolOptions

    func validate() throws {
        guard (1...1_000_000).contains(bodies) else { throw ValidationError("--bodies must be between 1 and 1000000 (got \(bodies)).") }
        guard (0...1_000_000).contains(steps) else { throw ValidationError("--steps must be between 0 and 1000000 (got \(steps)).") }
        if let tasksPerStep, tasksPerStep < 1 { throw ValidationError("--tasks-per-step must be at least 1.") }
    }

    func run() throws {
        let pool = try options.makePool()
        defer { pool.close(); try? pool.join() }
        let start = Measure.now()
        let state = try NBody(bodyCount: bodies, steps: steps).simulate(on: pool, tasksPerStep: tasksPerStep)
        let seconds = Measure.now() - start
        if options.json {
            print(
                JSONLine([
                    ("command", .string("nbody")), ("bodies", .int(bodies)), ("steps", .int(steps)),
                    ("kinetic_energy", .double(state.kineticEnergy)),
                    ("sum_squared_positions", .double(state.sumOfSquaredPositions)),
                    ("workers", .int(pool.processes)), ("seconds", .double(seconds)),
                ]).text)
        } else {
            print("nbody N=\(bodies), \(steps) steps: ½Σmv² = \(state.kineticEnergy), Σ|p|² = \(state.sumOfSquaredPositions)")
            print("\(count(pool.processes, "worker")) (\(pool.backendSummary)), \(formatSeconds(seconds))")
        }
    }
}
