/// The force pass of one ``NBody`` step: the gravitational acceleration of a range of bodies
/// from all bodies, a_i = Σ_j m_j·d/(r²·√r²) with d = p_j − p_i and r² = |d|² + ε².
///
/// The value holds every position and mass of the current step (built by
/// ``NBodyState/accelerations(softening:)``); a chunk is a range of bodies and its result is
/// their accelerations interleaved, (ax, ay, az) per body. Eight bodies share a SIMD step and
/// each lane sums over j in order, without fused multiply-add, so every acceleration is
/// bit-for-bit that of the scalar C reference.
public struct NBodyAccelerations: Codable, Sendable {
    public let x: [Double]
    public let y: [Double]
    public let z: [Double]
    public let mass: [Double]
    /// ε², added to every squared distance.
    public let softeningSquared: Double

    public init(x: [Double], y: [Double], z: [Double], mass: [Double], softeningSquared: Double) {
        precondition(x.count == y.count && y.count == z.count && z.count == mass.count,
                     "NBodyAccelerations: coordinate and mass arrays differ in length")
        self.x = x
        self.y = y
        self.z = z
        self.mass = mass
        self.softeningSquared = softeningSquared
    }

    /// The number of bodies.
    public var count: Int { mass.count }

    /// The accelerations of bodies `bodies` (a sub-range of `0..<count`), interleaved
    /// (ax, ay, az), `3 · bodies.count` values.
    ///
    /// - Complexity: O(`bodies.count · count`).
    @inlinable
    public func callAsFunction(_ bodies: Range<Int>) -> [Double] {
        precondition(bodies.lowerBound >= 0 && bodies.upperBound <= count,
                     "NBodyAccelerations: bodies \(bodies) outside 0..<\(count)")
        return [Double](unsafeUninitializedCapacity: 3 * bodies.count) { out, initialized in
            x.withUnsafeBufferPointer { x in
                y.withUnsafeBufferPointer { y in
                    z.withUnsafeBufferPointer { z in
                        mass.withUnsafeBufferPointer { mass in
                            Self.accelerate(
                                bodies, x: x.baseAddress!, y: y.baseAddress!, z: z.baseAddress!,
                                mass: mass.baseAddress!, count: mass.count,
                                softeningSquared: softeningSquared, into: out.baseAddress!)
                        }
                    }
                }
            }
            initialized = 3 * bodies.count
        }
    }

    @inlinable
    static func accelerate(
        _ bodies: Range<Int>,
        x: UnsafePointer<Double>, y: UnsafePointer<Double>, z: UnsafePointer<Double>,
        mass: UnsafePointer<Double>, count: Int, softeningSquared: Double,
        into out: UnsafeMutablePointer<Double>
    ) {
        typealias V = SIMD8<Double>
        let eps2 = V(repeating: softeningSquared)
        var first = bodies.lowerBound
        while first < bodies.upperBound {
            let lanes = min(8, bodies.upperBound - first)
            // Lanes past the range repeat the last body and are not stored.
            var xi = V(), yi = V(), zi = V()
            for lane in 0..<8 {
                let i = first + min(lane, lanes - 1)
                xi[lane] = x[i]; yi[lane] = y[i]; zi[lane] = z[i]
            }
            var sx = V(), sy = V(), sz = V()
            for j in 0..<count {
                let dx = V(repeating: x[j]) - xi
                let dy = V(repeating: y[j]) - yi
                let dz = V(repeating: z[j]) - zi
                let r2 = dx * dx + dy * dy + dz * dz + eps2
                let f = V(repeating: mass[j]) / (r2 * r2.squareRoot())
                sx += dx * f
                sy += dy * f
                sz += dz * f
            }
            let base = out + 3 * (first - bodies.lowerBound)
            for lane in 0..<lanes {
                base[3 * lane] = sx[lane]
                base[3 * lane + 1] = sy[lane]
                base[3 * lane + 2] = sz[lane]
            }
            first += 8
        }
    }
}
