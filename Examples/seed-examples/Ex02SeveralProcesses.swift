// 2. Several processes: start them all, then join them all.
// Options: [seconds to sleep, default 2]
import Multiprocessing

#if canImport(Glibc)
import Glibc
#endif

struct Worker: ParallelFunction {
    var name: String
    var seconds: Double
    func callAsFunction(_: Void) {
        print("\(name) starting")
        fflush(nil)
        usleep(UInt32(seconds * 1e6))
        print("\(name) finished")
    }
}

func example02(_ arguments: ArraySlice<String>) throws {
    let seconds = number(arguments, 0, default: 2)
    let start = now()
    let workers = (0..<5).map { Process(target: Worker(name: "worker-\($0)", seconds: seconds)) }
    for worker in workers { try worker.start() } // all start first…
    for worker in workers { try worker.join() } // …then all are joined: they ran together
    print("All processes finished.")
    print("elapsed \(String(format: "%.1f", now() - start)) s for 5 × \(seconds) s of sleep")
}
