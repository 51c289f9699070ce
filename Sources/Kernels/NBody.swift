/// All-pairs gravitational N-body (`Benchmarks/README.md`): `bodyCount` bodies on the
/// grid x_i = ((7919·i) mod 4096)/4096 − 0.5 (6271 for y, 3319 for z), at rest, each of mass
/// 1/N, G = 1, softened by ε, integrated for `steps` steps of `timeStep`.
///
/// Each step is one map of ``NBodyAccelerations`` over body ranges (the parallel part) and
/// one ``NBodyState/integrate(accelerations:timeStep:)`` (the master's part).
/// Checksums (relative tolerance 1e−9): ½Σmv² = 1.8135481578192069e−4 and
/// Σ|p|² = 1023.5783750684968 at 4096 × 10; 7.2356427349476605e−6 and 256.85125265377235 at
/// 1024 × 2.
public struct NBody: Codable, Sendable, Hashable {
    public var bodyCount: Int
    public var steps: Int
    public var timeStep: Double
    /// ε; the force pass adds ε² to every squared distance.
    public var softening: Double

    public init(
        bodyCount: Int = 4096, steps: Int = 10, timeStep: Double = 1e-3,
        softening: Double = 1e-3
    ) {
        precondition(bodyCount > 0 && steps >= 0, "NBody: bodyCount \(bodyCount), steps \(steps)")
        self.bodyCount = bodyCount
        self.steps = steps
        self.timeStep = timeStep
        self.softening = softening
    }

    /// The starting positions (the grid above, for every `bodyCount`, always modulo 4096),
    /// zero velocities and masses 1/N.
    ///
    /// - Complexity: O(`bodyCount`).
    public func initialState() -> NBodyState {
        let n = bodyCount
        func coordinate(_ multiplier: Int) -> [Double] {
            (0..<n).map { Double((multiplier * $0) % 4096) / 4096.0 - 0.5 }
        }
        let zeros = [Double](repeating: 0, count: n)
        return NBodyState(
            x: coordinate(7919), y: coordinate(6271), z: coordinate(3319),
            vx: zeros, vy: zeros, vz: zeros,
            mass: [Double](repeating: 1.0 / Double(n), count: n))
    }

    /// Advances `state` by one step, computing the accelerations in one chunk.
    ///
    /// - Complexity: O(`bodyCount²`).
    public func step(_ state: inout NBodyState) {
        let accelerations = state.accelerations(softening: softening)(0..<state.count)
        state.integrate(accelerations: accelerations, timeStep: timeStep)
    }

    /// The state after `steps` steps from ``initialState()``.
    ///
    /// - Complexity: O(`steps · bodyCount²`).
    public func serial() -> NBodyState {
        var state = initialState()
        for _ in 0..<steps { step(&state) }
        return state
    }
}
