import Multiprocessing

#if canImport(Glibc)
import Glibc
#endif

struct Sq: ParallelFunction {
    func callAsFunction(_ x: Int) -> Int { x &* x }
}
func now() -> Double { var t = timespec(); clock_gettime(CLOCK_MONOTONIC, &t); return Double(t.tv_sec) + Double(t.tv_nsec) / 1e9 }
let reps = Int(CommandLine.arguments.dropFirst().first ?? "20") ?? 20
let only = CommandLine.arguments.count > 2 ? CommandLine.arguments[2] : ""
let pool = try Pool(processes: 2, startMethod: .fork)
let inputs = Array(0..<2_000_000)
let journal = "/tmp/probe-\(getpid()).journal"
var plain: [Double] = [], ck: [Double] = []
for rep in 0..<reps {
    for step in 0..<2 {
        let with = (rep + step) % 2 == 1
        if only == "plain" && with || only == "ck" && !with { continue }
        unlink(journal)
        let t = now()
        let r = with ? try pool.map(Sq(), inputs, chunkSize: 100, checkpoint: journal) : try pool.map(Sq(), inputs, chunkSize: 100)
        let dt = (now() - t) * 1000
        precondition(r.count == inputs.count)
        if with { ck.append(dt) } else { plain.append(dt) }
        print(with ? "ck    \(Int(dt * 10)) x0.1ms" : "plain \(Int(dt * 10)) x0.1ms")
    }
}
unlink(journal)
func med(_ a: [Double]) -> Double { let s = a.sorted(); return s[s.count / 2] }
if !plain.isEmpty && !ck.isEmpty { print("median plain \(med(plain)) ck \(med(ck)) ratio \(med(plain) / med(ck))") }
try pool.close(); try pool.join()
