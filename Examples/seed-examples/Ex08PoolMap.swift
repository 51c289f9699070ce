// 8. Pool.map, and a map whose items sleep 1 s each: 5 items on 4 workers take ~2 s.
import Multiprocessing

#if canImport(Glibc)
import Glibc
#endif

struct Square: ParallelFunction {
    func callAsFunction(_ x: Int) -> Int { x * x }
}

struct SlowSquare: ParallelFunction {
    func callAsFunction(_ x: Int) -> Int {
        sleep(1)
        return x * x
    }
}

func example08(_: ArraySlice<String>) throws {
    let squares = try Pool.with(processes: 4) { pool in try pool.map(Square(), 0..<10) }
    print(squares)

    let start = now()
    let pool = try Pool(processes: 4)
    let slow = try pool.map(SlowSquare(), 1...5, chunkSize: 1)
    pool.close()
    try pool.join()
    print(slow)
    print("slow map took \(String(format: "%.1f", now() - start)) s")
}
