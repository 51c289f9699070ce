// Ports of CPython's shared-ctypes tests (Lib/test/_test_multiprocessing.py: _TestValue,
// _TestArray, _TestSharedCTypes), the child on every start method. CPython's typecodes are
// Swift types: 'i' Int32, 'd' Double, 'h' Int16, 'q' Int64, 'c' UInt8; a ctypes Structure is a
// BitwiseCopyable struct.
//
// CPython test                              → Swift test (SharedValuePortTests)
// _TestValue.test_value                     → testValuesSetInAChild
// _TestValue.test_rawvalue                  → testValuesSetInAChild (RawSharedValue)
// _TestValue.test_getobj_getlock            → testGivenLockIsTheValuesLock
// _TestArray.test_array / test_rawarray     → testArrayPrefixSumsInAChild
// _TestArray.test_array_from_size           → testArrayFromSizeIsZeroed
// _TestArray.test_getobj_getlock_obj        → testGivenLockIsTheValuesLock
// _TestSharedCTypes.test_sharedctypes       → testStructsAndArraysDoubledInAChild
// _TestSharedCTypes.test_synchronize        → testStructsAndArraysDoubledInAChild (locked)
//
// Not applicable: test_invalid_typecode (types are checked by the compiler), test_copy
// (values are copied by Swift), _TestHeap (no heap of blocks: one memfd per object).

import Multiprocessing
import XCTest

#if canImport(Glibc)
import Glibc
#endif

/// CPython's `_Foo` Structure: (c_int x, c_double y, c_longlong z).
struct Foo: BitwiseCopyable, Equatable {
    var x: Int32
    var y: Double
    var z: Int64
}

/// CPython's _TestValue `_test`: sets each value to its second number.
struct SetValues: ParallelFunction {
    var i: SharedValue<Int32>, d: SharedValue<Double>, h: SharedValue<Int16>, q: SharedValue<Int64>, c: SharedValue<UInt8>
    var ri: RawSharedValue<Int32>, rd: RawSharedValue<Double>, rh: RawSharedValue<Int16>, rq: RawSharedValue<Int64>,
        rc: RawSharedValue<UInt8>
    func callAsFunction(_: Void) {
        i.value = 24234; d.value = -4.25; h.value = 234; q.value = 1 << 34; c.value = UInt8(ascii: "y")
        ri.value = 24234; rd.value = -4.25; rh.value = 234; rq.value = 1 << 34; rc.value = UInt8(ascii: "y")
    }
}

/// CPython's _TestArray `f`: prefix sums in place.
struct PrefixSums: ParallelFunction {
    var locked: SharedArray<Int32>
    var raw: RawSharedArray<Int32>
    func callAsFunction(_: Void) {
        for i in 1..<locked.count { locked[i] += locked[i - 1] }
        for i in 1..<raw.count { raw[i] += raw[i - 1] }
    }
}

/// CPython's `_double`: doubles every field and element (under the locks when asked).
struct DoubleEverything: ParallelFunction {
    var x: SharedValue<Int32>, y: SharedValue<Double>, z: SharedValue<Int64>, foo: SharedValue<Foo>
    var array: SharedArray<Double>
    var string: SharedArray<UInt8>
    var locked: Bool
    func callAsFunction(_: Void) {
        if locked {
            x.withLock { $0 *= 2 }
            y.withLock { $0 *= 2 }
            z.withLock { $0 *= 2 }
            foo.withLock {
                $0.x *= 2; $0.y *= 2
            }
            array.withLock { for i in $0.indices { $0[i] *= 2 } }
        } else {
            x.value *= 2; y.value *= 2; z.value *= 2
            foo.value.x *= 2
            foo.value.y *= 2
            for i in array.indices { array[i] *= 2 }
        }
        let length = string.firstIndex(of: 0) ?? string.count
        for i in 0..<length { string[length + i] = string[i] } // 'hello' * 2
    }
}

final class SharedValuePortTests: PortTestCase {
    /// test_value / test_rawvalue.
    func testValuesSetInAChild() throws {
        try forEachMethod { method in
            let target = SetValues(
                i: try .init(4343), d: try .init(3.625), h: try .init(-232), q: try .init(1 << 33),
                c: try .init(UInt8(ascii: "x")), ri: try .init(4343), rd: try .init(3.625),
                rh: try .init(-232), rq: try .init(1 << 33), rc: try .init(UInt8(ascii: "x")))
            XCTAssertEqual(
                [Int64(target.i.value), Int64(target.h.value), target.q.value, Int64(target.c.value)],
                [4343, -232, 1 << 33, Int64(UInt8(ascii: "x"))])
            XCTAssertEqual(target.d.value, 3.625)
            let p = try started(target, daemon: true, method)
            try joinOrKill(p)
            XCTAssertEqual(p.exitCode, 0)
            XCTAssertEqual(
                [Int64(target.i.value), Int64(target.h.value), target.q.value, Int64(target.c.value)],
                [24234, 234, 1 << 34, Int64(UInt8(ascii: "y"))], "\(method)")
            XCTAssertEqual(
                [Int64(target.ri.value), Int64(target.rh.value), target.rq.value, Int64(target.rc.value)],
                [24234, 234, 1 << 34, Int64(UInt8(ascii: "y"))], "\(method) raw")
            XCTAssertEqual(target.d.value, -4.25)
            XCTAssertEqual(target.rd.value, -4.25)
        }
    }

    /// test_getobj_getlock / test_getobj_getlock_obj: a value or array made with a lock uses
    /// that lock; without one, each gets its own.
    func testGivenLockIsTheValuesLock() throws {
        let lock = try Lock()
        let value = try SharedValue<Int32>(5, lock: lock)
        let array = try SharedArray<Int32>(Array(0..<10), lock: lock)
        let own = try SharedValue<Int32>(5)
        try value.lock.acquire()
        XCTAssertTrue(lock.isLocked)
        XCTAssertTrue(array.lock.isLocked)
        XCTAssertFalse(own.lock.isLocked)
        try lock.release()
        XCTAssertEqual(value.value, 5)
        XCTAssertEqual(Array(array), Array(0..<10))
    }

    /// test_array / test_rawarray: slices, assignment, and prefix sums computed in a child.
    func testArrayPrefixSumsInAChild() throws {
        try forEachMethod { method in
            var seq: [Int32] = [680, 626, 934, 821, 150, 233, 548, 982, 714, 831]
            let locked = try SharedArray(seq), raw = try RawSharedArray(seq)
            XCTAssertEqual(locked.count, seq.count)
            XCTAssertEqual(locked[3], seq[3])
            XCTAssertEqual(Array(locked[2..<7]), Array(seq[2..<7]))
            for (offset, v) in [Int32(1), 2, 3, 4].enumerated() {
                locked[4 + offset] = v
                raw[4 + offset] = v
                seq[4 + offset] = v
            }
            XCTAssertEqual(Array(locked), seq)
            for i in 1..<seq.count { seq[i] += seq[i - 1] }
            let p = try started(PrefixSums(locked: locked, raw: raw), daemon: true, method)
            try joinOrKill(p)
            XCTAssertEqual(Array(locked), seq, "\(method)")
            XCTAssertEqual(Array(raw), seq, "\(method) raw")
        }
    }

    /// test_array_from_size: new arrays are zeroed, also when memory is reused.
    func testArrayFromSizeIsZeroed() throws {
        for _ in 0..<3 {
            let array = try SharedArray<Int32>(count: 10)
            XCTAssertEqual(Array(array), Array(repeating: 0, count: 10))
            for i in 0..<10 { array[i] = Int32(i) }
            XCTAssertEqual(Array(array), Array(0..<10))
            let raw = try RawSharedArray<Int32>(count: 10)
            XCTAssertEqual(Array(raw), Array(repeating: 0, count: 10))
        }
    }

    /// test_sharedctypes / test_synchronize: a struct, numbers, an array and a C string
    /// doubled by a child.
    func testStructsAndArraysDoubledInAChild() throws {
        try forEachMethod { method in
            for locked in [false, true] {
                let string = try SharedArray<UInt8>(count: 20)
                for (i, byte) in "hello".utf8.enumerated() { string[i] = byte }
                let target = DoubleEverything(
                    x: try .init(7), y: try .init(1.0 / 3.0), z: try .init(1 << 33),
                    foo: try .init(Foo(x: 3, y: 2, z: 0)), array: try .init((0..<10).map(Double.init)),
                    string: string, locked: locked)
                let p = try started(target, daemon: true, method)
                try joinOrKill(p)
                XCTAssertEqual(p.exitCode, 0)
                XCTAssertEqual(target.x.value, 14, "\(method) locked: \(locked)")
                XCTAssertEqual(target.y.value, 2.0 / 3.0, accuracy: 1e-12)
                XCTAssertEqual(target.z.value, 1 << 34)
                XCTAssertEqual(target.foo.value, Foo(x: 6, y: 4, z: 0))
                XCTAssertEqual(Array(target.array), (0..<10).map { Double($0 * 2) })
                XCTAssertEqual(String(decoding: Array(string).prefix { $0 != 0 }, as: UTF8.self), "hellohello")
            }
        }
    }
}
