import XCTest

@testable import Multiprocessing

final class PoolMapTests: TimeLimitedTestCase {
    let methods: [StartMethod] = [.fork, .forkserver, .spawn, .automatic]

    func testMapMatchesSerialForEveryStartMethodSizeAndChunk() throws {
        for method in methods {
            try Pool.with(processes: 2, startMethod: method) { pool in
                for count in [0, 1, 7, 100_000] {
                    let inputs = Array(0..<count)
                    let expected = inputs.map { $0 * $0 }
                    for chunk in [1, 3, nil] as [Int?] {
                        let got = try pool.map(Square(), inputs, chunkSize: chunk)
                        XCTAssertEqual(got, expected, "\(method) n=\(count) chunk=\(String(describing: chunk))")
                    }
                }
            }
        }
    }
}
