// 10. starmap: a function of several arguments, mapped over tuples.
import Multiprocessing

struct Multiply: ParallelFunction {
    func callAsFunction(_ args: Arguments<Int, Int>) -> Int {
        let (a, b) = args.values
        return a * b
    }
}

func example10(_: ArraySlice<String>) throws {
    let products = try Pool.with(processes: 2) { pool in
        try pool.starmap(Multiply(), [(1, 2), (3, 4), (5, 6)])
    }
    print(products)
}
