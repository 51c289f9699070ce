// 1. Start and join one process — and the same with a thread, to show the APIs look alike.
import Foundation
import Multiprocessing

/// Python: `def job(a, b): print(a + b)`; the arguments are stored properties.
struct Job: ParallelFunction {
    var a: Int
    var b: Int
    func callAsFunction(_: Void) {
        print("job(\(a), \(b)) = \(a + b) in \(Multiprocessing.currentProcess.name)")
    }
}

func example01(_: ArraySlice<String>) throws {
    let p = Multiprocessing.Process(target: Job(a: 1, b: 2)) // Foundation has a Process too
    try p.start()
    try p.join()

    let job = Job(a: 1, b: 2)
    let t = Thread { job(()) }
    t.start()
    while !t.isFinished { usleep(1000) } // Foundation's Thread has no join()
    print("process exit code \(p.exitCode ?? -1); thread finished")
}
