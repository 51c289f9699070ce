import Multiprocessing

// Every kernel's chunk function runs in a pool as it is: a kernel value carries its problem
// (the matrices, the positions) and is encoded once per map; each task is an index range.
// The same calls run on local workers and on MPI ranks, with bit-identical results.

extension MonteCarloPi: ParallelFunction {}
extension Mandelbrot: ParallelFunction {}
extension MatrixMultiply: ParallelFunction {}
extension NBodyAccelerations: ParallelFunction {}

extension MonteCarloPi {
    /// The hits over all samples, computed by `pool` in `tasks` pieces (default: 4 per
    /// worker). Any split gives the same count.
    public func hits(on pool: Pool, tasks: Int? = nil) throws -> Int {
        let pieces = Chunks.split(0..<samples, into: max(1, tasks ?? 4 * pool.processes))
        return try pool.map(self, pieces, chunkSize: 1).reduce(0, +)
    }
}

extension Mandelbrot {
    /// Every pixel's iteration count, row-major, rendered by `pool`, `rowsPerTask` rows at
    /// a time. Rows cost very different amounts, so tasks are small and handed out as
    /// workers free up.
    public func render(on pool: Pool, rowsPerTask: Int = 8) throws -> [UInt16] {
        let pieces = Chunks.split(0..<height, size: max(1, rowsPerTask))
        let rows = try pool.map(self, pieces, chunkSize: 1)
        // Into one buffer of the final size: `flatMap` grows its result step by step
        // (2048×1536 as 192 pieces, measured: 0.5–9 ms for `flatMap`, 0.2–3.7 ms this way).
        var image: [UInt16] = []
        image.reserveCapacity(width * height)
        for part in rows { image.append(contentsOf: part) }
        return image
    }
}

extension MatrixMultiply {
    /// C = A·B computed by `pool`, `rowsPerTask` rows of C per task (default: the rows
    /// split evenly, 2 tasks per worker).
    public func product(on pool: Pool, rowsPerTask: Int? = nil) throws -> [Double] {
        let size = rowsPerTask ?? max(1, (n + 2 * pool.processes - 1) / (2 * pool.processes))
        return try pool.map(self, Chunks.split(0..<n, size: max(1, size)), chunkSize: 1).flatMap { $0 }
    }
}

extension NBody {
    /// The state after `steps` steps, each step's force pass computed by `pool` over
    /// `tasksPerStep` body ranges (default: 2 per worker); integration stays on the caller.
    public func simulate(on pool: Pool, tasksPerStep: Int? = nil) throws -> NBodyState {
        var state = initialState()
        let pieces = Chunks.split(0..<bodyCount, into: max(1, tasksPerStep ?? 2 * pool.processes))
        for _ in 0..<steps {
            let forces = state.accelerations(softening: softening)
            let accelerations = try pool.map(forces, pieces, chunkSize: 1).flatMap { $0 }
            state.integrate(accelerations: accelerations, timeStep: timeStep)
        }
        return state
    }
}
