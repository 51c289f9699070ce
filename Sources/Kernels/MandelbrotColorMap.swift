/// Colours for Mandelbrot iteration counts: points that never escaped are black, the others
/// follow a smooth dark-blue → orange → yellow ramp (Bernstein polynomials of t = √(n / max)).
public enum MandelbrotColorMap {
    /// The RGB colour of iteration count `n` out of `maxIterations`.
    @inlinable
    public static func color(_ n: Int, maxIterations: Int) -> (red: UInt8, green: UInt8, blue: UInt8) {
        guard n < maxIterations, maxIterations > 0 else { return (0, 0, 0) }
        let t = (Double(n) / Double(maxIterations)).squareRoot() // lifts the many low counts
        let s = 1 - t
        func byte(_ v: Double) -> UInt8 { UInt8(max(0, min(255, (v * 255).rounded()))) }
        return (byte(9 * s * t * t * t), byte(15 * s * s * t * t), byte(8.5 * s * s * s * t))
    }

    /// Row-major RGB bytes for `counts` (three per pixel), ready for ``PNGImage``.
    ///
    /// - Complexity: O(`counts.count + maxIterations`).
    public static func rgb(_ counts: [UInt16], maxIterations: Int) -> [UInt8] {
        let palette = (0...maxIterations).map { color($0, maxIterations: maxIterations) }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(3 * counts.count)
        for count in counts {
            let c = palette[min(Int(count), maxIterations)]
            bytes.append(c.red)
            bytes.append(c.green)
            bytes.append(c.blue)
        }
        return bytes
    }
}
