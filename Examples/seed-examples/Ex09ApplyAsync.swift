// 9. apply_async for several inputs, then close and join.
import Multiprocessing

struct Greet: ParallelFunction {
    func callAsFunction(_ i: Int) -> String {
        "worker \(i) ran in \(Multiprocessing.currentProcess.name)"
    }
}

func example09(_: ArraySlice<String>) throws {
    let pool = try Pool(processes: 2)
    let results = try (0..<3).map { try pool.applyAsync(Greet(), $0) }
    pool.close()
    try pool.join()
    for result in results { print(try result.get().prefix(8)) } // "worker 0", …
}
