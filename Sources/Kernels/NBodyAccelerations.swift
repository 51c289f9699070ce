import KernelsSupport

/// The force pass of one ``NBody`` step: the gravitational acceleration of a range of bodies
/// from all bodies, a_i = Σ_j m_j·d/(r²·√r²) with d = p_j − p_i and r² = |d|² + ε².
///
/// The value holds every position and mass of the current step (built by
/// ``NBodyState/accelerations(softening:)``); a chunk is a range of bodies and its result is
/// their accelerations interleaved, (ax, ay, az) per body. Eight bodies share a SIMD step and
/// each lane sums over j in order, so a body's acceleration does not depend on the chunking
/// (bit for bit). 1/(r²·√r²) is computed as (1/√r²)³ with a Newton-refined inverse square
/// root (a few ulp from the correctly rounded value, no division): the reference checksums
/// agree to ~1e−16 relative, far inside the spec's 1e−9.
public struct NBodyAccelerations: Codable, Sendable {
    public let x: [Double]
    public let y: [Double]
    public let z: [Double]
    public let mass: [Double]
    /// ε², added to every squared distance.
    public let softeningSquared: Double

    public init(x: [Double], y: [Double], z: [Double], mass: [Double], softeningSquared: Double) {
        precondition(
            x.count == y.count && y.count == z.count && z.count == mass.count,
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
        precondition(
            bodies.lowerBound >= 0 && bodies.upperBound <= count,
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

    /// How 1/√x starts before Newton's steps refine it.
    public enum Estimate: Sendable, CaseIterable {
        /// The integer estimate 0x5FE6EB50C7B537A9 − bits/2 (3.4 % error), then four steps.
        case integer
        /// The build target's estimate (`kernels_rsqrt_estimate8`: AVX-512's vrsqrt14pd,
        /// 2^-14, then two steps; the integer one elsewhere).
        case target

        /// ``target`` when the build has a hardware estimate, else ``integer``.
        public static let native = Estimate(estimateBits: Int(KERNELS_RSQRT_ESTIMATE_BITS))

        init(estimateBits: Int) { self = estimateBits > 4 ? .target : .integer }
    }

    /// 1/√x for finite `x` ≥ 2^-1021, to within a few ulp: an estimate refined by Newton steps
    /// y ← y·(1.5 − ½x·y²), each squaring the error (3.4e−2 → 1.8e−3 → 4.7e−6 → 3.4e−11 →
    /// rounding from the integer estimate; 6e−5 → 5e−9 → rounding from vrsqrt14pd). All
    /// lanes stay in vector registers; `SIMD8.squareRoot()` lowers to eight libm calls (errno
    /// semantics) and runs ~3× slower.
    @inlinable @inline(__always)
    static func inverseSquareRoot(_ x: SIMD8<Double>, _ estimate: Estimate) -> SIMD8<Double> {
        var y: SIMD8<Double>
        let steps: Int
        if estimate == .target {
            y = kernels_rsqrt_estimate8(x)
            steps = newtonSteps(estimateBits: Int(KERNELS_RSQRT_ESTIMATE_BITS))
        } else {
            let bits = unsafeBitCast(x, to: SIMD8<UInt64>.self)
            y = unsafeBitCast(
                SIMD8<UInt64>(repeating: 0x5FE6_EB50_C7B5_37A9) &- (bits &>> 1),
                to: SIMD8<Double>.self)
            steps = 4
        }
        // ½x as x with its exponent one less: for x ≥ 2^-1021 the multiply's value exactly,
        // with an integer subtraction instead of one of the multiplies that bound the loop
        // (r² ≥ ε² here).
        let halfX = unsafeBitCast(
            unsafeBitCast(x, to: SIMD8<UInt64>.self) &- SIMD8(repeating: 1 << 52), to: SIMD8<Double>.self)
        for _ in 0..<steps { y = y * (1.5 - halfX * y * y) }
        return y
    }

    /// Newton steps from an estimate good to `estimateBits` bits to double precision (each
    /// doubles the bits): 2 from 14 bits, 4 from 4.
    @inlinable @inline(__always)
    static func newtonSteps(estimateBits: Int) -> Int {
        var bits = estimateBits, steps = 0
        while bits < 53 { bits *= 2; steps += 1 }
        return steps
    }

    /// The bodies j per pass over j of ``accelerate(_:x:y:z:mass:count:softeningSquared:into:estimate:bodiesPerPass:)``
    /// in this build: 4 with AVX-512 (32 vector registers), 1 with 16 (AVX2, SSE2), where four
    /// bodies' terms spill (1.04× the time).
    @usableFromInline static let nativeBodiesPerPass = KERNELS_VECTOR_BITS >= 512 ? 4 : 1

    /// Sixteen bodies per pass over j, as two independent 8-lane groups: their dependency
    /// chains interleave, which keeps the vector units busy (1.2× over one group).
    @inlinable
    static func accelerate(
        _ bodies: Range<Int>,
        x: UnsafePointer<Double>, y: UnsafePointer<Double>, z: UnsafePointer<Double>,
        mass: UnsafePointer<Double>, count: Int, softeningSquared: Double,
        into out: UnsafeMutablePointer<Double>, estimate: Estimate = .native,
        bodiesPerPass: Int = nativeBodiesPerPass
    ) {
        if bodiesPerPass == 4 {
            accelerateFourPerPass(
                bodies, x: x, y: y, z: z, mass: mass, count: count,
                softeningSquared: softeningSquared, into: out, estimate: estimate)
            return
        }
        typealias V = SIMD8<Double>
        let eps2 = V(repeating: softeningSquared)
        var first = bodies.lowerBound
        while first < bodies.upperBound {
            let lanes = min(16, bodies.upperBound - first)
            let (xa, ya, za, xb, yb, zb) = Self.group(first, lanes: lanes, x: x, y: y, z: z)
            var sxa = V(), sya = V(), sza = V(), sxb = V(), syb = V(), szb = V()
            for j in 0..<count {
                let xj = V(repeating: x[j]), yj = V(repeating: y[j]), zj = V(repeating: z[j])
                let mj = V(repeating: mass[j])
                let dxa = xj - xa, dya = yj - ya, dza = zj - za
                let dxb = xj - xb, dyb = yj - yb, dzb = zj - zb
                let inverseA = Self.inverseSquareRoot(dxa * dxa + dya * dya + dza * dza + eps2, estimate)
                let inverseB = Self.inverseSquareRoot(dxb * dxb + dyb * dyb + dzb * dzb + eps2, estimate)
                let fa = mj * (inverseA * inverseA * inverseA)
                let fb = mj * (inverseB * inverseB * inverseB)
                sxa += dxa * fa; sya += dya * fa; sza += dza * fa
                sxb += dxb * fb; syb += dyb * fb; szb += dzb * fb
            }
            Self.store((sxa, sya, sza, sxb, syb, szb), lanes: lanes, into: out + 3 * (first - bodies.lowerBound))
            first += 16
        }
    }

    /// The positions of bodies `first ..< first + lanes` (at most 16) in two 8-lane groups;
    /// lanes past the range repeat the last body (their sums are not stored).
    @inlinable @inline(__always)
    static func group(
        _ first: Int, lanes: Int, x: UnsafePointer<Double>, y: UnsafePointer<Double>, z: UnsafePointer<Double>
    ) -> (SIMD8<Double>, SIMD8<Double>, SIMD8<Double>, SIMD8<Double>, SIMD8<Double>, SIMD8<Double>) {
        var xa = SIMD8<Double>(), ya = SIMD8<Double>(), za = SIMD8<Double>()
        var xb = SIMD8<Double>(), yb = SIMD8<Double>(), zb = SIMD8<Double>()
        for lane in 0..<8 {
            let i = first + min(lane, lanes - 1)
            xa[lane] = x[i]; ya[lane] = y[i]; za[lane] = z[i]
            let k = first + min(lane + 8, lanes - 1)
            xb[lane] = x[k]; yb[lane] = y[k]; zb[lane] = z[k]
        }
        return (xa, ya, za, xb, yb, zb)
    }

    /// Stores the two groups' sums of the first `lanes` bodies at `base`, x, y, z per body.
    @inlinable @inline(__always)
    static func store(
        _ sums: (SIMD8<Double>, SIMD8<Double>, SIMD8<Double>, SIMD8<Double>, SIMD8<Double>, SIMD8<Double>),
        lanes: Int, into base: UnsafeMutablePointer<Double>
    ) {
        for lane in 0..<lanes {
            let (sx, sy, sz) =
                lane < 8 ? (sums.0[lane], sums.1[lane], sums.2[lane]) : (sums.3[lane - 8], sums.4[lane - 8], sums.5[lane - 8])
            base[3 * lane] = sx
            base[3 * lane + 1] = sy
            base[3 * lane + 2] = sz
        }
    }

    /// ``accelerate(_:x:y:z:mass:count:softeningSquared:into:estimate:bodiesPerPass:)`` with
    /// four bodies j per pass, their terms added in order j, j + 1, … (the same sums, bit for
    /// bit): the core sees four bodies' independent chains (r², 1/√r², the factor) at once,
    /// where one body's chain is longer than its share of the multiplies (with AVX-512, 0.93×
    /// the time of one body per pass). A function of its own, so that the one-per-pass loop of
    /// the other builds is compiled as before.
    @inlinable @inline(never)
    static func accelerateFourPerPass(
        _ bodies: Range<Int>,
        x: UnsafePointer<Double>, y: UnsafePointer<Double>, z: UnsafePointer<Double>,
        mass: UnsafePointer<Double>, count: Int, softeningSquared: Double,
        into out: UnsafeMutablePointer<Double>, estimate: Estimate
    ) {
        typealias V = SIMD8<Double>
        let eps2 = V(repeating: softeningSquared)
        var first = bodies.lowerBound
        while first < bodies.upperBound {
            let lanes = min(16, bodies.upperBound - first)
            let (xa, ya, za, xb, yb, zb) = Self.group(first, lanes: lanes, x: x, y: y, z: z)
            var sxa = V(), sya = V(), sza = V(), sxb = V(), syb = V(), szb = V()
            // Body j's terms of the two groups' sums.
            @inline(__always) func terms(_ j: Int) -> (V, V, V, V, V, V) {
                let xj = V(repeating: x[j]), yj = V(repeating: y[j]), zj = V(repeating: z[j])
                let mj = V(repeating: mass[j])
                let dxa = xj - xa, dya = yj - ya, dza = zj - za
                let dxb = xj - xb, dyb = yj - yb, dzb = zj - zb
                let inverseA = Self.inverseSquareRoot(dxa * dxa + dya * dya + dza * dza + eps2, estimate)
                let inverseB = Self.inverseSquareRoot(dxb * dxb + dyb * dyb + dzb * dzb + eps2, estimate)
                let fa = mj * (inverseA * inverseA * inverseA)
                let fb = mj * (inverseB * inverseB * inverseB)
                return (dxa * fa, dya * fa, dza * fa, dxb * fb, dyb * fb, dzb * fb)
            }
            var j = 0
            while j + 3 < count {
                let t0 = terms(j), t1 = terms(j + 1), t2 = terms(j + 2), t3 = terms(j + 3)
                sxa += t0.0; sya += t0.1; sza += t0.2; sxb += t0.3; syb += t0.4; szb += t0.5
                sxa += t1.0; sya += t1.1; sza += t1.2; sxb += t1.3; syb += t1.4; szb += t1.5
                sxa += t2.0; sya += t2.1; sza += t2.2; sxb += t2.3; syb += t2.4; szb += t2.5
                sxa += t3.0; sya += t3.1; sza += t3.2; sxb += t3.3; syb += t3.4; szb += t3.5
                j += 4
            }
            while j < count {
                let t = terms(j)
                sxa += t.0; sya += t.1; sza += t.2; sxb += t.3; syb += t.4; szb += t.5
                j += 1
            }
            Self.store((sxa, sya, sza, sxb, syb, szb), lanes: lanes, into: out + 3 * (first - bodies.lowerBound))
            first += 16
        }
    }
}
