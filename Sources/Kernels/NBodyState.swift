/// Positions, velocities and masses of an ``NBody`` system, structure-of-arrays.
public struct NBodyState: Codable, Sendable, Equatable {
    public var x: [Double]
    public var y: [Double]
    public var z: [Double]
    public var vx: [Double]
    public var vy: [Double]
    public var vz: [Double]
    public var mass: [Double]

    public init(
        x: [Double], y: [Double], z: [Double],
        vx: [Double], vy: [Double], vz: [Double], mass: [Double]
    ) {
        let n = mass.count
        precondition(
            [x, y, z, vx, vy, vz].allSatisfy { $0.count == n },
            "NBodyState: arrays differ in length")
        self.x = x; self.y = y; self.z = z
        self.vx = vx; self.vy = vy; self.vz = vz
        self.mass = mass
    }

    /// The number of bodies.
    public var count: Int { mass.count }

    /// The force pass over the current positions, to be mapped over body ranges.
    ///
    /// - Complexity: O(`count`) (copies the positions and masses).
    public func accelerations(softening: Double) -> NBodyAccelerations {
        NBodyAccelerations(x: x, y: y, z: z, mass: mass, softeningSquared: softening * softening)
    }

    /// One semi-implicit Euler step given every body's acceleration, interleaved
    /// (ax, ay, az) as ``NBodyAccelerations`` returns them concatenated in body order:
    /// v += a·dt, then p += v·dt.
    ///
    /// - Complexity: O(`count`).
    public mutating func integrate(accelerations a: [Double], timeStep dt: Double) {
        let n = count
        precondition(a.count == 3 * n, "NBodyState.integrate: expected \(3 * n) accelerations")
        for i in 0..<n {
            vx[i] += a[3 * i] * dt
            vy[i] += a[3 * i + 1] * dt
            vz[i] += a[3 * i + 2] * dt
            x[i] += vx[i] * dt
            y[i] += vy[i] * dt
            z[i] += vz[i] * dt
        }
    }

    /// ½ Σ m v², summed in body order.
    ///
    /// - Complexity: O(`count`).
    public var kineticEnergy: Double {
        var sum = 0.0
        for i in 0..<count {
            sum += 0.5 * mass[i] * (vx[i] * vx[i] + vy[i] * vy[i] + vz[i] * vz[i])
        }
        return sum
    }

    /// Σ |p|², summed in body order.
    ///
    /// - Complexity: O(`count`).
    public var sumOfSquaredPositions: Double {
        var sum = 0.0
        for i in 0..<count { sum += x[i] * x[i] + y[i] * y[i] + z[i] * z[i] }
        return sum
    }
}
