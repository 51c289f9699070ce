import XCTest

@testable import Kernels

final class NBodyTests: XCTestCase {
    private func assertRelative(
        _ value: Double, _ expected: Double, _ tolerance: Double = 1e-9,
        file: StaticString = #filePath, line: UInt = #line
    ) {
        XCTAssertLessThanOrEqual(
            abs(value - expected), tolerance * abs(expected),
            "\(value) vs \(expected)", file: file, line: line)
    }

    func testReferenceChecksums1024x2() {
        let state = NBody(bodyCount: 1024, steps: 2).serial()
        assertRelative(state.kineticEnergy, 7.2356427349476605e-6)
        assertRelative(state.sumOfSquaredPositions, 256.85125265377235)
    }

    func testChunkedStepsEqualTheSerialRun() {
        let problem = NBody(bodyCount: 1024, steps: 2)
        var state = problem.initialState()
        for _ in 0..<problem.steps {
            let pass = state.accelerations(softening: problem.softening)
            let accelerations = Chunks.split(0..<state.count, into: 3).flatMap { pass($0) }
            state.integrate(accelerations: accelerations, timeStep: problem.timeStep)
        }
        // Each body's sum runs over j in order whatever the chunking: bit-identical.
        XCTAssertEqual(state, problem.serial())
    }

    func testFourBodiesPerPassGiveTheSameSumsAsOne() {
        // AVX-512 builds take four bodies j per pass (their terms added in order j, j + 1, …),
        // others one: bit-identical sums, whatever the build, for body counts that leave 0–3
        // bodies after the passes of four.
        for bodyCount in [1, 2, 3, 4, 5, 6, 7, 37] {
            let state = NBody(bodyCount: bodyCount, steps: 0).initialState()
            for estimate in NBodyAccelerations.Estimate.allCases {
                func pass(_ bodiesPerPass: Int) -> [Double] {
                    var result = [Double](repeating: .nan, count: 3 * bodyCount)
                    result.withUnsafeMutableBufferPointer { out in
                        NBodyAccelerations.accelerate(
                            0..<bodyCount, x: state.x, y: state.y, z: state.z, mass: state.mass,
                            count: state.count, softeningSquared: 1e-6, into: out.baseAddress!,
                            estimate: estimate, bodiesPerPass: bodiesPerPass)
                    }
                    return result
                }
                let one = pass(1)
                XCTAssertFalse(one.contains { $0.isNaN }, "\(bodyCount) bodies")
                XCTAssertEqual(pass(4), one, "\(bodyCount) bodies, \(estimate)")
            }
        }
        XCTAssertTrue([1, 4].contains(NBodyAccelerations.nativeBodiesPerPass))
    }

    func testForcePassMatchesTheScalarDefinition() {
        // Both ways of starting the inverse square root (the build's estimate — vrsqrt14pd in
        // AVX-512 builds — and the integer one every build has) against the divided definition.
        let state = NBody(bodyCount: 37, steps: 0).initialState()
        let eps2 = 1e-3 * 1e-3
        for estimate in NBodyAccelerations.Estimate.allCases {
            for range in [0..<37, 5..<6, 30..<37, 3..<20] {
                var result = [Double](repeating: .nan, count: 3 * range.count)
                result.withUnsafeMutableBufferPointer { out in
                    NBodyAccelerations.accelerate(
                        range, x: state.x, y: state.y, z: state.z, mass: state.mass,
                        count: state.count, softeningSquared: eps2, into: out.baseAddress!,
                        estimate: estimate)
                }
                for (offset, i) in range.enumerated() {
                    var s = (0.0, 0.0, 0.0)
                    for j in 0..<state.count {
                        let dx = state.x[j] - state.x[i], dy = state.y[j] - state.y[i]
                        let dz = state.z[j] - state.z[i]
                        let r2 = dx * dx + dy * dy + dz * dz + eps2
                        let f = state.mass[j] / (r2 * r2.squareRoot())
                        s.0 += dx * f; s.1 += dy * f; s.2 += dz * f
                    }
                    // The kernel's inverse square root is within a few ulp of the divided one.
                    let scale = max(abs(s.0), abs(s.1), abs(s.2))
                    XCTAssertEqual(result[3 * offset], s.0, accuracy: 1e-14 * scale, "\(estimate)")
                    XCTAssertEqual(result[3 * offset + 1], s.1, accuracy: 1e-14 * scale, "\(estimate)")
                    XCTAssertEqual(result[3 * offset + 2], s.2, accuracy: 1e-14 * scale, "\(estimate)")
                }
            }
        }
        // The pass a pool maps uses the build's estimate.
        let pass = state.accelerations(softening: 1e-3)
        var native = [Double](repeating: .nan, count: 3 * 37)
        native.withUnsafeMutableBufferPointer { out in
            NBodyAccelerations.accelerate(
                0..<37, x: state.x, y: state.y, z: state.z, mass: state.mass, count: state.count,
                softeningSquared: eps2, into: out.baseAddress!, estimate: .native)
        }
        XCTAssertEqual(pass(0..<37), native)
    }

    func testInverseSquareRootIsWithinAFewUlp() {
        for estimate in NBodyAccelerations.Estimate.allCases {
            var x = 1e-12
            while x < 1e12 {
                let lanes = SIMD8<Double>(x, x * 1.1, x * 1.3, x * 1.7, x * 2.0, x * 2.3, x * 2.9, x * 3.5)
                let inverse = NBodyAccelerations.inverseSquareRoot(lanes, estimate)
                for lane in 0..<8 {
                    let exact = 1 / lanes[lane].squareRoot()
                    XCTAssertEqual(
                        inverse[lane], exact, accuracy: 4 * exact.ulp,
                        "x = \(lanes[lane]), \(estimate)")
                }
                x *= 3.7
            }
        }
        XCTAssertEqual(NBodyAccelerations.newtonSteps(estimateBits: 14), 2)
        XCTAssertEqual(NBodyAccelerations.newtonSteps(estimateBits: 4), 4)
    }

    func testInitialGrid() {
        let state = NBody(bodyCount: 4096, steps: 0).initialState()
        XCTAssertEqual(state.x[1], Double(7919 % 4096) / 4096 - 0.5)
        XCTAssertEqual(state.y[2], Double(12542 % 4096) / 4096 - 0.5)
        XCTAssertEqual(state.mass[0], 1.0 / 4096)
        XCTAssertEqual(state.kineticEnergy, 0)
    }
}
