import XCTest

@testable import Multiprocessing

#if canImport(Glibc)
import Glibc
#endif

final class SharedValueTests: XCTestCase {
    func testValueAndArrayInOneProcess() throws {
        let value = try SharedValue(Double(1.5))
        value.value = 2.5
        XCTAssertEqual(
            value.withLock { v -> Double in
                v *= 2; return v
            }, 5)
        // Accessors work while the lock is held (Python's default RLock behaviour).
        try value.lock.withLock { value.value += 1 }
        XCTAssertEqual(value.value, 6)

        let shared = try SharedValue(SIMD3<Float>(1, 2, 3), lock: value.lock)
        XCTAssertEqual(shared.value.y, 2)

        let array = try SharedArray([1, 2, 3] as [Int32])
        XCTAssertEqual(array.count, 3)
        array[1] = 20
        XCTAssertEqual(Array(array), [1, 20, 3])
        array.withLock { $0[2] = 30 }
        XCTAssertEqual(array.snapshot(), [1, 20, 30])
        XCTAssertEqual(try SharedArray<Double>(count: 4).snapshot(), [0, 0, 0, 0])
        XCTAssertEqual(try SharedArray<UInt8>(count: 0).count, 0)

        let raw = try RawSharedArray(repeating: UInt16(7), count: 5)
        raw[4] = 9
        XCTAssertEqual(Array(raw), [7, 7, 7, 7, 9])
        let rawValue = try RawSharedValue(Int64(-3))
        rawValue.value -= 1
        XCTAssertEqual(rawValue.value, -4)
    }

    /// An index out of range stops the process with a message naming the array and its range,
    /// in every build (a `precondition`, kept by -O, as `Array` and `SharedArray` do). The
    /// subscript used to be `buffer[index]`, checked by debug builds only: in a release build a
    /// write past the end went into whatever memory followed the segment.
    func testRawSharedArrayIndexOutOfRangeStopsWithTheRange() throws {
        for (index, write) in [(4, true), (-1, false)] {
            let log = NSTemporaryDirectory() + "/raw-shared-array-\(getpid())-\(index).stderr"
            defer { unlink(log) }
            let child = Process(
                target: TouchRawSharedArray(array: try RawSharedArray<Int32>(count: 4), index: index, write: write, log: log),
                startMethod: .fork)
            try child.start()
            XCTAssertTrue(try child.join(timeout: 60))
            XCTAssertLessThan(child.exitCode ?? 0, 0, "ended by a signal (the trap)")
            let text = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
            XCTAssertTrue(text.contains("RawSharedArray index \(index) out of range 0..<4"), text)
        }
    }

    /// Workers fill a locked and a raw shared array, created after they started.
    func testArraysFilledByWorkers() throws {
        for method in [StartMethod.fork, .spawn] {
            try Pool.with(processes: 2, startMethod: method) { pool in
                _ = try pool.map(Square(), [1, 2], chunkSize: 1)
                let task = FillSquares(locked: try SharedArray<Int64>(count: 100), raw: try RawSharedArray<Double>(count: 100))
                _ = try pool.map(task, 0..<100, chunkSize: 7)
                XCTAssertEqual(task.locked.snapshot(), (0..<100).map { Int64($0 * $0) }, "\(method)")
                XCTAssertEqual(Array(task.raw), (0..<100).map { Double($0) * 0.5 }, "\(method)")
            }
        }
    }
}

/// Reads or writes `array[index]` with its standard error sent to `log` (for the trap's message).
struct TouchRawSharedArray: ParallelFunction {
    var array: RawSharedArray<Int32>
    var index: Int
    var write: Bool
    var log: String
    func callAsFunction(_: Void) throws {
        let fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        guard fd >= 0, dup2(fd, 2) == 2 else { throw SystemError("open/dup2 \(log)", errno: errno) }
        if write {
            array[index] = 1
        } else {
            _ = array[index]
        }
    }
}
